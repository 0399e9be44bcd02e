"""The float trainer: every rule learns, folds exactly, keeps its constraints, is reproducible."""

import numpy as np
import pytest

from clockprop.models.datasets import load_dataset
from clockprop.core.errors import ClockpropError
from clockprop.models.floatnet import quantize
from clockprop.core.qformat import QFormat
from clockprop.models.rules import ED, RULES, make_rule
from clockprop.models.train import TrainConfig, config_from_dict, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 0)


def csd_digits(w):
    """Nonzero digits of the non-adjacent form of every ``|w|`` (the shift-add cost)."""
    total = 0
    for v in np.abs(np.asarray(w, dtype=np.int64)).ravel():
        v = int(v)
        while v:
            if v & 1:
                total += 1
                v -= 2 - (v & 3)        # ...01 -> digit +1, ...11 -> digit -1
            v >>= 1
    return total


def test_csd_digits():
    values = (0, 1, 2, 3, 7, 11, 15, -15, 85)
    assert [csd_digits([v]) for v in values] == [0, 1, 1, 2, 2, 3, 2, 2, 4]


SMALL = {
    "ed": TrainConfig(rule="ed", hidden=(4,), epochs=3, lr=0.05, batch=8),
    "csb": TrainConfig(rule="csb", hidden=(32,), epochs=3, lr=0.05, batch=8),
    "bp": TrainConfig(rule="bp", hidden=(32,), epochs=3, lr=0.1, batch=8),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_learns(rule, digits):
    result = train(SMALL[rule], digits)
    assert result.net.accuracy(digits.x_test, digits.y_test) > 0.85       # chance: 0.1
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.seconds > 0 and result.samples_per_s > 0


@pytest.mark.parametrize("rule", sorted(RULES))
def test_qat_learns(rule, digits):
    fmt = QFormat(act_bits=4, weight_bits=6)
    cfg = TrainConfig(**{**SMALL[rule].to_dict(), "epochs": 2, "qat": True})
    result = train(cfg, digits, fmt)
    model = quantize(result.net, fmt)
    int_acc = model.accuracy(fmt.quantize_input(digits.x_test), digits.y_test)
    assert int_acc > 0.8
    assert result.history[-1]["int_test_acc"] == int_acc


@pytest.mark.parametrize("rule", sorted(RULES))
def test_fold_is_exact(rule, digits):
    net = make_rule(rule, digits.n_inputs, (6, 5), digits.n_classes, np.random.default_rng(3))
    x = digits.x_train[:64]
    targets = np.eye(digits.n_classes)[digits.y_train[:64]]
    for _ in range(5):
        acts, y = net.forward(x)
        net.update(acts, y, targets, 0.05)
    net.prune(0.3, x)
    acts, y = net.forward(x)
    folded = net.fold()
    np.testing.assert_allclose(folded.forward(x), y, rtol=1e-12, atol=1e-12)
    # the folded activations, unfolded, are the training form's own
    a = np.clip(x, 0, 1)
    folded_acts = [a]
    for w, b in zip(folded.weights[:-1], folded.biases[:-1]):
        a = np.clip(a @ w.T + b, 0, 1)
        folded_acts.append(a)
    for mine, theirs in zip(acts, net.unfold_acts(folded_acts)):
        np.testing.assert_allclose(theirs, mine, rtol=1e-12, atol=1e-12)


def test_ed_fold_shapes(digits):
    C, D = digits.n_classes, digits.n_inputs
    net = make_rule("ed", D, (6, 5), C, np.random.default_rng(0)).fold()
    assert [w.shape for w in net.weights] == [(C * 6, D), (C * 5, C * 6), (C, C * 5)]
    # the per-class networks do not talk to each other: block-diagonal after the first layer
    last = net.weights[-1].reshape(C, C, 5)
    assert np.all(last[~np.eye(C, dtype=bool)] == 0)


def test_ed_signs_hold(digits):
    cfg = TrainConfig(rule="ed", hidden=(6, 4), epochs=3, lr=0.2, batch=4, prune=0.5,
                      prune_epoch=0, seed=1)
    rng = np.random.default_rng(cfg.seed)
    rule = make_rule("ed", digits.n_inputs, cfg.hidden, digits.n_classes, rng)
    x, t = digits.x_train, np.eye(digits.n_classes)[digits.y_train]
    for epoch in range(cfg.epochs):
        for i in range(0, len(x), cfg.batch):
            acts, y = rule.forward(x[i:i + cfg.batch])
            rule.update(acts, y, t[i:i + cfg.batch], cfg.lr)
        if epoch == 0:
            rule.prune(0.5, x)
    assert isinstance(rule, ED)
    crossed = 0
    for w, sign, mask in zip(rule.w, rule.sign, rule.mask):
        assert np.all(w * sign >= 0)                    # never against its fixed sign
        assert np.all(w[mask == 0] == 0)                # pruned weights stay at zero
        crossed += np.count_nonzero((w == 0) & (mask == 1))
    assert crossed > 0                                  # the clamp was exercised
    # input copies: + copy has type +1, - copy type -1
    D = digits.n_inputs
    assert np.all(rule.types[0][:D] == 1) and np.all(rule.types[0][D:] == -1)
    assert list(rule.types[1]) == [1, -1, 1, -1, 1, -1]


def test_prune_zeroes_weights(digits):
    cfg = TrainConfig(rule="csb", hidden=(32,), epochs=2, lr=0.05, batch=8, prune=0.6)
    net = train(cfg, digits).net
    first = net.weights[0]
    assert np.count_nonzero(first == 0) >= int(0.6 * first.size)
    # a hidden neuron with no weight left to the output has no incoming weights either
    unused = ~net.weights[1].any(axis=0)
    assert np.all(first[unused] == 0) and np.all(net.biases[0][unused] == 0)


def test_same_seed_same_weights(digits):
    cfg = TrainConfig(rule="csb", hidden=(16,), epochs=2, lr=0.05, batch=8, seed=7, prune=0.3)
    a, b = train(cfg, digits).net, train(cfg, digits).net
    for wa, wb in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(wa, wb)
    c = train(TrainConfig(**{**cfg.to_dict(), "seed": 8}), digits).net
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_qat_same_seed_same_weights(digits):
    cfg = TrainConfig(rule="ed", hidden=(3,), epochs=1, lr=0.05, batch=16, qat=True)
    fmt = QFormat(act_bits=4, weight_bits=5)
    a, b = train(cfg, digits, fmt).net, train(cfg, digits, fmt).net
    for wa, wb in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(wa, wb)


def test_progress_is_called(digits):
    rows = []
    cfg = TrainConfig(rule="csb", hidden=(8,), epochs=2, lr=0.05, batch=32)
    train(cfg, digits, QFormat(), progress=lambda e, n, row: rows.append((e, n, row)))
    assert [(e, n) for e, n, _ in rows] == [(1, 2), (2, 2)]
    assert set(rows[0][2]) == {"epoch", "train_acc", "test_acc", "loss",
                               "int_train_acc", "int_test_acc"}


@pytest.mark.parametrize("bad", [
    {"rule": "dfa"}, {"hidden": (0,)}, {"hidden": "32"}, {"hidden": (8.5,)},
    {"epochs": 0}, {"epochs": 2.0}, {"lr": 0.0}, {"lr": float("nan")}, {"batch": 0},
    {"lr_decay": 1.5}, {"init": -1.0}, {"weight_decay": -0.1}, {"prune": 1.0},
    {"prune": -0.1}, {"prune_epoch": -2}, {"qat": "yes"}, {"seed": -1}, {"lr": True},
])
def test_bad_config(bad):
    with pytest.raises(ClockpropError, match="train: "):
        TrainConfig(**bad)


def test_config_from_dict():
    cfg = config_from_dict({"rule": "ed", "hidden": [8, 4], "epochs": 5, "lr": 0.1})
    assert cfg.hidden == (8, 4) and cfg.rule == "ed"
    assert config_from_dict(cfg.to_dict()) == cfg
    assert TrainConfig(hidden=16).hidden == (16,)
    with pytest.raises(ClockpropError, match="unknown setting.*hiden"):
        config_from_dict({"hiden": [8]})
