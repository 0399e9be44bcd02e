"""The integer golden model stays within the quantization error bound of the float net."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from clockprop.models.floatnet import FloatNet, activation, quantize
from clockprop.core.qformat import QFormat


def error_bound(net, model, x):
    """Worst-case |logits_int / scale - logits_float| per sample, propagated layer by layer."""
    fmt = model.fmt
    A = fmt.a_max
    err = np.full(x.shape, 0.5 / A)                     # input rounding
    v = activation(x)
    for l, (w, layer) in enumerate(zip(net.weights, model.layers)):
        step = 1.0 / (1 << layer.frac)
        err = (err @ np.abs(w).T + 0.5 * step * (v + err).sum(axis=1, keepdims=True)
               + 0.5 * step / A)
        h = v @ w.T + net.biases[l]
        if l < len(net.weights) - 1:
            err = err + 0.5 / A                         # rounding of acc >> frac
            v = activation(h)
    return err


@given(seed=st.integers(0, 2**32 - 1), shape=st.lists(st.integers(1, 12), min_size=2,
                                                        max_size=4),
       act_bits=st.integers(2, 8), weight_bits=st.integers(4, 12))
def test_golden_within_quantization_bound(seed, shape, act_bits, weight_bits):
    rng = np.random.default_rng(seed)
    net = FloatNet([rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))
                    for n_in, n_out in zip(shape, shape[1:])],
                   [rng.normal(0, 0.3, n_out) for n_out in shape[1:]])
    fmt = QFormat(act_bits=act_bits, weight_bits=weight_bits, bias_bits=24)
    model = quantize(net, fmt)
    x = rng.random((50, shape[0]))
    scale = fmt.a_max * (1 << model.layers[-1].frac)
    diff = np.abs(model.forward(fmt.quantize_input(x)) / scale - net.forward(x))
    assert np.all(diff <= error_bound(net, model, x) + 1e-9)


def test_more_bits_means_closer():
    rng = np.random.default_rng(0)
    net = FloatNet([rng.normal(0, 0.3, (16, 10)), rng.normal(0, 0.3, (4, 16))],
                   [rng.normal(0, 0.1, 16), rng.normal(0, 0.1, 4)])
    x = rng.random((200, 10))
    errors = []
    for bits in (3, 5, 8):
        fmt = QFormat(act_bits=bits, weight_bits=bits + 2, bias_bits=24)
        model = quantize(net, fmt)
        scale = fmt.a_max * (1 << model.layers[-1].frac)
        errors.append(np.abs(model.forward(fmt.quantize_input(x)) / scale
                             - net.forward(x)).mean())
    assert errors[0] > errors[1] > errors[2]


@given(seed=st.integers(0, 2**32 - 1), depth=st.integers(2, 4))
def test_calibration_never_loses_training_accuracy(seed, depth):
    """Calibrated fraction bits are chosen on the training split among candidates that
    include the uncalibrated ones, so the integer model's training accuracy cannot drop."""
    rng = np.random.default_rng(seed)
    shape = [6] + [int(rng.integers(3, 8)) for _ in range(depth - 1)] + [3]
    net = FloatNet([rng.normal(0, 0.6, (o, i)) for i, o in zip(shape, shape[1:])],
                   [rng.normal(0, 0.3, o) for o in shape[1:]])
    fmt = QFormat(act_bits=3, weight_bits=4, bias_bits=16)
    x = rng.random((60, 6))
    y = net.predict(x) if seed % 2 else rng.integers(0, 3, 60)
    plain = quantize(net, fmt)
    calibrated = quantize(net, fmt, calibrate=(x, y))
    a = fmt.quantize_input(x)
    assert calibrated.accuracy(a, y) >= plain.accuracy(a, y)
    assert all(c.frac >= p.frac for c, p in zip(calibrated.layers, plain.layers))
    assert all(c.frac - p.frac <= 3 for c, p in zip(calibrated.layers, plain.layers))
