"""The number format: the one contract between the trainer and the elaborators.

Activations are unsigned integers ``a`` in ``[0, A]`` with ``A = 2**act_bits - 1``; they
stand for the float activation ``a / A``, so the float clamp ``f(h) = clip(h, 0, 1)`` and the
integer saturation to ``[0, A]`` are the same function.

Weights are signed integers ``w`` in ``[-W, W]`` with ``W = 2**(weight_bits - 1) - 1``
(symmetric, so negation never overflows). Each layer has its own power-of-two scale: the
integer weight stands for ``w / 2**frac``. A layer's accumulator therefore holds
``h * A * 2**frac``, and the next layer's activation is

    a' = clip(acc >> frac, 0, A)

``>>`` floors (numpy and Amaranth agree). Round-half-up is obtained by folding
``1 << (frac - 1)`` into the bias of every layer that feeds an activation, so neither the
golden model nor the gateware spends an adder on rounding.
"""

from dataclasses import dataclass

import numpy as np

from .errors import ClockpropError

__all__ = ["QFormat", "signed_width", "round_half_away"]


def signed_width(lo, hi):
    """Bits of the smallest two's-complement type that holds every integer in ``[lo, hi]``."""
    lo, hi = int(lo), int(hi)
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def round_half_away(x):
    """Round to the nearest integer, halves away from zero (``np.round`` rounds to even)."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


@dataclass(frozen=True)
class QFormat:
    """Bit widths shared by the quantizer, the golden model and the gateware.

    Parameters
    ----------
    act_bits : int
        Width of an (unsigned) activation, 1..8.
    weight_bits : int
        Width of a (signed, symmetric) weight, 2..16.
    bias_bits : int
        Width of a (signed) bias, in accumulator units, 2..32.
    """

    act_bits: int = 4
    weight_bits: int = 8
    bias_bits: int = 20

    def __post_init__(self):
        for name, lo, hi in (("act_bits", 1, 8), ("weight_bits", 2, 16), ("bias_bits", 2, 32)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ClockpropError(
                    f"number format: {name} must be an integer in [{lo}, {hi}], got {value!r}")

    @property
    def a_max(self):
        """Largest activation ``A``; it stands for the float activation 1.0."""
        return (1 << self.act_bits) - 1

    @property
    def w_max(self):
        """Largest weight magnitude ``W``."""
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def b_max(self):
        """Largest bias magnitude."""
        return (1 << (self.bias_bits - 1)) - 1

    # -- float -> integer ---------------------------------------------------------------

    def quantize_input(self, x):
        """Float inputs in ``[0, 1]`` (clipped) to activations in ``[0, A]``."""
        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
        return np.floor(x * self.a_max + 0.5).astype(np.int64)

    def choose_frac(self, w, b, max_frac=24):
        """Largest fraction width that holds every weight of ``w`` and bias of ``b`` unclipped.

        Raises :class:`ClockpropError` when even ``frac = 1`` (the least that leaves room
        for the folded rounding bit) cannot hold them.
        """
        w_peak = float(np.max(np.abs(w))) if np.size(w) else 0.0
        b_peak = float(np.max(np.abs(b))) if np.size(b) else 0.0
        if not (np.isfinite(w_peak) and np.isfinite(b_peak)):
            raise ClockpropError("weights contain NaN or infinity; training diverged "
                                 "(lower the learning rate)")

        def fits(frac):
            return (w_peak * (1 << frac) + 0.5 < self.w_max + 1 and
                    (b_peak * self.a_max + 1) * (1 << frac) + 0.5 < self.b_max + 1)

        frac = max_frac
        while frac > 1 and not fits(frac):
            frac -= 1
        if not fits(frac):
            raise ClockpropError(
                f"weights do not fit the format: largest |w| = {w_peak:.3g}, |b| = "
                f"{b_peak:.3g} need more than {self.weight_bits} weight bits / "
                f"{self.bias_bits} bias bits; raise them or train with smaller weights")
        return frac

    def quantize_weight(self, w, frac):
        """Float weights to integers at ``frac`` fraction bits, saturated to ``[-W, W]``."""
        return np.clip(round_half_away(np.asarray(w) * (1 << frac)), -self.w_max, self.w_max)

    def quantize_bias(self, b, frac, rounding):
        """Float biases to accumulator units; ``rounding`` folds the half-LSB of ``>> frac``."""
        q = round_half_away(np.asarray(b) * (1 << frac) * self.a_max)
        if rounding:
            q = q + (1 << (frac - 1))
        return np.clip(q, -self.b_max, self.b_max)

    # -- integer arithmetic shared with the gateware ------------------------------------

    def activate(self, acc, frac):
        """The activation of the next layer's input: ``clip(acc >> frac, 0, A)``."""
        return np.clip(np.asarray(acc, dtype=np.int64) >> frac, 0, self.a_max)

    def acc_bounds(self, weight, bias):
        """Exact ``(lo, hi)`` over all neurons of ``weight @ a + bias`` for ``a`` in ``[0, A]``."""
        weight = np.asarray(weight, dtype=np.int64)
        bias = np.asarray(bias, dtype=np.int64)
        lo = bias + self.a_max * np.minimum(weight, 0).sum(axis=1)
        hi = bias + self.a_max * np.maximum(weight, 0).sum(axis=1)
        return int(lo.min()), int(hi.max())

    def acc_width(self, weight, bias):
        """Width of the signed accumulator of a layer; it cannot overflow for any input."""
        return signed_width(*self.acc_bounds(weight, bias))

    def check_layer(self, weight, bias, frac):
        """Raise :class:`ClockpropError` unless a layer's integers fit this format."""
        weight = np.asarray(weight)
        bias = np.asarray(bias)
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ClockpropError(f"layer shapes do not match: weight {weight.shape}, "
                                 f"bias {bias.shape}")
        if weight.size and int(np.abs(weight).max()) > self.w_max:
            raise ClockpropError(
                f"weights do not fit the format: |w| = {int(np.abs(weight).max())} > "
                f"{self.w_max} ({self.weight_bits} weight bits)")
        if bias.size and int(np.abs(bias).max()) > self.b_max:
            raise ClockpropError(
                f"biases do not fit the format: |b| = {int(np.abs(bias).max())} > "
                f"{self.b_max} ({self.bias_bits} bias bits)")
        if not isinstance(frac, int) or not 1 <= frac <= 24:
            raise ClockpropError(f"layer fraction bits must be in [1, 24], got {frac!r}")

    def to_dict(self):
        return {"act_bits": self.act_bits, "weight_bits": self.weight_bits,
                "bias_bits": self.bias_bits}
