"""The integer trainer: its exact rule, its config checks, and that it learns."""

import numpy as np
import pytest

from clockprop.sw.errors import ClockpropError
from clockprop.sw.inttrain import IntTrainConfig, IntTrainer, train_int
from clockprop.sw.recurrent import Lfsr16


def _teacher_task(rng, n, n_in=8, n_classes=3):
    """Inputs and labels from a random linear teacher: a task a single layer can learn."""
    x = rng.integers(0, 16, (n, n_in))
    teacher = rng.normal(size=(n_classes, n_in))
    return x, np.argmax(x @ teacher.T, axis=1)


@pytest.mark.parametrize("drop, fan_in", [(0, 0), ((1, 2), (3, 0))])
def test_step_is_the_documented_rule(drop, fan_in):
    cfg = IntTrainConfig(hidden=(4,), weight_bits=6, frac=(3, 3), shift=(4, 5), e_shift=3,
                         e_max=3, rounding="lfsr", lfsr_seed=0x1234, drop=drop, fan_in=fan_in)
    tr = IntTrainer(cfg, 5, 2)
    dr0, dr1 = cfg.drop
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 16, 5), int(rng.integers(0, 2))
        v = [w.copy() for w in tr.v]
        lfsr = Lfsr16(tr.lfsr.state)
        # the rule written out element by element; forward weights F = V >> drop
        A, W = 15, 31
        f = [v[0] >> dr0, v[1] >> dr1]
        a1 = [min(max((sum(f[0][j, i] * x[i] for i in range(5)) + A * f[0][j, 5] + 4) >> 3,
                      0), A) for j in range(4)]
        logits = [sum(f[1][c, j] * a1[j] for j in range(4)) + A * f[1][c, 4] for c in range(2)]
        e = [min(max(((A << 3) * (c == y) - logits[c]) >> 3, -3), 3) for c in range(2)]
        d0 = [tr.signs[0][j] * e[j % 2] * (0 < a1[j] < A) for j in range(4)]
        s = lfsr.draw()
        for l, (inp, d) in enumerate(((list(x) + [A], d0), (a1 + [A], e))):
            k = cfg.shift[l]
            for j in range(v[l].shape[0]):
                for i in range(v[l].shape[1]):
                    off = (7 * i + 5 * l) % 16
                    r = ((s >> off) | (s << (16 - off))) & 0xFFFF & ((1 << k) - 1)
                    if not tr.masks[l][j, i]:
                        continue                        # an absent weight stays 0
                    lo = (W >> cfg.drop[l]) << cfg.drop[l]
                    hi = lo + (1 << cfg.drop[l]) - 1
                    v[l][j, i] = min(max(v[l][j, i] + ((d[j] * inp[i] + r) >> k), -lo), hi)
        assert tr.step(x, y) == int(np.argmax(logits))
        for want, got in zip(v, tr.v):
            np.testing.assert_array_equal(got, want)


def test_model_is_the_inference_form():
    cfg = IntTrainConfig(hidden=(6,), epochs=1)
    tr = IntTrainer(cfg, 7, 3)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 16, (50, 7)), rng.integers(0, 3, 50)
    tr.train_steps(x, y)
    np.testing.assert_array_equal(tr.model().forward(x), tr.forward_all(x)[1])


def test_drop_and_fan_in():
    """Forward weights are V >> drop (the model's format is that narrow); a sparse layer has
    exactly fan_in inputs per neuron plus its bias, and absent weights never move."""
    cfg = IntTrainConfig(hidden=(6,), weight_bits=8, frac=(4, 4), shift=(5, 6), e_shift=3,
                         e_max=3, drop=(2, 1), fan_in=(3, 0), epochs=1)
    tr = IntTrainer(cfg, 7, 3)
    assert (tr.masks[0][:, :7].sum(axis=1) == 3).all() and tr.masks[0][:, 7].all()
    assert tr.masks[1].all()
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 16, (300, 7)), rng.integers(0, 3, 300)
    tr.train_steps(x, y)
    assert (tr.v[0][~tr.masks[0]] == 0).all()
    for l, v in enumerate(tr.v):
        assert v.min() >= -cfg.v_lo(l) and v.max() <= cfg.v_hi(l)
    assert (cfg.v_lo(0), cfg.v_hi(0)) == (124, 127)
    model = tr.model()
    assert model.fmt.weight_bits == 7                     # 8 - min(drop)
    np.testing.assert_array_equal(model.layers[0].weight, tr.v[0][:, :-1] >> 2)
    np.testing.assert_array_equal(model.forward(x), tr.forward_all(x)[1])


def test_single_layer_learns_a_teacher():
    rng = np.random.default_rng(2)
    x, y = _teacher_task(rng, 600)
    cfg = IntTrainConfig(hidden=(), weight_bits=8, frac=5, shift=7, e_shift=5, e_max=3)
    tr = IntTrainer(cfg, 8, 3)
    before = tr.accuracy(x[400:], y[400:])
    for _ in range(5):
        tr.train_steps(x[:400], y[:400])
    after = tr.accuracy(x[400:], y[400:])
    assert after > max(before, 0.6) + 0.1


@pytest.mark.parametrize("rounding", ["lfsr", "half", "floor"])
def test_saturation_and_determinism(rounding):
    cfg = IntTrainConfig(hidden=(3,), weight_bits=3, frac=(1, 1), shift=(4, 4), e_shift=0,
                         e_max=2, rounding=rounding)
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 16, (200, 4)), rng.integers(0, 2, 200)
    runs = []
    for _ in range(2):
        tr = IntTrainer(cfg, 4, 2)
        tr.train_steps(x, y)
        runs.append(tr.v)
        assert all(np.abs(v).max() <= 3 for v in tr.v)
        assert any(np.abs(v).max() == 3 for v in tr.v)       # the edge is reached
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_digits_learns():
    from clockprop.sw.datasets import load_dataset
    cfg = IntTrainConfig(hidden=(), weight_bits=10, frac=7, shift=8, e_shift=6, e_max=7,
                         epochs=2)
    result = train_int(cfg, load_dataset("digits", 0))
    assert result.history[-1]["test_acc"] > result.history[0]["test_acc"] + 0.4
    assert result.model.shape == [64, 10]


@pytest.mark.parametrize("kwargs, match", [
    ({"rule": "bp"}, "rule"),
    ({"hidden": (0,)}, "hidden"),
    ({"shift": (8, 8, 8)}, "shift"),
    ({"shift": 17}, "shift"),
    ({"hidden": (), "weight_bits": 4, "shift": 1}, "overflow"),
    ({"hidden": (), "rounding": "half", "e_max": 1, "shift": 16}, "no update"),
    ({"rounding": "nearest"}, "rounding"),
    ({"lfsr_seed": 0}, "lfsr_seed"),
    ({"e_max": 0}, "e_max"),
    ({"frac": 0}, "frac"),
    ({"weight_bits": 6, "drop": 5}, "drop"),
    ({"fan_in": -1}, "fan_in"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ClockpropError, match=match):
        IntTrainConfig(**kwargs)


def test_bad_samples():
    tr = IntTrainer(IntTrainConfig(hidden=()), 4, 3)
    with pytest.raises(ClockpropError, match="labels must be integers in \\[0, 2\\]"):
        tr.step(np.zeros(4, int), 3)
    with pytest.raises(ClockpropError, match="labels"):
        tr.train_steps(np.zeros((2, 4), int), [0, -1])
    with pytest.raises(ClockpropError, match="input activations"):
        tr.step(np.full(4, 16), 0)
    with pytest.raises(ClockpropError, match="features"):
        tr.step(np.zeros(5, int), 0)
    with pytest.raises(ClockpropError, match="shape"):
        IntTrainer(IntTrainConfig(hidden=()), 4, 3, weights=[np.zeros((3, 4), int)])
