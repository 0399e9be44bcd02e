"""The float network in inference form, and its quantization into an :class:`IntModel`.

Layer ``l`` computes ``h_l = W_l @ f(h_{l-1}) + b_l`` with ``f(h) = clip(h, 0, 1)`` applied to
every layer's input (``h_{-1}`` is the input itself) and no activation after the last layer.
Every learning rule ends in this form, whatever it trains internally (ED's doubled inputs
and per-class networks fold into plain dense layers).
"""

from dataclasses import dataclass

import numpy as np

from .intmodel import IntLayer, IntModel

__all__ = ["FloatNet", "quantize"]


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


def quantize(net, fmt, meta=None):
    """Post-training quantization: per-layer power-of-two weight scale, folded rounding."""
    layers = []
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        frac = fmt.choose_frac(w, b)
        rounding = l < len(net.weights) - 1
        layers.append(IntLayer(weight=fmt.quantize_weight(w, frac).astype(np.int64),
                               bias=fmt.quantize_bias(b, frac, rounding).astype(np.int64),
                               frac=frac))
    return IntModel(fmt, tuple(layers), dict(meta or {}))
