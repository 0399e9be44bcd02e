"""The integer golden model: the exact arithmetic of the gateware, in plain numpy.

``IntModel.forward`` is what ``hw.pipeline.Pipeline`` computes, bit for bit:

    a_0 = quantized input                      (unsigned, act_bits)
    h_l = W_l @ a_l + b_l                      (signed, width fmt.acc_width(W_l, b_l))
    a_{l+1} = clip(h_l >> frac_l, 0, A)        (every layer but the last)
    logits = h_{L-1};  class = first index of the largest logit

A hidden layer may instead be a table layer (``IntLayer.table``, the ``lut`` rule of
:mod:`clockprop.models.lutnet`): neuron ``j`` reads the inputs where ``W_j`` is 1 and its
next activation is ``table[j][code]``, the entry its input code selects
(:func:`~clockprop.models.truthtable.pack_codes`); its accumulator is that value shifted left
by ``frac``, so the activation above gives it back.

A model is stored as one versioned JSON file: integer weights, the number format, and
metadata (rule, dataset, split seed, accuracies, learning curve), guarded by a SHA-256 of
its canonical content.
"""

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from ..core.document import load_document, save_document
from ..core.errors import ClockpropError
from ..core.qformat import QFormat
from .truthtable import pack_codes

__all__ = ["IntLayer", "IntModel", "FILE_FORMAT", "FILE_VERSION"]

FILE_FORMAT = "clockprop-model"
FILE_VERSION = 1


@dataclass(frozen=True)
class IntLayer:
    weight: np.ndarray      # int64 [n_out, n_in], in [-W, W]
    bias: np.ndarray        # int64 [n_out], accumulator units (rounding folded in)
    frac: int               # weight fraction bits; the next activation is acc >> frac
    table: np.ndarray = None    # int64 [n_out, 2**(fan_in * act_bits)] in [0, A], or None

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
            if layer.table is not None:
                self._check_table(l, layer)
            if l and layer.n_in != self.layers[l - 1].n_out:
                raise ClockpropError(f"layer {l} takes {layer.n_in} inputs but layer {l - 1} "
                                     f"gives {self.layers[l - 1].n_out}")

    def _check_table(self, l, layer):
        rows = (layer.weight != 0).sum(axis=1)
        k = int(rows.max(initial=0))
        shape = (layer.n_out, 1 << (k * self.fmt.act_bits))
        if l == len(self.layers) - 1 or not (rows == k).all() or layer.table.shape != shape:
            raise ClockpropError(
                f"table layer {l} is malformed: it must be a hidden layer whose neurons all "
                f"read {k} inputs, with a table of shape {shape}, got "
                f"{layer.table.shape}; re-run 'clockprop train'")
        if ((layer.weight != 0) & (layer.weight != 1)).any() or layer.bias.any():
            raise ClockpropError(f"table layer {l} must have 0/1 weights (the inputs each "
                                 f"neuron reads) and zero biases; re-run 'clockprop train'")
        if layer.table.min(initial=0) < 0 or layer.table.max(initial=0) > self.fmt.a_max:
            raise ClockpropError(f"table layer {l} holds values outside [0, {self.fmt.a_max}] "
                                 f"({self.fmt.act_bits}-bit activations); re-run "
                                 f"'clockprop train'")

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
            if layer.table is None:
                h = a @ layer.weight.T + layer.bias
            else:
                h = self._lookup(layer, a) << layer.frac
            hs.append(h)
            if l < len(self.layers) - 1:
                a = self.fmt.activate(h, layer.frac)
        return hs

    def _lookup(self, layer, a):
        """Every neuron's table entry for activations ``a`` [N, n_in]."""
        codes = np.stack([pack_codes(a, np.flatnonzero(row), self.fmt.act_bits)
                          for row in layer.weight], axis=1)
        return np.take_along_axis(layer.table.T, codes, axis=0)

    def forward(self, a):
        """Logits (int64 [N, n_classes]) for integer inputs ``a``."""
        return self.trace(a)[-1]

    def predict(self, a):
        return np.argmax(self.forward(a), axis=1)

    def accuracy(self, a, y):
        return float(np.mean(self.predict(a) == np.asarray(y)))

    def digest(self):
        """SHA-256 (hex) of what the gateware computes: the number format and every layer
        (weights, biases, fraction bits, tables)."""
        h = hashlib.sha256(json.dumps(self.fmt.to_dict(), sort_keys=True).encode())
        for layer in self.layers:
            h.update(np.ascontiguousarray(layer.weight, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(layer.bias, dtype=np.int64).tobytes())
            h.update(str((layer.weight.shape, layer.frac)).encode())
            if layer.table is not None:
                h.update(np.ascontiguousarray(layer.table, dtype=np.int64).tobytes())
        return h.hexdigest()

    # -- the model file -----------------------------------------------------------------

    def save(self, path):
        save_document(path, FILE_FORMAT, FILE_VERSION, {
            "qformat": self.fmt.to_dict(),
            "layers": [{"frac": layer.frac, "weight": layer.weight.tolist(),
                        "bias": layer.bias.tolist(),
                        **({} if layer.table is None else {"table": layer.table.tolist()})}
                       for layer in self.layers],
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
                                    bias=np.array(d["bias"], dtype=np.int64), frac=d["frac"],
                                    table=None if d.get("table") is None else
                                    np.array(d["table"], dtype=np.int64))
                           for d in content["layers"])
        except (KeyError, TypeError, ValueError) as e:
            raise ClockpropError(f"model file {path} is malformed: {e}") from None
        return cls(fmt, layers, content.get("meta", {}))
