"""The float network in inference form, and its quantization into an :class:`IntModel`.

Layer ``l`` computes ``h_l = W_l @ f(h_{l-1}) + b_l`` with ``f(h) = clip(h, 0, 1)`` applied to
every layer's input (``h_{-1}`` is the input itself) and no activation after the last layer.
Every learning rule ends in this form, whatever it trains internally (ED's doubled inputs
and per-class networks fold into plain dense layers).
"""

import itertools
from dataclasses import dataclass

import numpy as np

from .intmodel import IntLayer, IntModel

__all__ = ["FloatNet", "quantize", "JOINT_SEARCH"]

JOINT_SEARCH = 64      # calibration tries every combination of fraction bits up to this many


def activation(h):
    """``f``: the saturating clamp to ``[0, 1]`` applied to a layer's input."""
    return np.clip(h, 0.0, 1.0)


@dataclass
class FloatNet:
    weights: list       # W_l, float64 [n_out, n_in]
    biases: list        # b_l, float64 [n_out]

    def forward(self, x):
        """Logits for float inputs ``x`` [N, n_in]."""
        h = np.asarray(x, dtype=np.float64)
        for w, b in zip(self.weights, self.biases):
            h = activation(h) @ w.T + b
        return h

    def predict(self, x):
        return np.argmax(self.forward(x), axis=1)

    def accuracy(self, x, y):
        return float(np.mean(self.predict(x) == y))


def _int_layer(w, b, fmt, frac, rounding):
    return IntLayer(weight=fmt.quantize_weight(w, frac).astype(np.int64),
                    bias=fmt.quantize_bias(b, frac, rounding).astype(np.int64), frac=frac)


def quantize(net, fmt, meta=None, calibrate=None, extra_bits=3):
    """Post-training quantization: per-layer power-of-two weight scale, folded rounding.

    Each layer's fraction width starts at the largest that holds its biggest weight
    unclipped (:meth:`QFormat.choose_frac`). With ``calibrate = (x, y)`` (float inputs and
    labels of the training split) every layer may take up to ``extra_bits`` more fraction
    bits (finer weights, the few largest saturated): of all such combinations (layer by
    layer, first to last, when there are more than :data:`JOINT_SEARCH` of them) the one
    whose integer model is the most accurate on ``(x, y)`` wins; agreement with the float
    net's predictions breaks ties, then fewer bits.
    """
    n = len(net.weights)
    fracs = [fmt.choose_frac(w, b) for w, b in zip(net.weights, net.biases)]

    def build(fracs):
        return IntModel(fmt, tuple(_int_layer(w, b, fmt, f, l < n - 1) for l, (w, b, f) in
                                   enumerate(zip(net.weights, net.biases, fracs))),
                        dict(meta or {}))

    if calibrate is not None:
        x, y = calibrate
        a = fmt.quantize_input(x)
        reference = net.predict(x)

        def score(fracs):
            predicted = build(fracs).predict(a)
            return np.mean(predicted == y), np.mean(predicted == reference)

        steps = range(extra_bits + 1)
        if len(steps) ** n <= JOINT_SEARCH:
            options = [[f + k for f, k in zip(fracs, ks)]
                       for ks in itertools.product(steps, repeat=n)]
            fracs = max((o for o in options if max(o) <= 24), key=score)  # first of equals
        else:
            for l in range(n):
                options = [fracs[:l] + [fracs[l] + k] + fracs[l + 1:]
                           for k in steps if fracs[l] + k <= 24]
                fracs = max(options, key=score)
    return build(fracs)
