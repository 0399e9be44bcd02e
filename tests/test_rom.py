"""The logic ROM: words read back in order with its latency, stalls held, and its ECP5 LUTs."""

import numpy as np
import pytest
from amaranth.hdl import Fragment, Instance
from amaranth.sim import Simulator

from clockprop.hw.rom import LogicRom


@pytest.mark.parametrize("depth,width,copies,radix", [(1, 5, 1, 3), (37, 13, 3, 3),
                                                      (300, 9, 2, 2), (16, 4, 8, 1)])
def test_logic_rom_reads_every_word_with_its_latency(depth, width, copies, radix):
    rng = np.random.default_rng(depth)
    words = [int(w) for w in rng.integers(0, 1 << width, depth)]
    rom = LogicRom(words, width, copies=copies, radix_bits=radix)
    levels = 0
    banks = -(-depth // 16)
    while banks > 1:
        banks, levels = -(-banks // (1 << radix)), levels + 1
    fanout = 1                                  # address registers: a tree 4 wide
    while 4 ** fanout < rom.copies:
        fanout += 1
    assert rom.latency == fanout + 1 + levels
    addrs = [int(a) for a in rng.integers(0, depth, 60)]
    enables = [int(e) for e in rng.integers(0, 4, 60) > 0]      # a quarter of clocks stall
    got = []

    async def tb(ctx):
        for addr, en in zip(addrs, enables):
            ctx.set(rom.addr, addr)
            ctx.set(rom.en, en)
            await ctx.tick()
            got.append(ctx.get(rom.data))

    sim = Simulator(rom)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    # After each enabled clock the ROM holds the word addressed ``latency`` enabled clocks
    # earlier: replay the enabled addresses through a software pipeline of that depth.
    pipe = [None] * rom.latency
    for k, (addr, en) in enumerate(zip(addrs, enables)):
        if en:
            pipe = [addr] + pipe[:-1]
        if pipe[-1] is not None:
            assert got[k] == words[pipe[-1]], k


class _ECP5:
    family = "ecp5"


def test_ecp5_bank_luts_hold_each_bit_of_their_words():
    """On the ECP5 each bank bit is a LUT4 whose INIT, indexed by ``{D, C, B, A}`` (yosys's
    model of the primitive), gives that bit of the 16 words; constant bits take no LUT."""
    rng = np.random.default_rng(1)
    words = [int(w) for w in rng.integers(0, 1 << 6, 40)] + [0] * 8     # 3 banks, last zero
    rom = LogicRom(words, 6, copies=2)
    frag = Fragment.get(rom, _ECP5())
    luts = []

    def walk(f):
        for sub, _name, _loc in f.subfragments:
            if isinstance(sub, Instance):
                luts.append(sub)
            else:
                walk(sub)
    walk(frag)
    # The tables of the non-constant bits of every bank, in order.
    tables = []
    for b in range(0, len(words), 16):
        for j in range(6):
            t = sum(((w >> j) & 1) << i for i, w in enumerate(words[b:b + 16]))
            if t not in (0, 0xFFFF):
                tables.append(t)
    assert len(luts) == len(tables) > 0
    assert sorted(lut.parameters["INIT"].value for lut in luts) == sorted(tables)
    for lut in luts:
        assert lut.type == "LUT4"
        assert set(lut.ports) == {"A", "B", "C", "D", "Z"}
