"""Benchmark of `clockprop sweep` and of a user's own data; writes reports/bench/sweep.{md,json}.

1. The sweep of ``configs/sweeps/digits_up5k.toml`` (24 points on digits: estimates for all,
   iCEBreaker synthesis for the estimated front) on a local Ray, from an empty results
   folder; then the same sweep again, which must compute nothing and take under 5% of the
   first run's time. The best point per board (highest integer accuracy among the
   synthesized points that meet their clock) is quoted.
2. The own-data path: the sklearn digits written to an NPZ file (``x`` = the raw 0..16
   pixels, ``y``) and trained with ``scale = "global"`` must give the built-in digits model
   bit for bit (every weight, bias and fraction) and the same accuracies.

Run: `.venv/bin/python bench/sweep.py [--space FILE]` (part of `make bench`).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clockprop.core.fileio import write_atomic
from clockprop.models.config import load_config
from clockprop.sw.cli import train_model
from clockprop.sw.sweep_cli import run_sweep

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "bench"


def sweep_twice(space, out):
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    first = run_sweep(space, out)
    t1 = time.perf_counter()
    second = run_sweep(space, out)
    t2 = time.perf_counter()
    return first, second, t1 - t0, t2 - t1


def best_per_board(results):
    best = {}
    for r in results:
        s = r.get("synth") or {}
        if s.get("status") == "done" and s.get("timing_met"):
            b = best.get(r["board"])
            if b is None or r["int_acc"] > b["int_acc"]:
                best[r["board"]] = r
    return best


def own_data_check():
    from sklearn.datasets import load_digits
    raw = load_digits()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits.npz"
        np.savez(path, x=raw.data, y=raw.target)
        builtin = train_model(load_config(ROOT / "configs" / "digits.toml"), log=lambda m: None)
        own = train_model(load_config(ROOT / "configs" / "digits.toml",
                                      {"dataset": str(path), "scale": "global"}),
                          log=lambda m: None)
    same_layers = all(np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
                      and a.frac == b.frac for a, b in zip(builtin.layers, own.layers))
    return {"bit_identical": bool(same_layers and builtin.shape == own.shape),
            "builtin": {"float": builtin.meta["float"]["test_acc"],
                        "integer": builtin.meta["integer"]["test_acc"]},
            "npz": {"float": own.meta["float"]["test_acc"],
                    "integer": own.meta["integer"]["test_acc"]}}


def markdown(r):
    first, second = r["first"], r["second"]
    lines = ["# Sweeps and own data", "",
             f"Machine: {r['cpus']} CPUs, a local Ray. Space `{r['space']}`.", "",
             "## The sweep", "",
             f"- {first['points']} points: {sum(p['status'] == 'done' for p in first['results'])} "
             f"done, {sum(p['status'] == 'failed' for p in first['results'])} failed; "
             f"{first['computed']['estimate']} estimates and {first['computed']['synthesis']} "
             f"syntheses (the front) in {r['first_seconds']:.1f} s",
             f"- the same sweep again: {second['computed']['estimate']} estimates and "
             f"{second['computed']['synthesis']} syntheses computed, {r['second_seconds']:.2f} s "
             f"= {100 * r['second_seconds'] / r['first_seconds']:.2f}% of the first run "
             f"(target < 5%)", "", "Best point per board (synthesized, clock met):", ""]
    for board, p in r["best"].items():
        s = p["synth"]
        lines.append(f"- {board}: {p['point']}: integer {100 * p['int_acc']:.2f}%, "
                     f"{s['lut']} LUT4 (estimate {p['lut_estimate']}), {s['ff']} FF, fmax "
                     f"{s['fmax_mhz']:.1f} MHz at a {s['clock_mhz']:g} MHz clock")
    if not r["best"]:
        lines.append("- none met its clock")
    lines += ["", f"The front's table and plot: `{r['out']}/front.md`, `pareto.png`.", "",
              "## Own data", "",
              f"digits as an NPZ file (raw pixels, `scale = \"global\"`) against the built-in "
              f"dataset, `configs/digits.toml`: bit-identical model "
              f"**{r['own_data']['bit_identical']}**; built-in float "
              f"{100 * r['own_data']['builtin']['float']:.2f}% / integer "
              f"{100 * r['own_data']['builtin']['integer']:.2f}%, NPZ float "
              f"{100 * r['own_data']['npz']['float']:.2f}% / integer "
              f"{100 * r['own_data']['npz']['integer']:.2f}%."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    import os
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default=str(ROOT / "configs" / "sweeps" / "digits_up5k.toml"))
    args = p.parse_args(argv)
    os.chdir(ROOT)                               # the space's base path is project-relative
    out = ROOT / "reports" / "sweep" / "bench-digits_up5k"
    first, second, t_first, t_second = sweep_twice(args.space, out)
    result = {"space": os.path.relpath(args.space, ROOT), "cpus": os.cpu_count(),
              "out": os.path.relpath(out, ROOT),
              "first": {k: v for k, v in first.items()}, "second": second,
              "first_seconds": t_first, "second_seconds": t_second,
              "best": best_per_board(first["results"]), "own_data": own_data_check()}
    targets = {
        "at least 24 points": first["points"] >= 24,
        "front synthesized": first["computed"]["synthesis"] >= 1,
        "second run computes nothing": second["computed"] == {"estimate": 0, "synthesis": 0},
        "second run under 5%": t_second < 0.05 * t_first,
        "own data bit-identical": result["own_data"]["bit_identical"],
    }
    result["targets"] = targets
    OUT.mkdir(parents=True, exist_ok=True)
    write_atomic(OUT / "sweep.json", json.dumps(result, indent=1) + "\n")
    write_atomic(OUT / "sweep.md", markdown(result) + "\n## Targets\n\n" + "\n".join(
        f"- {k}: {'met' if v else 'MISSED'}" for k, v in targets.items()) + "\n")
    print((OUT / "sweep.md").read_text())
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
