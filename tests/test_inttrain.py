"""The integer trainer: its exact rule, its config checks, and that it learns."""

import dataclasses

import numpy as np
import pytest

from clockprop.core.errors import ClockpropError
from clockprop.models.inttrain import IntTrainConfig, IntTrainer, train_int
from clockprop.core.lfsr import Lfsr16


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


def test_ed_step_is_the_documented_rule():
    """Rule ed element by element: per-class nets (H = 2, C = 2), + and - input copies,
    alternating hidden types, sign-constrained weights clamped at zero, a gate margin."""
    cfg = IntTrainConfig(rule="ed", hidden=(2,), weight_bits=6, frac=(3, 3), shift=(4, 5),
                         e_shift=3, e_max=3, lfsr_seed=0x4321, gate_margin=2, seed=1)
    tr = IntTrainer(cfg, 3, 2)
    assert tr.shape == [3, 4, 2] and tr.v[0].shape == (4, 7) and tr.v[1].shape == (2, 5)
    A, W, n, m = 15, 31, 3, 2
    t_hid = [1, -1, 1, -1]                      # types alternate within each class's net
    rng = np.random.default_rng(0)
    for _ in range(40):
        x, y = rng.integers(0, 16, n), int(rng.integers(0, 2))
        v = [w.copy() for w in tr.v]
        lfsr = Lfsr16(tr.lfsr.state)
        q = [(sum((v[0][j, i] + v[0][j, n + i]) * x[i] for i in range(n)) + A * v[0][j, 2 * n]
              + 4) >> 3 for j in range(4)]
        a1 = [min(max(qj, 0), A) for qj in q]
        logits = [sum(v[1][c, j] * a1[j] for j in range(4)) + A * v[1][c, 4] for c in range(2)]
        e = [min(max(((A << 3) * (c == y) - logits[c]) >> 3, -3), 3) for c in range(2)]
        d0 = [t_hid[j] * e[j // 2] * (-m < q[j] < A + m) for j in range(4)]
        s = lfsr.draw()
        layers = ((list(x) + list(x) + [A], d0, [1] * n + [-1] * n + [0], t_hid),
                  (a1 + [A], e, t_hid + [0], [1, 1]))
        for l, (inp, d, t_pre, t_post) in enumerate(layers):
            k = cfg.shift[l]
            for j in range(v[l].shape[0]):
                for i in range(v[l].shape[1]):
                    if l == 1 and i < 4 and i // 2 != j:
                        assert v[l][j, i] == 0          # another class's neuron: absent
                        continue
                    off = (7 * i + 5 * l) % 16
                    r = ((s >> off) | (s << (16 - off))) & 0xFFFF & ((1 << k) - 1)
                    sign = t_post[j] * t_pre[i]
                    lo, hi = (0 if sign > 0 else -W), (0 if sign < 0 else W)
                    v[l][j, i] = min(max(v[l][j, i] + ((d[j] * inp[i] + r) >> k), lo), hi)
        assert tr.step(x, y) == int(np.argmax(logits))
        for want, got in zip(v, tr.v):
            np.testing.assert_array_equal(got, want)
    model = tr.model()
    np.testing.assert_array_equal(model.layers[0].weight, tr.v[0][:, :3] + tr.v[0][:, 3:6])
    assert model.shape == [3, 4, 2] and model.fmt.weight_bits == 6


def test_ed_learns_digits():
    from clockprop.models.datasets import load_dataset
    cfg = IntTrainConfig(rule="ed", hidden=(2,), weight_bits=8, drop=1, frac=(5, 5),
                         shift=(5, 5), e_shift=6, e_max=2, gate_margin=8, epochs=2)
    result = train_int(cfg, load_dataset("digits", 0))
    assert result.history[-1]["test_acc"] > 0.8
    assert result.model.shape == [64, 20, 10]


def test_gate_margin_is_the_documented_gate():
    cfg = IntTrainConfig(hidden=(5,), frac=(2, 2), gate_margin=3, epochs=1)
    tr = IntTrainer(cfg, 4, 3)
    rng = np.random.default_rng(2)
    x = rng.integers(0, 16, (200, 4))
    gates = []
    acts, _ = tr.forward_all(x, gates)
    w, b = tr.folded_weights()[0]
    q = (x @ w.T + 15 * b + 2) >> 2
    np.testing.assert_array_equal(acts[1], np.clip(q, 0, 15))
    np.testing.assert_array_equal(gates[0], (q > -3) & (q < 18))
    assert ((q <= 0) & gates[0]).any() and ((q >= 15) & gates[0]).any()


def test_rival_keeps_the_label_and_the_strongest_other_class():
    """``rival``: only the label's and its rival's errors survive; the rival is the first
    maximum of the other classes, even when it ties with the label or all are equal."""
    cfg = IntTrainConfig(hidden=(), frac=2, e_shift=0, e_max=3, rival=True)
    tr = IntTrainer(cfg, 4, 4)
    plain = IntTrainer(dataclasses.replace(cfg, rival=False), 4, 4)
    logits = np.array([[5, 9, 9, 1], [7, 7, 7, 7], [-3, -8, -3, 70], [0, 0, 0, 0]])
    labels = np.array([1, 0, 3, 2])
    full = plain.error(logits, labels)
    keep = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 1], [1, 0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(tr.error(logits, labels), np.where(keep, full, 0))
    assert (full[~keep] != 0).any()             # the mask is what zeroed them


def test_alternate_signs_and_onchip_configs():
    from clockprop.models.inttrain import (ONCHIP_DIGITS, ONCHIP_ECP5, ONCHIP_FOLD, ONCHIP_UP5K,
                                       onchip_config, onchip_fold)
    tr = IntTrainer(IntTrainConfig(hidden=(7,), signs="alternate"), 4, 3)
    np.testing.assert_array_equal(tr.signs[0], [1, 1, 1, -1, -1, -1, 1])
    np.testing.assert_array_equal(tr.tags[0], [0, 1, 2, 0, 1, 2, 0])
    assert onchip_config("ice40") is ONCHIP_UP5K and onchip_config("ecp5") is ONCHIP_ECP5
    assert ONCHIP_ECP5.hidden == () and ONCHIP_DIGITS.hidden == (30,)
    assert onchip_fold("ice40") == 1 and onchip_fold("ecp5") == onchip_fold() == ONCHIP_FOLD
    assert onchip_config() is ONCHIP_DIGITS


def test_ed_weights_must_keep_their_signs():
    cfg = IntTrainConfig(rule="ed", hidden=(), weight_bits=6, frac=3, shift=5)
    tr = IntTrainer(cfg, 2, 2)
    bad = [np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0]])]  # a - copy weight must be <= 0
    with pytest.raises(ClockpropError, match="wrong sign"):
        IntTrainer(cfg, 2, 2, weights=bad)
    assert tr.v[0].shape == (2, 5)


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
    from clockprop.models.datasets import load_dataset
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
    ({"gate_margin": -1}, "gate_margin"),
    ({"signs": "balanced"}, "signs"),
    ({"rival": 1}, "rival must be true or false"),
    ({"rule": "dfa"}, "csb, ed"),
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
