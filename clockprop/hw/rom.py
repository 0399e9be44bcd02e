"""A read-only memory in logic, pipelined so that no path is more than a few LUTs deep."""

from amaranth.hdl import Array, Cat, Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["LogicRom"]


class LogicRom(wiring.Component):
    """``words`` as LUTs and flip-flops: one read per clock, ``latency`` clocks deep.

    The address is registered first, through a tree of copies ``group`` wide, down to
    ``copies`` flip-flop copies, each of which drives the LUTs of ``width / copies`` data bits
    (:mod:`boards.build` keeps copies apart). Each bank of
    ``2**bank_bits`` words is then one LUT per data bit, read by the low address bits into a
    register; each later stage picks one of ``2**radix_bits`` registers of the stage before
    by the next address bits (delayed along), into a register, until one word is left.

    On the ECP5 this is what a test split streamed at one sample per clock needs at 150 MHz:
    nextpnr gives a block RAM's data 5.5 to 5.8 ns after the clock, whatever its output
    register, and a logic ROM's deepest path here is one LUT, or a 4-to-1 multiplexer (two
    LUTs and a slice's PFUMX). The 450 x 256-bit digits split alone, with a copy per 8 bits:
    151.1 MHz, 10,584 LUT4 and 8,133 FF (a 256-bit block-RAM ROM read into registers: 134.9
    MHz).

    Members
    -------
    en : ``In(1)``
        Clock enable of every stage (the address register included).
    addr : ``In(range(len(words)))``
        Word to read (an address out of range reads some word).
    data : ``Out(width)``
        ``words[addr]`` from ``latency`` enabled clocks earlier (0 at first, then, until an
        address has passed, ``words[init_addr]``).
    """

    def __init__(self, words, width, *, bank_bits=4, radix_bits=2, copies=1, group=4,
                 init_addr=0):
        if not words:
            raise ValueError("a ROM needs at least one word")
        self.words = [int(w) for w in words]
        self.width = width
        self.bank_bits = bank_bits
        self.radix_bits = radix_bits
        self.group = group
        self.init_addr = init_addr
        self.copies = max(1, min(copies, width))
        while (self.copies - 1) * -(-width // self.copies) >= width:   # no empty copy
            self.copies -= 1
        banks = -(-len(self.words) // (1 << bank_bits))
        self.levels = 0                          # mux stages after the banks
        while banks > 1:
            banks = -(-banks // (1 << radix_bits))
            self.levels += 1
        self._fanout = [self.copies]         # address registers per level, last first
        while self._fanout[0] > group:
            self._fanout.insert(0, -(-self._fanout[0] // group))
        self.latency = len(self._fanout) + 1 + self.levels
        super().__init__({"en": In(1), "addr": In(range(len(self.words))),
                          "data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        n = len(self.words)
        addr_bits = max(1, ceil_log2(n))
        chunk = -(-self.width // self.copies)
        size = 1 << self.bank_bits
        parts = []
        # The address fans out through a tree of registers, ``group`` wide, to the copies.
        copies = [self.addr]
        for depth, count in enumerate(self._fanout):
            parent = copies
            copies = []
            for i in range(count):
                copies.append(Signal(addr_bits, name=f"copy_rom_addr{depth}_{i}",
                                     reset_less=True, init=self.init_addr))
                with m.If(self.en):
                    m.d.sync += copies[-1].eq(parent[i // self.group] if depth else self.addr)
        for c in range(self.copies):
            lo_bit, hi_bit = c * chunk, min(self.width, (c + 1) * chunk)
            w = hi_bit - lo_bit
            addr = copies[c]
            stage = []
            for b in range(0, n, size):
                reg = Signal(w, name=f"rom{c}_b{b // size}", reset_less=True)
                bits = []
                for j in range(lo_bit, hi_bit):
                    table = sum(((x >> j) & 1) << i for i, x in enumerate(self.words[b:b + size]))
                    bits.append(self._lut(m, platform, table, addr[:self.bank_bits]))
                with m.If(self.en):
                    m.d.sync += reg.eq(Cat(*bits))
                stage.append(reg)
            select = addr[self.bank_bits:]       # the address bits left to decode
            for level in range(self.levels):
                sel = Signal(len(select), name=f"copy_rom{c}_sel{level}", reset_less=True)
                with m.If(self.en):
                    m.d.sync += sel.eq(select)
                radix = 1 << self.radix_bits
                nxt = []
                for g in range(0, len(stage), radix):
                    group = stage[g:g + radix]
                    reg = Signal(w, name=f"rom{c}_l{level}_{g // radix}", reset_less=True)
                    with m.If(self.en):
                        m.d.sync += reg.eq(Array(group)[sel[:self.radix_bits]] if len(group) > 1
                                           else group[0])
                    nxt.append(reg)
                stage, select = nxt, sel[self.radix_bits:]
            parts.append(stage[0])
        m.d.comb += self.data.eq(Cat(*parts))
        return m

    def _lut(self, m, platform, table, index):
        """Bit ``index`` of the truth table ``table``. On the ECP5 a ``LUT4`` of its own
        (``Z = INIT[{D, C, B, A}]``): as yosys's ROM, ABC shared LUTs between banks and
        mapped some bits two LUTs deep, and nextpnr spread a shared LUT's registers apart."""
        full = (1 << (1 << len(index))) - 1
        if table in (0, full):
            return Const(table == full, 1)
        if getattr(platform, "family", None) == "ecp5" and len(index) == 4:
            z = Signal()
            m.submodules += Instance("LUT4", p_INIT=Const(table, 16), i_A=index[0],
                                     i_B=index[1], i_C=index[2], i_D=index[3], o_Z=z)
            return z
        return Const(table, 1 << len(index)).bit_select(index, 1)
