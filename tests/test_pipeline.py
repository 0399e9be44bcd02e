"""The gateware computes exactly what the integer golden model computes."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from hypothesis import given
from hypothesis import strategies as st

from clockprop.hw.arith import csd_count, csd_digits
from clockprop.hw.dense import COPY_BLOCK, COPY_FANOUT
from clockprop.hw.pipeline import Pipeline
from clockprop.sim.pysim import simulate
from clockprop.core.qformat import QFormat

from conftest import random_model


@given(st.integers(-2**20, 2**20))
def test_csd_digits(w):
    digits = csd_digits(w)
    assert sum(sign << shift for shift, sign in digits) == w
    shifts = [shift for shift, _ in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))      # non-adjacent


def test_zero_weights_cost_nothing():
    assert csd_digits(0) == []
    assert csd_count(np.array([[0, 0], [1, -8]])) == 2


def _edge_inputs(rng, model, n):
    """Random inputs plus the saturation corners: all zero, all A, alternating."""
    a_max = model.fmt.a_max
    x = rng.integers(0, a_max + 1, (n, model.n_inputs))
    x[0] = 0
    x[1] = a_max
    x[2, ::2] = a_max
    x[2, 1::2] = 0
    return x


@given(seed=st.integers(0, 2**32 - 1),
       shape=st.lists(st.integers(1, 9), min_size=2, max_size=4),
       act_bits=st.integers(1, 5), weight_bits=st.integers(2, 8),
       register_every=st.sampled_from([0, 1, 2]))
def test_gateware_equals_golden(seed, shape, act_bits, weight_bits, register_every):
    rng = np.random.default_rng(seed)
    fmt = QFormat(act_bits=act_bits, weight_bits=weight_bits, bias_bits=16)
    model = random_model(rng, shape, fmt)
    x = _edge_inputs(rng, model, 12)
    result = simulate(model, x, register_every=register_every)
    np.testing.assert_array_equal(result.logits, model.forward(x))
    np.testing.assert_array_equal(result.classes, model.predict(x))


def test_hidden_activations_saturate_both_ways():
    # Big positive and negative biases push hidden neurons beyond both ends of [0, A].
    rng = np.random.default_rng(7)
    model = random_model(rng, [6, 8, 3], QFormat(act_bits=3, weight_bits=6, bias_bits=16),
                         frac=2)
    h = model.trace(_edge_inputs(rng, model, 30))[0]
    a = model.fmt.activate(h, model.layers[0].frac)
    assert (a == 0).any() and (a == model.fmt.a_max).any() and (h < 0).any()
    x = _edge_inputs(rng, model, 30)
    np.testing.assert_array_equal(simulate(model, x).logits, model.forward(x))


def test_one_sample_per_clock_and_latency():
    rng = np.random.default_rng(1)
    model = random_model(rng, [8, 6, 5, 4])
    x = rng.integers(0, 16, (40, 8))
    for register_every, latency in ((0, 5), (1, None)):
        dut = Pipeline(model, register_every=register_every)
        Fragment.get(dut, None)
        result = simulate(model, x, register_every=register_every)
        assert result.latency == dut.latency
        if latency is not None:
            assert dut.latency == latency           # one clock per layer + argmax (2)
        assert result.cycles == len(x) + dut.latency   # N samples, one per clock


@pytest.mark.parametrize("n_hidden, copies, groups", [(70, 3, 1), (170, 6, 2)])
def test_wide_layer_reads_per_block_copies_of_its_inputs(n_hidden, copies, groups):
    assert (COPY_BLOCK, COPY_FANOUT) == (32, 4)
    # More than COPY_BLOCK neurons: pipelined, the layer registers a copy of its inputs per
    # block (70: blocks of 24, 24, 22) and each sum before its activation. More than
    # COPY_FANOUT blocks (170: six) read those copies from group copies (of four and two
    # blocks): one clock more.
    rng = np.random.default_rng(5)
    model = random_model(rng, [9, n_hidden, 4],
                         QFormat(act_bits=3, weight_bits=5, bias_bits=16), frac=3)
    x = _edge_inputs(rng, model, 40)
    for register_every in (0, 1, 2):
        dut = Pipeline(model, register_every=register_every)
        Fragment.get(dut, None)
        hidden, out = dut.layers
        pipelined = bool(register_every)
        assert (hidden.copies, hidden.copy_groups, out.copies) == (
            (copies, groups, 1) if pipelined else (1, 1, 1))
        assert hidden.latency == 1 + hidden.tree_levels + pipelined * (2 + (groups > 1))
        assert out.latency == 1 + out.tree_levels
        result = simulate(model, x, register_every=register_every)
        np.testing.assert_array_equal(result.logits, model.forward(x))
        assert result.cycles == len(x) + dut.latency


@pytest.mark.parametrize("stall", [0.3, 0.7])
def test_backpressure_keeps_every_sample(stall):
    rng = np.random.default_rng(3)
    model = random_model(rng, [5, 7, 4])
    x = rng.integers(0, 16, (25, 5))
    result = simulate(model, x, register_every=1, stall=stall, seed=11)
    np.testing.assert_array_equal(result.logits, model.forward(x))
    assert result.cycles > len(x) + 3


def test_ties_go_to_the_lowest_class():
    rng = np.random.default_rng(0)
    model = random_model(rng, [3, 4])
    # Zero weights and equal biases: every logit ties.
    for layer in model.layers:
        layer.weight[:] = 0
        layer.bias[:] = 5
    x = rng.integers(0, 16, (4, 3))
    result = simulate(model, x)
    np.testing.assert_array_equal(result.classes, [0, 0, 0, 0])


def test_estimate_counts_adders_and_registers():
    rng = np.random.default_rng(2)
    small = random_model(rng, [4, 3], density=0.3)
    big = random_model(rng, [16, 12], density=0.9)
    cost_small, cost_big = Pipeline(small).estimate(), Pipeline(big).estimate()
    assert 0 < cost_small.lut < cost_big.lut
    assert cost_big.ff >= 12 * big.fmt.a_max.bit_length()


@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_folded_gateware_equals_golden(seed, data):
    rng = np.random.default_rng(seed)
    shape = data.draw(st.lists(st.sampled_from([1, 2, 4, 6, 8]), min_size=2, max_size=4))
    model = random_model(rng, shape, QFormat(act_bits=data.draw(st.integers(1, 4)),
                                             weight_bits=data.draw(st.integers(2, 7)),
                                             bias_bits=16))
    fold = [data.draw(st.sampled_from([f for f in (1, 2, 3, 4, 6, 8) if n % f == 0]))
            for n in shape[:-1]]
    x = _edge_inputs(rng, model, 10)
    result = simulate(model, x, fold=fold, stall=data.draw(st.sampled_from([0.0, 0.3])))
    np.testing.assert_array_equal(result.logits, model.forward(x))


def test_folding_trades_clocks_for_logic():
    rng = np.random.default_rng(4)
    model = random_model(rng, [24, 6, 3], density=1.0)
    x = rng.integers(0, 16, (20, 24))
    flat, folded = Pipeline(model), Pipeline(model, fold=[12, 1])
    assert folded.interval == 12 and flat.interval == 1
    assert folded.estimate().lut < flat.estimate().lut / 2
    assert folded.estimate().rom_bits == 24 * 6 * model.fmt.weight_bits
    result = simulate(model, x, fold=[12, 1])
    np.testing.assert_array_equal(result.logits, model.forward(x))
    assert len(x) * 12 <= result.cycles <= len(x) * 12 + result.latency


def test_fold_must_divide_the_fan_in():
    from clockprop.hw.pipeline import check_fold
    from clockprop.core.errors import ClockpropError
    model = random_model(np.random.default_rng(0), [6, 4, 2])
    assert check_fold(model, [3, 2]) == [3, 2]
    with pytest.raises(ClockpropError, match="does not divide its fan-in 6"):
        check_fold(model, [4, 1])
    with pytest.raises(ClockpropError, match="one fold factor per layer"):
        check_fold(model, [2])


@pytest.mark.parametrize("argmax_every, split, latency",
                         [(0, False, 1), (1, False, 4), (2, False, 2), (3, False, 2),
                          (1, True, 8), (2, True, 6)])
def test_argmax_pipelining(argmax_every, split, latency):
    from amaranth.hdl import signed
    from clockprop.hw.argmax import Argmax
    argmax = Argmax(signed(8), 10, register_every=argmax_every, split=split)
    Fragment.get(argmax, None)
    assert argmax.latency == latency
    model = random_model(np.random.default_rng(6), [5, 10])
    x = _edge_inputs(np.random.default_rng(6), model, 20)
    result = simulate(model, x)                         # the default: argmax_every=1
    np.testing.assert_array_equal(result.classes, model.predict(x))
    assert result.latency == 1 + 4


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("shape", ["signed", "unsigned"])
def test_argmax_extremes(shape, split):
    """The comparator (the top bit of a difference) at the range's ends and on ties: the
    first maximum, as ``np.argmax``."""
    from amaranth.hdl import signed, unsigned
    from amaranth.sim import Simulator
    from clockprop.hw.argmax import Argmax
    lo, hi = (-128, 127) if shape == "signed" else (0, 255)
    argmax = Argmax(signed(8) if shape == "signed" else unsigned(8), 5, register_every=1,
                    split=split)
    rng = np.random.default_rng(3)
    rows = [[lo] * 5, [hi] * 5, [lo, hi, lo, hi, lo], [hi, lo, lo, lo, hi], [lo, lo, lo, lo, hi],
            [hi - 1, hi, lo + 1, lo, hi]] + rng.integers(lo, hi + 1, (40, 5)).tolist() + \
        rng.choice([lo, lo + 1, hi - 1, hi], (40, 5)).tolist()
    got = []

    async def bench(ctx):
        ctx.set(argmax.o.ready, 1)
        ctx.set(argmax.i.valid, 1)
        for row in rows + [[0] * 5] * argmax.latency:
            ctx.set(argmax.i.payload, row)
            await ctx.tick()
            if ctx.get(argmax.o.valid):
                got.append(ctx.get(argmax.o.payload.cls))

    sim = Simulator(argmax)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got[:len(rows)] == [int(np.argmax(r)) for r in rows]


@pytest.mark.parametrize("argmax_every, split", [(1, False), (2, False), (1, True), (0, False)])
def test_logits_in_memory_equal_the_registered_ones(argmax_every, split):
    """``logit_memory``: the logits wait in a ring of ``latency`` words instead of registers;
    with random stalls on both sides every result carries its own logits."""
    import random

    from amaranth.hdl import signed
    from amaranth.sim import Simulator
    from clockprop.hw.argmax import Argmax
    argmax = Argmax(signed(9), 10, register_every=argmax_every, split=split, logit_memory=True)
    rows = np.random.default_rng(argmax_every).integers(-256, 256, (150, 10))
    got = []

    async def bench(ctx):
        coin, sent = random.Random(1), 0
        while len(got) < len(rows):
            if sent < len(rows):
                ctx.set(argmax.i.payload, rows[sent].tolist())
            ctx.set(argmax.i.valid, sent < len(rows) and coin.random() > 0.3)
            ctx.set(argmax.o.ready, coin.random() > 0.3)
            await ctx.delay(1e-9)
            taken = ctx.get(argmax.i.valid) and ctx.get(argmax.i.ready)
            if ctx.get(argmax.o.valid) and ctx.get(argmax.o.ready):
                got.append((ctx.get(argmax.o.payload.cls),
                            [ctx.get(argmax.o.payload.logits[k]) for k in range(10)]))
            await ctx.tick()
            sent += bool(taken)

    sim = Simulator(argmax)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [c for c, _ in got] == np.argmax(rows, axis=1).tolist()
    assert [logits for _, logits in got] == rows.tolist()
    assert argmax.logit_memory == (argmax.latency > 1)
    assert argmax.cost.rom_bits == (90 * argmax.latency if argmax.logit_memory else 0)
