"""Constant multiplication as shift-adds, and balanced adder trees that count their cost.

A weight ``w`` is written in canonical signed digits (the non-adjacent form): ``w = sum
d_k 2**k`` with ``d_k`` in ``{-1, 0, +1}`` and no two adjacent digits non-zero. ``a * w`` then
costs one adder per non-zero digit beyond the first, and a zero weight costs nothing. The
products of a whole neuron go into one balanced tree of adders and subtracters, so its depth
is ``ceil(log2(terms))``.
"""

from dataclasses import dataclass

from amaranth.hdl import Const, Signal, unsigned

__all__ = ["csd_digits", "csd_count", "Cost", "AdderTree", "data_register"]


def csd_digits(w):
    """Non-adjacent form of integer ``w``: a list of ``(shift, sign)``, lowest shift first."""
    w = int(w)
    digits = []
    shift = 0
    while w:
        if w & 1:
            d = 2 - (w & 3)          # +1 if w = 1 mod 4, -1 if w = 3 mod 4
            digits.append((shift, d))
            w -= d
        w >>= 1
        shift += 1
    return digits


def csd_count(weights):
    """Total non-zero signed digits of an integer array: the number of product terms."""
    return sum(len(csd_digits(w)) for w in weights.ravel() if w)


@dataclass
class Cost:
    """Resource tally of generated logic: LUT4-equivalents and flip-flops.

    An adder or subtracter of ``n`` output bits counts ``n`` LUT4 (one LUT and one carry
    per bit on iCE40; ECP5's CCU2C packs two bits into two LUT4s); a register counts one FF
    per bit; a 2:1 multiplexer of ``n`` bits counts ``n`` LUT4. ``rom_bits`` counts the bits
    of weight ROMs (block RAM).
    """
    lut: int = 0
    ff: int = 0
    rom_bits: int = 0

    def __iadd__(self, other):
        self.lut += other.lut
        self.ff += other.ff
        self.rom_bits += other.rom_bits
        return self


def _range(value):
    """``(lo, hi)`` that a value of ``value``'s shape can take."""
    shape = value.shape()
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def _range_bits(lo, hi):
    """Bits of a two's-complement (or, when ``lo >= 0``, unsigned) number in ``[lo, hi]``."""
    if lo >= 0:
        return max(hi.bit_length(), 1)
    return max(hi.bit_length(), (-lo - 1).bit_length()) + 1


class AdderTree:
    """Builds balanced sums of signed terms, optionally pipelined, and tallies their cost.

    Parameters
    ----------
    m : Module
        Module that receives the pipeline registers (in ``sync``, gated by ``en``).
    en : Value
        Clock enable of the pipeline registers.
    register_every : int
        Insert a register level after this many adder levels (0: purely combinational).
    cost : Cost
        Tally that the tree adds to.
    """

    def __init__(self, m, en, register_every, cost):
        self._m = m
        self._en = en
        self._every = register_every
        self.cost = cost

    def levels_for(self, n_terms, constant=0):
        """Register levels that a tree of ``n_terms`` terms (and ``constant``) gets."""
        n_terms += constant != 0
        depth = max(n_terms - 1, 0).bit_length()      # ceil(log2(n_terms))
        return (depth - 1) // self._every if self._every and depth else 0

    def sum(self, terms, constant, name, levels):
        """``sum(sign * value for value, sign in terms) + constant``, after ``levels`` clocks.

        A term may be ``(value, sign, zeros)``: its lowest ``zeros`` bits are known to be 0
        (a shifted input), which the cost tally leaves out.

        ``levels`` must be at least :meth:`levels_for` the number of terms and the constant;
        shorter trees are padded with delay registers so that every neuron of a layer has the
        same latency.
        """
        # Each node is (value, sign, zeros, lo, hi): the sum it stands for is sign * value,
        # whose lowest `zeros` bits are known to be 0 (a leaf `x << shift` has `shift` of
        # them) and whose value lies in [lo, hi]. An adder costs the bits that range needs
        # above the zeros: what synthesis keeps, where Amaranth's widths grow by the signs
        # (a 440-term vote layer of 2-bit terms: 1,885 estimated, 2,030 SB_LUT4 in
        # synth_ice40).
        # Combining signs this way needs no negation at the leaves: (+a) + (-b) is a - b.
        # The constant is a leaf too, not an adder after the tree's last register.
        nodes = [(v, s, z[0] if z else 0, *_range(v)) for v, s, *z in terms]
        if constant:
            nodes.append((Const(abs(constant)), +1 if constant > 0 else -1, 0, abs(constant),
                          abs(constant)))
        nodes = nodes or [(Const(0, unsigned(1)), +1, 0, 0, 0)]
        depth = done = 0
        while len(nodes) > 1:
            paired = []
            for k in range(0, len(nodes) - 1, 2):
                (a, sa, za, alo, ahi), (b, sb, zb, blo, bhi) = nodes[k], nodes[k + 1]
                if sa == sb:
                    node = (a + b, sa, min(za, zb), alo + blo, ahi + bhi)
                elif sa > 0:
                    node = (a - b, +1, min(za, zb), alo - bhi, ahi - blo)
                else:
                    node = (b - a, +1, min(za, zb), blo - ahi, bhi - alo)
                self.cost.lut += max(_range_bits(node[3], node[4]) - node[2], 1)
                paired.append(node)
            if len(nodes) % 2:
                paired.append(nodes[-1])
            nodes = paired
            depth += 1
            if self._every and depth % self._every == 0 and len(nodes) > 1:
                nodes = [(self._register(v, f"{name}_t{done}_{k}"), *rest)
                         for k, (v, *rest) in enumerate(nodes)]
                done += 1
        assert done <= levels
        value, sign, *_ = nodes[0]
        total = value
        if sign < 0:
            total = -value
            self.cost.lut += len(total)
        return self.delay(total, levels - done, name)

    def delay(self, value, cycles, name):
        """``value`` delayed by ``cycles`` enabled clocks."""
        for k in range(cycles):
            value = self._register(value, f"{name}_d{k}")
        return value

    def _register(self, value, name):
        return data_register(self._m, self._en, value, name, self.cost)


def data_register(m, en, value, name, cost):
    """``value`` registered in ``m``'s sync domain while ``en``; counted in ``cost``.

    A data register has no reset: only the valid bits do (hw.stage), so the reset net reaches
    a few hundred flip-flops instead of every register of the design (on the ECP5 that net
    had become an 11.9 ns route). A constant (a bias or a class index passing a level
    unpaired) stays a constant: registered, it would be a flip-flop that yosys cannot remove
    (its initial value differs) and merges with every other register of that constant across
    the device.
    """
    if isinstance(value, Const):
        return value
    reg = Signal.like(value, name=name, reset_less=True)
    with m.If(en):
        m.d.sync += reg.eq(value)
    cost.ff += len(reg)
    return reg
