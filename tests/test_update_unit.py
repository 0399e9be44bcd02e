"""The on-chip update unit ends with exactly the integer trainer's weights."""

import copy

import numpy as np
import pytest

from clockprop.hw.update import TrainableNet
from clockprop.sim.train_sim import check_weights, simulate_training
from clockprop.sw.errors import ClockpropError
from clockprop.sw.inttrain import IntTrainConfig, IntTrainer


def _run(cfg, n_in, n_classes, x, y, train=True):
    host = IntTrainer(cfg, n_in, n_classes)
    result = simulate_training(copy.deepcopy(host), x, y, train=train)
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
    assert result.cycles <= 1000 * 3 + 3                   # one sample every L + 1 clocks
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
