"""The PyTorch backend of the trainer: the same rules, the same random numbers, the same weights.

Skipped where PyTorch is not installed (``pip install torch==2.13.0``); the CUDA tests also
skip where no CUDA GPU is visible. ``make test`` installs ``.[dev,torch]``.
"""

import builtins
import sys

import numpy as np
import pytest

from clockprop.models.backend import NUMPY, get_backend
from clockprop.models.datasets import load_dataset
from clockprop.core.errors import ClockpropError
from clockprop.core.qformat import QFormat
from clockprop.models.rules import RULES, make_rule
from clockprop.models.train import TrainConfig, train

torch = pytest.importorskip("torch", reason="PyTorch is not installed "
                                            "(pip install torch==2.13.0)")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 0)


SMALL = {
    "ed": dict(rule="ed", hidden=(4, 3), epochs=2, lr=0.05, batch=8, prune=0.5),
    "csb": dict(rule="csb", hidden=(32, 16), epochs=2, lr=0.05, batch=8, prune=0.5),
    "bp": dict(rule="bp", hidden=(32, 16), epochs=2, lr=0.1, batch=8, prune=0.5),
}


def assert_same_nets(a, b):
    assert len(a.weights) == len(b.weights)
    for wa, wb, ba, bb in zip(a.weights, b.weights, a.biases, b.biases):
        np.testing.assert_allclose(wa, wb, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ba, bb, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_torch_cpu_matches_numpy(rule, digits):
    """Pruning included: a numpy run and a torch run of one config give the same net."""
    ref = train(TrainConfig(**SMALL[rule]), digits)
    got = train(TrainConfig(**SMALL[rule], device="cpu"), digits)
    for w in got.net.weights + got.net.biases:
        assert type(w) is np.ndarray and w.dtype == np.float64
    assert_same_nets(ref.net, got.net)
    for r, g in zip(ref.history, got.history):
        assert g["test_acc"] == r["test_acc"]
        assert g["loss"] == pytest.approx(r["loss"], rel=1e-9)
    assert ref.device == "cpu (numpy)"
    assert got.device.startswith("cpu (torch ")


@pytest.mark.parametrize("rule", sorted(RULES))
def test_torch_qat_learns_alike(rule, digits):
    """QAT puts activations, outputs and so the updates on the integer grid, where a last-bit
    difference of a float sum can round a weight or bias the other way (seen: a bias at exactly
    18.5 units): numpy and torch QAT runs agree closely, not to float rounding."""
    fmt = QFormat(act_bits=4, weight_bits=6)
    cfg = {**SMALL[rule], "hidden": SMALL[rule]["hidden"][:1], "qat": True, "prune": 0.0}
    ref = train(TrainConfig(**cfg), digits, fmt)
    got = train(TrainConfig(**cfg, device="cpu"), digits, fmt)
    assert got.history[-1]["int_test_acc"] > 0.8
    assert abs(got.history[-1]["int_test_acc"] - ref.history[-1]["int_test_acc"]) < 0.03


@pytest.mark.parametrize("rule", sorted(RULES))
def test_torch_rule_step(rule, digits):
    """One forward/update on tensors equals the numpy step; fold gives numpy arrays."""
    xp = get_backend("cpu")
    n, c = digits.n_inputs, digits.n_classes
    ref = make_rule(rule, n, (6, 5), c, np.random.default_rng(3))
    got = make_rule(rule, n, (6, 5), c, np.random.default_rng(3), backend=xp)
    x = digits.x_train[:32]
    t = np.eye(c)[digits.y_train[:32]]
    acts_r, y_r = ref.forward(x)
    acts_g, y_g = got.forward(xp.asarray(x))
    assert isinstance(y_g, torch.Tensor) and y_g.dtype == torch.float64
    np.testing.assert_allclose(xp.to_numpy(y_g), y_r, rtol=1e-12, atol=1e-12)
    loss_r = ref.update(acts_r, y_r, t, 0.05)
    loss_g = got.update(acts_g, y_g, xp.asarray(t), 0.05)
    assert float(loss_g) == pytest.approx(float(loss_r), rel=1e-12)
    assert_same_nets(ref.fold(), got.fold())


def test_device_validated():
    with pytest.raises(ClockpropError, match="device must be one of"):
        TrainConfig(device="gpu")
    assert TrainConfig().device == "numpy"
    assert get_backend("numpy") is NUMPY


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_cuda_missing_is_a_clear_error(digits):
    with pytest.raises(ClockpropError, match="no CUDA GPU is visible; use device"):
        train(TrainConfig(**SMALL["csb"], device="cuda"), digits)


def test_torch_missing_is_a_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ClockpropError, match=r"pip install torch==2\.13\.0"):
        get_backend("cpu")


@needs_cuda
@pytest.mark.parametrize("rule", sorted(RULES))
def test_cuda_matches_numpy(rule, digits):
    ref = train(TrainConfig(**SMALL[rule]), digits)
    got = train(TrainConfig(**SMALL[rule], device="cuda"), digits)
    assert got.device.startswith("cuda (")
    for wa, wb in zip(ref.net.weights, got.net.weights):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-9)
