"""The integer golden model: the exact arithmetic of the gateware, in plain numpy.

``IntModel.forward`` is what ``hw.pipeline.Pipeline`` computes, bit for bit:

    a_0 = quantized input                      (unsigned, act_bits)
    h_l = W_l @ a_l + b_l                      (signed, width fmt.acc_width(W_l, b_l))
    a_{l+1} = clip(h_l >> frac_l, 0, A)        (every layer but the last)
    logits = h_{L-1};  class = first index of the largest logit

A model is stored as one versioned JSON file: integer weights, the number format, and
metadata (rule, dataset, split seed, accuracies, learning curve), guarded by a SHA-256 of
its canonical content.
"""

from dataclasses import dataclass, field

import numpy as np

from ..core.document import load_document, save_document
from ..core.errors import ClockpropError
from ..core.qformat import QFormat

__all__ = ["IntLayer", "IntModel", "FILE_FORMAT", "FILE_VERSION"]

FILE_FORMAT = "clockprop-model"
FILE_VERSION = 1


@dataclass(frozen=True)
class IntLayer:
    weight: np.ndarray      # int64 [n_out, n_in], in [-W, W]
    bias: np.ndarray        # int64 [n_out], accumulator units (rounding folded in)
    frac: int               # weight fraction bits; the next activation is acc >> frac

    @property
    def n_in(self):
        return self.weight.shape[1]

    @property
    def n_out(self):
        return self.weight.shape[0]


@dataclass(frozen=True)
class IntModel:
    fmt: QFormat
    layers: tuple
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.layers:
            raise ClockpropError("a model needs at least one layer")
        for l, layer in enumerate(self.layers):
            self.fmt.check_layer(layer.weight, layer.bias, layer.frac)
            if l and layer.n_in != self.layers[l - 1].n_out:
                raise ClockpropError(f"layer {l} takes {layer.n_in} inputs but layer {l - 1} "
                                     f"gives {self.layers[l - 1].n_out}")

    @property
    def n_inputs(self):
        return self.layers[0].n_in

    @property
    def n_classes(self):
        return self.layers[-1].n_out

    @property
    def shape(self):
        return [self.n_inputs] + [layer.n_out for layer in self.layers]

    def acc_widths(self):
        """Accumulator width of every layer (the gateware's register widths)."""
        return [self.fmt.acc_width(layer.weight, layer.bias) for layer in self.layers]

    def check_inputs(self, a):
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[1] != self.n_inputs:
            raise ClockpropError(f"inputs have shape {a.shape}; the model takes "
                                 f"{self.n_inputs} features per sample")
        if a.size and (a.min() < 0 or a.max() > self.fmt.a_max):
            raise ClockpropError(f"input activations must be integers in [0, {self.fmt.a_max}]")
        return a.astype(np.int64)

    def trace(self, a):
        """Accumulators ``h_l`` of every layer for integer inputs ``a`` [N, n_in]."""
        a = self.check_inputs(a)
        hs = []
        for l, layer in enumerate(self.layers):
            h = a @ layer.weight.T + layer.bias
            hs.append(h)
            if l < len(self.layers) - 1:
                a = self.fmt.activate(h, layer.frac)
        return hs

    def forward(self, a):
        """Logits (int64 [N, n_classes]) for integer inputs ``a``."""
        return self.trace(a)[-1]

    def predict(self, a):
        return np.argmax(self.forward(a), axis=1)

    def accuracy(self, a, y):
        return float(np.mean(self.predict(a) == np.asarray(y)))

    # -- the model file -----------------------------------------------------------------

    def save(self, path):
        save_document(path, FILE_FORMAT, FILE_VERSION, {
            "qformat": self.fmt.to_dict(),
            "layers": [{"frac": layer.frac, "weight": layer.weight.tolist(),
                        "bias": layer.bias.tolist()} for layer in self.layers],
            "meta": self.meta,
        })

    @classmethod
    def load(cls, path):
        content = load_document(path, FILE_FORMAT, FILE_VERSION, "model file",
                                "re-run 'clockprop train'")
        try:
            fmt = QFormat(**content["qformat"])
            layers = tuple(IntLayer(weight=np.array(d["weight"], dtype=np.int64).reshape(
                                        len(d["bias"]), -1),
                                    bias=np.array(d["bias"], dtype=np.int64), frac=d["frac"])
                           for d in content["layers"])
        except (KeyError, TypeError, ValueError) as e:
            raise ClockpropError(f"model file {path} is malformed: {e}") from None
        return cls(fmt, layers, content.get("meta", {}))
