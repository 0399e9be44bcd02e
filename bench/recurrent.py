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
* the LUT/FF estimate of each core (``hw.arith.Cost``), argmax and sampling.

Run: ``.venv/bin/python bench/recurrent.py`` (about two minutes on 2 cores).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

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


def main():
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
               "fmax": "not measured here: needs synthesis/place-and-route of the core"}
    write_atomic(OUT / "recurrent.json", json.dumps(summary, indent=1, ensure_ascii=False))
    md = markdown(rows) + "\nTargets: " + ", ".join(
        f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()) + "\n"
    write_atomic(OUT / "recurrent.md", md)
    log(f"bench: {summary['seconds']:.0f} s; targets {targets}; -> {OUT}/recurrent.{{json,md}}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
