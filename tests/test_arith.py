"""hw/arith.py and hw/stage.py on their own: canonical signed digits, adder trees (values,
latency, cost) and the stage's valid/ready control under random stalls."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from hypothesis import given
from hypothesis import strategies as st

from clockprop.hw.arith import AdderTree, Cost, csd_count, csd_digits
from clockprop.hw.stage import StageControl


@pytest.mark.parametrize("w", range(-300, 301))
def test_csd_digits_are_the_non_adjacent_form(w):
    digits = csd_digits(w)
    assert sum(d << s for s, d in digits) == w
    shifts = [s for s, _ in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))      # no two adjacent
    assert all(d in (-1, 1) for _, d in digits)


def test_csd_count():
    assert csd_count(np.array([[0, 1, 3], [7, -8, 0]])) == 1 + 2 + 2 + 1


class _Tree(wiring.Component):
    """A sum of input signals through one AdderTree, for the simulator."""

    def __init__(self, shapes, signs, zeros, constant, register_every):
        self.shapes, self.signs, self.zeros = shapes, signs, zeros
        self.constant, self.register_every = constant, register_every
        self.cost = Cost()
        self.inputs = [Signal(s, name=f"x{k}") for k, s in enumerate(shapes)]
        probe = AdderTree(None, 1, register_every, Cost())
        self.levels = probe.levels_for(len(shapes), constant)
        super().__init__({"y": Out(signed(40))})

    def elaborate(self, platform):
        m = Module()
        tree = AdderTree(m, 1, self.register_every, self.cost)
        terms = [(x << z, s, z) for x, s, z in zip(self.inputs, self.signs, self.zeros)]
        m.d.comb += self.y.eq(tree.sum(terms, self.constant, "t", self.levels))
        toggle = Signal()                 # a sync domain even for a combinational tree
        m.d.sync += toggle.eq(~toggle)
        return m


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 9), every=st.integers(0, 2),
       constant=st.integers(-50, 50))
def test_adder_tree_sums_exactly_after_its_levels(seed, n, every, constant):
    rng = np.random.default_rng(seed)
    shapes = [signed(int(rng.integers(2, 6))) if rng.random() < 0.3 else
              unsigned(int(rng.integers(1, 5))) for _ in range(n)]
    signs = [int(rng.choice([-1, 1])) for _ in range(n)]
    zeros = [int(rng.integers(0, 3)) for _ in range(n)]
    dut = _Tree(shapes, signs, zeros, constant, every)
    samples = []
    for _ in range(6):
        samples.append([int(rng.integers(-(1 << (s.width - 1)) if s.signed else 0,
                                         (1 << (s.width - 1)) if s.signed else 1 << s.width))
                        for s in shapes])
    expected = [sum(sg * (v << z) for v, sg, z in zip(row, signs, zeros)) + constant
                for row in samples]
    got = []

    async def bench(ctx):
        for k in range(len(samples) + dut.levels):
            if k < len(samples):
                for sig, v in zip(dut.inputs, samples[k]):
                    ctx.set(sig, v)
            if k >= dut.levels:
                got.append(ctx.get(dut.y))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected
    assert dut.cost.lut >= n - 1 + (constant != 0) - (n == 1 and not constant)
    if not every:
        assert dut.levels == 0 and dut.cost.ff == 0


def test_levels_for():
    tree = AdderTree(None, 1, 2, Cost())
    assert [tree.levels_for(n) for n in (1, 2, 4, 5, 8, 9, 16, 17)] == [0, 0, 0, 1, 1, 1, 1, 2]
    assert AdderTree(None, 1, 0, Cost()).levels_for(1000) == 0


class _Stage(wiring.Component):
    """A ``latency``-deep data pipeline (a counter's values) under one StageControl."""

    i_valid: In(1)
    i_data: In(8)
    i_ready: Out(1)
    o_valid: Out(1)
    o_ready: In(1)
    o_data: Out(8)

    def __init__(self, latency):
        self.latency = latency
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctl = ctl = StageControl(self.latency)
        m.d.comb += [ctl.i_valid.eq(self.i_valid), self.i_ready.eq(ctl.i_ready),
                     self.o_valid.eq(ctl.o_valid), ctl.o_ready.eq(self.o_ready)]
        data = self.i_data
        for k in range(self.latency):
            reg = Signal(8, name=f"d{k}")
            with m.If(ctl.en):
                m.d.sync += reg.eq(data)
            data = reg
        m.d.comb += self.o_data.eq(data)
        return m


@pytest.mark.parametrize("latency", [1, 2, 5])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_stage_control_loses_and_repeats_nothing(latency, stall):
    dut = _Stage(latency)
    rng = np.random.default_rng(latency)
    n = 40
    out, timing = [], {}

    async def bench(ctx):
        sent = cycle = 0
        while len(out) < n:
            offer = sent < n and not (stall and rng.random() < stall)
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.i_valid, offer)
            ctx.set(dut.i_data, sent)
            ctx.set(dut.o_ready, ready)
            _, _, i_ready, o_valid, o_data = await ctx.tick().sample(
                dut.i_ready, dut.o_valid, dut.o_data)
            if offer and i_ready:
                timing.setdefault("first_in", cycle)
                sent += 1
            if o_valid and ready:
                timing.setdefault("first_out", cycle)
                out.append(o_data)
            cycle += 1
            assert cycle < 40 * n
        timing["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert out == list(range(n))
    if not stall:
        assert timing["first_out"] - timing["first_in"] == latency
        assert timing["cycles"] == n + latency                  # one sample per clock
