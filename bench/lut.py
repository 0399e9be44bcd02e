"""Benchmark of the LUT-native sparse neurons; writes reports/bench/lut.{md,json,png}.

For every point of the grid (activation bits 1..3, hidden fan-in 2..6 where the truth table
fits ``lut_bits`` = 6 input bits) the same sparse network (``--hidden`` neurons, each class
reading ``--out-fan-in`` of them, its csb tag) is trained with the local rule (csb, its
output fixed to votes: ``vote``) and with backprop (the float reference on the same sparse
topology, its output weights learned), quantization-aware, on one split. Each point
gives float / integer accuracy and the LUT4 estimate of both mappings of the *same* integer
model: truth tables for the hidden layer, or shift-adds everywhere (``lut_bits = 0``), and
LUT4 per point of accuracy for both. Each point also trains the learned truth tables (rule
``lut``, :mod:`clockprop.models.lutnet`) of the same shape: ``--hidden`` tables of that
fan-in, the same votes, the table entries learned instead of enumerated from a neuron's
weights. The shift-add baseline is the UP5K digits model
(``configs/digits_up5k.toml``). ``--synth`` builds the chosen config's iCEBreaker bitstream
(``configs/digits_lut.toml``) and quotes its synthesized LUT4/FF/fmax; the chosen config's
gateware runs the whole test split in pysim and must equal the golden model on every logit,
and the chosen config is trained on split seeds 0-4 (the target is >= 96% integer on each).

Run: `.venv/bin/python bench/lut.py [--synth] [--dataset mnist]` (part of `make bench`).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from clockprop.core.fileio import write_atomic
from clockprop.core.qformat import QFormat
from clockprop.hw.pipeline import Pipeline
from clockprop.models.config import load_config
from clockprop.models.datasets import load_dataset
from clockprop.models.train import TrainConfig, to_int_model, train
from clockprop.sim.pysim import simulate

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "bench"
LIMIT = 6


def grid():
    return [(b, k) for b in (1, 2, 3) for k in range(2, 7) if b * k <= LIMIT]


def _costs(model):
    tt = Pipeline(model).estimate().lut
    sa = Pipeline(model, lut_bits=0).estimate().lut
    return tt, sa


def point(data, act_bits, fan_in, args):
    fmt = QFormat(act_bits=act_bits, weight_bits=6)
    row = {"act_bits": act_bits, "fan_in": fan_in, "table_bits": act_bits * fan_in}
    for key, rule, vote in (("csb", "csb", True), ("bp", "bp", False),
                            ("bp_vote", "bp", True)):
        cfg = TrainConfig(rule=rule, hidden=(args.hidden,), fan_in=(fan_in, args.out_fan_in),
                          fan_in_select="variance", epochs=args.epochs, lr=0.05, prune=0.0,
                          qat=True, seed=0, vote=vote)
        t0 = time.perf_counter()
        result = train(cfg, data, fmt)
        model = to_int_model(result.net, fmt)
        acc = model.accuracy(fmt.quantize_input(data.x_test), data.y_test)
        row[key] = {"float": result.net.accuracy(data.x_test, data.y_test), "integer": acc,
                    "seconds": round(time.perf_counter() - t0, 1)}
        if key == "csb":
            row["lut_truth_table"], row["lut_shift_add"] = _costs(model)
    cfg = TrainConfig(rule="lut", hidden=(args.hidden,), fan_in=(fan_in, args.out_fan_in),
                      fan_in_select="variance", epochs=40, lr=0.1, weight_decay=0.01,
                      prune=0.0, qat=True, redraw=0.5, seed=0)
    t0 = time.perf_counter()
    result = train(cfg, data, fmt)
    model = to_int_model(result.net, fmt)
    row["lut"] = {"float": result.net.accuracy(data.x_test, data.y_test),
                  "integer": model.accuracy(fmt.quantize_input(data.x_test), data.y_test),
                  "seconds": round(time.perf_counter() - t0, 1),
                  "lut_truth_table": Pipeline(model).estimate().lut}
    points = 100 * row["csb"]["integer"]
    row["lut_per_point_truth_table"] = row["lut_truth_table"] / points
    row["lut_per_point_shift_add"] = row["lut_shift_add"] / points
    return row


def baseline():
    run = load_config(ROOT / "configs/digits_up5k.toml")
    data = load_dataset(run.dataset, run.split_seed)
    result = train(run.train, data, run.fmt)
    model = to_int_model(result.net, run.fmt)
    acc = model.accuracy(run.fmt.quantize_input(data.x_test), data.y_test)
    lut = Pipeline(model).estimate().lut
    return {"config": "configs/digits_up5k.toml", "integer": acc, "lut": lut,
            "lut_per_point": lut / (100 * acc)}


def chosen(synth):
    """The chosen config: trained, the whole test split through the pysim gateware, and
    (with ``synth``) its iCEBreaker build."""
    run = load_config(ROOT / "configs/digits_lut.toml")
    data = load_dataset(run.dataset, run.split_seed)
    result = train(run.train, data, run.fmt)
    model = to_int_model(result.net, run.fmt, {"name": run.name, "config": run.to_dict()})
    a = run.fmt.quantize_input(data.x_test)
    register_every = run.hardware.register_every or 0
    sim = simulate(model, a, register_every=register_every)
    exact = bool(np.array_equal(sim.logits, model.forward(a)))
    pipe = Pipeline(model, register_every=register_every)
    row = {"config": "configs/digits_lut.toml", "shape": model.shape,
           "float": result.net.accuracy(data.x_test, data.y_test),
           "integer": model.accuracy(a, data.y_test),
           "gateware": float(np.mean(sim.classes == data.y_test)), "bit_exact": exact,
           "layers": pipe.layer_rows(), "estimate_lut": pipe.estimate().lut,
           "seeds": seeds(run)}
    if run.reference:
        ref = train(run.reference, data, run.fmt)
        row["bp_integer"] = to_int_model(ref.net, run.fmt).accuracy(a, data.y_test)
    if synth:
        from clockprop.boards.build import build
        report = build(model, "icebreaker", register_every=register_every,
                       seed=run.hardware.pnr_seed, timeout=1800)
        row["icebreaker"] = {k: report[k] for k in ("fmax_mhz", "requested_mhz", "timing_met",
                                                    "build_seconds")}
        row["icebreaker"]["lut"] = report["resources"]["lut"]
        row["icebreaker"]["ff"] = report["resources"]["ff"]
        row["icebreaker"]["estimate_lut"] = report["estimate"]["need"]["lut"]
    return row


def seeds(run, n=5):
    """Float and integer test accuracy of ``run`` on split seeds ``0..n-1``."""
    rows = []
    for split in range(n):
        data = load_dataset(run.dataset, split)
        result = train(run.train, data, run.fmt)
        model = to_int_model(result.net, run.fmt)
        rows.append({"split_seed": split,
                     "float": result.net.accuracy(data.x_test, data.y_test),
                     "integer": model.accuracy(run.fmt.quantize_input(data.x_test),
                                               data.y_test)})
    return rows


def plot(rows, base, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, marker, label in (("lut_truth_table", "o", "truth tables (hidden layer)"),
                               ("lut_shift_add", "s", "shift-adds, same model")):
        ax.scatter([r[key] for r in rows], [100 * r["csb"]["integer"] for r in rows],
                   marker=marker, label=label)
        for r in rows:
            ax.annotate(f"{r['act_bits']}b k{r['fan_in']}",
                        (r[key], 100 * r["csb"]["integer"]), fontsize=7)
    ax.scatter([r["lut"]["lut_truth_table"] for r in rows],
               [100 * r["lut"]["integer"] for r in rows], marker="^",
               label="learned truth tables (rule lut), same shape")
    for r in rows:
        ax.annotate(f"{r['act_bits']}b k{r['fan_in']}",
                    (r["lut"]["lut_truth_table"], 100 * r["lut"]["integer"]), fontsize=7)
    ax.scatter([base["lut"]], [100 * base["integer"]], marker="*", s=120,
               label="digits_up5k (dense ed, shift-adds)")
    ax.axvline(5280, color="grey", ls=":", lw=1)
    ax.text(5280, ax.get_ylim()[0] + 1, " UP5K", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("LUT4 (estimate, pipeline only)")
    ax.set_ylabel("integer test accuracy (%)")
    ax.set_title("digits: accuracy against LUT4, one sample per clock")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(result):
    base, rows, ch = result["baseline"], result["points"], result["chosen"]
    lines = ["# LUT-native sparse neurons", "",
             f"Dataset {result['dataset']}, split seed 0; hidden layer {result['hidden']} "
             f"neurons, each class's logit reads {result['out_fan_in']} of them (its csb "
             f"tag); 6-bit weights; quantization-aware; {result['epochs']} epochs. csb "
             f"(the local rule) votes: its output weights are fixed, so the output layer is a "
             f"sum. Backprop on the same topology twice: with the same votes (the same "
             f"hardware), and learning the output weights (shift-adds of 6-bit weights in "
             f"the output layer). Learned tables: rule lut, the same shape and votes, "
             f"the table entries learned (40 epochs, lr 0.1, weight decay 0.01, redraw 0.5). "
             f"LUT4 are the pipeline's estimate (no board top).", "",
             "| act bits | fan-in | table bits | csb float | csb integer | bp integer, votes "
             "| bp integer, learned output | learned tables integer | LUT4 truth tables | "
             "LUT4 learned tables | LUT4 shift-adds | LUT4/point TT | LUT4/point learned | "
             "LUT4/point SA |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['act_bits']} | {r['fan_in']} | {r['table_bits']} | "
                     f"{100 * r['csb']['float']:.2f}% | {100 * r['csb']['integer']:.2f}% | "
                     f"{100 * r['bp_vote']['integer']:.2f}% | "
                     f"{100 * r['bp']['integer']:.2f}% | {100 * r['lut']['integer']:.2f}% | "
                     f"{r['lut_truth_table']} | {r['lut']['lut_truth_table']} | "
                     f"{r['lut_shift_add']} | {r['lut_per_point_truth_table']:.1f} | "
                     f"{r['lut']['lut_truth_table'] / (100 * r['lut']['integer']):.1f} | "
                     f"{r['lut_per_point_shift_add']:.1f} |")
    lines += ["", f"Shift-add baseline `{base['config']}`: {100 * base['integer']:.2f}% integer, "
              f"{base['lut']} LUT4, {base['lut_per_point']:.1f} LUT4 per point.", "",
              f"## Chosen config `{ch['config']}` ({' -> '.join(map(str, ch['shape']))})", "",
              f"- float {100 * ch['float']:.2f}%, integer {100 * ch['integer']:.2f}%, gateware "
              f"{100 * ch['gateware']:.2f}% (pysim, whole test split, bit-exact: "
              f"{ch['bit_exact']})" + (f"; backprop on the same topology "
                                       f"{100 * ch['bp_integer']:.2f}%"
                                       if "bp_integer" in ch else ""),
              "- split seeds 0-4, integer: " + ", ".join(
                  f"{100 * r['integer']:.2f}%" for r in ch["seeds"]) +
              f" (mean {100 * np.mean([r['integer'] for r in ch['seeds']]):.2f}%; float " +
              ", ".join(f"{100 * r['float']:.2f}%" for r in ch["seeds"]) + ")",
              f"- pipeline estimate {ch['estimate_lut']} LUT4: " +
              "; ".join(f"layer {r['layer']} {r['mapping']} {r['lut']} LUT4"
                        for r in ch["layers"])]
    if "icebreaker" in ch:
        ib = ch["icebreaker"]
        lines.append(f"- iCEBreaker build: {ib['lut']['used']} LUT4 (estimate "
                     f"{ib['estimate_lut']}), {ib['ff']['used']} FF, fmax {ib['fmax_mhz']:.1f} "
                     f"MHz against {ib['requested_mhz']:g} MHz (met: {ib['timing_met']}), "
                     f"{ib['build_seconds']} s")
    lines += ["", "![accuracy against LUT4](lut.png)", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", action="store_true", help="build the chosen config's bitstream")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--hidden", type=int, default=340)
    ap.add_argument("--out-fan-in", type=int, default=34)
    ap.add_argument("--epochs", type=int, default=80)
    args = ap.parse_args(argv)
    data = load_dataset(args.dataset, 0)
    rows = []
    for b, k in grid():
        rows.append(point(data, b, k, args))
        r = rows[-1]
        print(f"lut: {b} bits, fan-in {k}: csb {100 * r['csb']['integer']:.2f}%, bp votes "
              f"{100 * r['bp_vote']['integer']:.2f}%, bp "
              f"{100 * r['bp']['integer']:.2f}%, learned tables "
              f"{100 * r['lut']['integer']:.2f}%, {r['lut_truth_table']} / "
              f"{r['lut_shift_add']} LUT4", file=sys.stderr, flush=True)
    result = {"dataset": args.dataset, "hidden": args.hidden, "out_fan_in": args.out_fan_in,
              "epochs": args.epochs, "points": rows, "baseline": baseline(),
              "chosen": chosen(args.synth)}
    OUT.mkdir(parents=True, exist_ok=True)
    write_atomic(OUT / "lut.json", json.dumps(result, indent=1) + "\n")
    write_atomic(OUT / "lut.md", markdown(result))
    plot(rows, result["baseline"], OUT / "lut.png")
    print(f"lut: wrote {OUT / 'lut.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
