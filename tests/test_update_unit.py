"""The on-chip update unit ends with exactly the integer trainer's weights."""

import copy

import numpy as np
import pytest

from clockprop.hw.update import TrainableNet
from clockprop.sim.train_sim import check_weights, simulate_training
from clockprop.core.errors import ClockpropError
from clockprop.models.inttrain import IntTrainConfig, IntTrainer


def _run(cfg, n_in, n_classes, x, y, train=True, serial=False, **kwargs):
    host = IntTrainer(cfg, n_in, n_classes)
    result = simulate_training(copy.deepcopy(host), x, y, train=train, serial=serial, **kwargs)
    predicted = host.train_steps(x, y) if train else host.predict(x)
    np.testing.assert_array_equal(result.predicted, predicted)
    check_weights(host, result)
    return host, result


@pytest.mark.parametrize("rounding", ["lfsr", "half"])
def test_random_net_many_steps(rounding):
    """Weights equal after 1000 steps of a random two-layer net."""
    rng = np.random.default_rng(4)
    cfg = IntTrainConfig(hidden=(4,), weight_bits=6, frac=(3, 3), shift=(5, 6), e_shift=3,
                         e_max=3, rounding=rounding, seed=5)
    x, y = rng.integers(0, 16, (1000, 5)), rng.integers(0, 3, 1000)
    host, result = _run(cfg, 5, 3, x, y)
    assert result.cycles <= 1000 * 5 + 5       # one sample every L + ceil(log2 C) + 1 clocks
    assert any(np.any(v != 0) for v in host.v)


@pytest.mark.parametrize("e_max, fold", [(1, 1), (3, 1), (1, 2)])
def test_results_held_back(e_max, fold):
    """Results held back at random (``o.ready`` low): the weights move only in the clock a
    result is taken, with the up/down-counter form (``e_max`` 1), the general one, and the
    bit-serial folded forward pass."""
    rng = np.random.default_rng(9)
    cfg = IntTrainConfig(hidden=(5,), weight_bits=6, frac=(3, 3), shift=(5, 6), e_shift=3,
                         e_max=e_max, rounding="lfsr", seed=2)
    x, y = rng.integers(0, 16, (300, 19)), rng.integers(0, 3, 300)
    serial = fold > 1
    host, result = _run(cfg, 19, 3, x, y, serial=serial, fold=fold, stall=0.5)
    _, free = _run(cfg, 19, 3, x, y, serial=serial, fold=fold)
    assert result.cycles > free.cycles + 100            # results were held back
    assert any(np.any(v != 0) for v in host.v)


@pytest.mark.parametrize("hidden, e_max, serial", [((), 1, True), ((4,), 3, False),
                                                   ((4,), 1, True)])
def test_rival_error(hidden, e_max, serial):
    """``rival``: only the label's and its rival's errors move weights; five classes (an odd
    one out in the comparator trees) and small logits, so ties are common."""
    rng = np.random.default_rng(21)
    cfg = IntTrainConfig(hidden=hidden, weight_bits=6, frac=2, shift=5, e_shift=2,
                         e_max=e_max, rival=True, seed=3)
    x, y = rng.integers(0, 16, (400, 6)), rng.integers(0, 5, 400)
    host, _ = _run(cfg, 6, 5, x, y, serial=serial)
    assert any(np.any(v != 0) for v in host.v)


def test_saturation_edges():
    """3-bit weights (W = 3) and a big error: the clamps are hit all the time."""
    rng = np.random.default_rng(6)
    cfg = IntTrainConfig(hidden=(3,), weight_bits=3, frac=(1, 1), shift=(4, 4), e_shift=0,
                         e_max=2, rounding="lfsr")
    x, y = rng.integers(0, 16, (300, 3)), (rng.random(300) < 0.1).astype(int)
    host, _ = _run(cfg, 3, 2, x, y)                         # mostly class 0: weights run out
    assert max(np.abs(v).max() for v in host.v) == 3


def test_inference_mode_keeps_weights():
    rng = np.random.default_rng(7)
    cfg = IntTrainConfig(hidden=(), weight_bits=6, frac=3, shift=5, e_shift=3, e_max=3)
    x, y = rng.integers(0, 16, (20, 4)), rng.integers(0, 3, 20)
    host, result = _run(cfg, 4, 3, x, y, train=False)
    np.testing.assert_array_equal(result.weights[0], IntTrainer(cfg, 4, 3).v[0])


def test_training_improves_accuracy():
    rng = np.random.default_rng(8)
    x = rng.integers(0, 16, (400, 6))
    y = np.argmax(x @ rng.normal(size=(6, 2)), axis=1)
    cfg = IntTrainConfig(hidden=(), weight_bits=8, frac=5, shift=7, e_shift=5, e_max=3)
    host = IntTrainer(cfg, 6, 2)
    before = host.accuracy(x, y)
    result = simulate_training(copy.deepcopy(host), x[:300], y[:300])
    host.train_steps(x[:300], y[:300])
    check_weights(host, result)
    assert host.accuracy(x[300:], y[300:]) > max(before, 0.7)


def test_bad_label_sets_the_error_flag():
    cfg = IntTrainConfig(hidden=(), weight_bits=6, frac=3, shift=5, e_shift=3, e_max=3)
    host = IntTrainer(cfg, 4, 3)
    result = simulate_training(copy.deepcopy(host), np.zeros((2, 4), int), [3, 0])
    assert result.error                                     # label 3 of 3 classes
    host.step(np.zeros(4, int), 0)                          # the bad sample was not trained
    check_weights(host, result)


def test_disagreeing_readback_is_an_error():
    cfg = IntTrainConfig(hidden=(), weight_bits=6, frac=3, shift=5, e_shift=3, e_max=3)
    host = IntTrainer(cfg, 4, 3)
    result = simulate_training(copy.deepcopy(host), np.full((3, 4), 9), [0, 1, 2])
    with pytest.raises(ClockpropError, match="disagree with the host"):
        check_weights(host, result)                         # host did not train


def test_estimate_counts_the_update_unit():
    cfg = IntTrainConfig(hidden=(), weight_bits=6, frac=3, shift=5, e_shift=3, e_max=3)
    cost = TrainableNet(IntTrainer(cfg, 4, 3)).estimate()
    assert cost.ff >= 15 * 6 and cost.lut > 15 * 6


@pytest.mark.parametrize("shift, drop, fan_in", [
    ((5, 6), 0, 0),                 # layer 0 general update, layer 1 up/down counter
    ((6, 6), (1, 2), (3, 0)),       # both counters, narrow forward weights, sparse layer 0
])
def test_bit_serial_forward(shift, drop, fan_in):
    """The bit-serial unit (act_bits clocks per layer) ends with the trainer's weights."""
    rng = np.random.default_rng(9)
    cfg = IntTrainConfig(hidden=(4,), weight_bits=7, frac=(3, 3), shift=shift, e_shift=3,
                         e_max=3, drop=drop, fan_in=fan_in, seed=5)
    x, y = rng.integers(0, 16, (400, 5)), rng.integers(0, 3, 400)
    host, result = _run(cfg, 5, 3, x, y, serial=True)
    unit = TrainableNet(host, serial=True)
    unit.estimate()                                         # elaborate it once
    assert unit.interval == 2 * (4 + 1) + 3
    assert result.cycles <= 400 * unit.interval + unit.interval
    assert unit.step_form == [shift[0] == 6, True]
    assert (result.weights[0][~host.masks[0]] == 0).all()


def test_counter_update_hits_both_clamp_bounds():
    """Up/down counters with drop: the asymmetric bounds [-v_lo, v_hi] = [-6, 7] are pressed
    on (class 0's target is out of reach; class 1's bias keeps its logit above 0)."""
    rng = np.random.default_rng(10)
    cfg = IntTrainConfig(hidden=(), weight_bits=4, frac=4, shift=5, e_shift=0, e_max=2,
                         drop=1)
    host = IntTrainer(cfg, 3, 2, weights=[np.array([[7, 7, 7, 7], [-6, -6, -6, 7]])])
    unit = TrainableNet(host)
    unit.estimate()
    assert unit.step_form == [True]
    x, y = rng.integers(0, 3, (300, 3)), np.zeros(300, int)
    result = simulate_training(copy.deepcopy(host), x, y, serial=True)
    host.train_steps(x, y)
    check_weights(host, result)
    v = host.v[0]
    assert v.min() == -cfg.v_lo(0) == -6 and v.max() == cfg.v_hi(0) == 7


def test_serial_is_cheaper():
    cfg = IntTrainConfig(hidden=(8,), weight_bits=8, frac=(5, 5), shift=(6, 6), e_shift=6,
                         e_max=3, drop=1)
    tr = IntTrainer(cfg, 16, 4)
    assert TrainableNet(tr, serial=True).estimate().lut < TrainableNet(tr).estimate().lut / 2


def test_anneal_lr_field():
    """Each sample's lr (extra learning-rate shift) reaches the gateware's update."""
    rng = np.random.default_rng(11)
    cfg = IntTrainConfig(hidden=(3,), weight_bits=7, frac=(3, 3), shift=(5, 6), e_shift=3,
                         e_max=3, anneal=2, seed=2)
    x, y = rng.integers(0, 16, (200, 4)), rng.integers(0, 3, 200)
    lr = np.repeat([0, 1, 2, 1], 50)
    host = IntTrainer(cfg, 4, 3)
    result = simulate_training(copy.deepcopy(host), x, y, lr=lr, serial=True)
    host.train_steps(x, y, lr)
    check_weights(host, result)
    assert not result.error
    with pytest.raises(ClockpropError, match="lr"):
        host.step(x[0], 0, 3)


@pytest.mark.parametrize("serial, rounding", [(False, "lfsr"), (True, "half")])
def test_ed_random_net_many_steps(serial, rounding):
    """Rule ed: 1000 steps of a random net (two + one-layer per-class nets, both input copies);
    the weights equal the trainer's, keep their signs, and press on zero and on the bounds."""
    rng = np.random.default_rng(12)
    cfg = IntTrainConfig(rule="ed", hidden=(2,), weight_bits=5, frac=(2, 3), shift=(4, 6),
                         e_shift=2, e_max=3, rounding=rounding, drop=(0, 1), seed=3,
                         gate_margin=2)
    x, y = rng.integers(0, 16, (1000, 5)), rng.integers(0, 3, 1000)
    host, result = _run(cfg, 5, 3, x, y, serial=serial)
    assert host.v[0].shape == (6, 11) and host.shape == [5, 6, 3]
    unit = TrainableNet(host, serial=serial)
    unit.estimate()
    assert unit.step_form == [False, True]
    for l, v in enumerate(host.v):
        sign = host.sign[l]
        assert (v[sign > 0] >= 0).all() and (v[sign < 0] <= 0).all()
        assert (v[sign != 0] == 0).any()                        # stopped at zero
        assert (v == host.lo[l]).any() or (v == host.hi[l]).any()   # saturated
        assert (v[~host.masks[l]] == 0).all()                   # block-diagonal layer 1
    assert not host.masks[1][0, 2:6].any()


def test_ed_sparse_anneal_bit_serial():
    """ed with a sparse first layer (fan_in among both copies), an lr schedule and the
    counter update in both layers."""
    rng = np.random.default_rng(13)
    cfg = IntTrainConfig(rule="ed", hidden=(3,), weight_bits=7, frac=(4, 4), shift=(6, 6),
                         e_shift=4, e_max=3, drop=1, fan_in=(4, 0), anneal=1, seed=8,
                         gate_margin=1)
    x, y = rng.integers(0, 16, (300, 4)), rng.integers(0, 2, 300)
    lr = np.repeat([0, 1], 150)
    host = IntTrainer(cfg, 4, 2)
    result = simulate_training(copy.deepcopy(host), x, y, lr=lr, serial=True)
    np.testing.assert_array_equal(result.predicted, host.train_steps(x, y, lr))
    check_weights(host, result)
    assert (host.masks[0][:, :8].sum(axis=1) == 4).all()
    unit = TrainableNet(host, serial=True)
    unit.estimate()
    assert unit.step_form == [True, True]


def test_gate_margin_csb():
    """A gate margin keeps neurons outside [0, A] learning: the same in the gateware."""
    rng = np.random.default_rng(14)
    cfg = IntTrainConfig(hidden=(4,), weight_bits=6, frac=(2, 3), shift=(5, 6), e_shift=3,
                         e_max=3, gate_margin=5, seed=2)
    x, y = rng.integers(0, 16, (400, 5)), rng.integers(0, 3, 400)
    _run(cfg, 5, 3, x, y)


@pytest.mark.parametrize("rule, fold", [("csb", 2), ("ed", 3)])
def test_bit_serial_fold(rule, fold):
    """fold G: each bit plane over G clocks, one leaf per G inputs (7 inputs: a short last
    group); the same weights as the trainer."""
    rng = np.random.default_rng(15)
    cfg = IntTrainConfig(rule=rule, hidden=(3,), weight_bits=7, frac=(3, 3), shift=(5, 6),
                         e_shift=3, e_max=3, drop=(1, 0), gate_margin=3, fan_in=(3, 0),
                         seed=5)
    host = IntTrainer(cfg, 7, 3)
    x, y = rng.integers(0, 16, (150, 7)), rng.integers(0, 3, 150)
    result = simulate_training(copy.deepcopy(host), x, y, serial=True, fold=fold)
    np.testing.assert_array_equal(result.predicted, host.train_steps(x, y))
    check_weights(host, result)
    unit = TrainableNet(host, serial=True, fold=fold)
    unit.estimate()
    assert unit.interval == 2 * (4 * fold + 1) + 3
    assert result.cycles <= 150 * unit.interval + unit.interval


def test_fold_is_cheaper_for_dense_layers():
    cfg = IntTrainConfig(hidden=(8,), weight_bits=8, frac=(5, 5), shift=(6, 6), e_shift=6,
                         e_max=3, drop=1)
    tr = IntTrainer(cfg, 16, 4)
    serial = TrainableNet(tr, serial=True).estimate().lut
    assert TrainableNet(tr, serial=True, fold=2).estimate().lut < 0.9 * serial


def test_fold_needs_serial():
    host = IntTrainer(IntTrainConfig(hidden=(), shift=8), 4, 3)
    with pytest.raises(ClockpropError, match="fold"):
        TrainableNet(host, fold=2)
