"""The one software LFSR: a 16-bit maximal-length Galois LFSR, the twin of the gateware's
(stochastic rounding in :mod:`clockprop.models.inttrain` and :mod:`clockprop.hw.update`,
sampling in :mod:`clockprop.models.recurrent` and :mod:`clockprop.hw.recurrent`)."""

from .errors import ClockpropError

__all__ = ["LFSR_TAPS", "Lfsr16"]

LFSR_TAPS = 0xB400          # x^16 + x^14 + x^13 + x^11 + 1, Galois, shifting right


class Lfsr16:
    """The 16-bit maximal-length Galois LFSR shared with the gateware.

    One step: ``out = s & 1; s >>= 1; if out: s ^= 0xB400`` (period 65535, ``s != 0``).
    One draw is 16 steps and returns the new state ``u`` in ``[1, 65535]``.
    """

    def __init__(self, seed=0xACE1):
        if not isinstance(seed, int) or not 1 <= seed <= 0xFFFF:
            raise ClockpropError(f"the LFSR seed must be an integer in [1, 65535], got "
                                 f"{seed!r} (0 would lock the LFSR)")
        self.state = seed

    def step(self):
        out = self.state & 1
        self.state >>= 1
        if out:
            self.state ^= LFSR_TAPS
        return self.state

    def draw(self):
        for _ in range(16):
            self.step()
        return self.state
