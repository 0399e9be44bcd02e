"""Benchmark of the vertical slice on sklearn digits; writes reports/bench/digits.{json,md}.

1. `make sim` end to end (train, export, simulate all 450 test samples, report), timed.
2. The local rules (ed, csb) and backprop on the same split, in the same run: float and
   integer accuracy, shift-add terms and the LUT estimate of their gateware.

Run: `make bench` (or `.venv/bin/python bench/digits.py`).
"""

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path


from clockprop.hw.arith import csd_count
from clockprop.hw.pipeline import Pipeline
from clockprop.models.config import load_config
from clockprop.models.datasets import load_dataset
from clockprop.core.fileio import write_atomic
from clockprop.models.floatnet import quantize
from clockprop.models.train import train

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "bench"

# The rules compared on the default split: the default model (ed), csb at a comparable size,
# and the float reference (bp). Each row overrides the default config's [train] table.
RULES = {
    "ed": {},
    "csb": {"rule": "csb", "hidden": (128,), "epochs": 40, "lr": 0.05, "prune": 0.8},
    "bp": {"rule": "bp", "hidden": (64,), "epochs": 60, "lr": 0.1, "prune": 0.0},
}


def timed_make_sim():
    start = time.perf_counter()
    run = subprocess.run(["make", "sim"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode:
        sys.exit(f"make sim failed:\n{run.stderr[-2000:]}")
    report = json.loads((ROOT / "reports/digits/report.json").read_text())
    return seconds, report


def compare_rules():
    run = load_config(ROOT / "configs/digits.toml")
    data = load_dataset(run.dataset, run.split_seed)
    a_test = run.fmt.quantize_input(data.x_test)
    rows = {}
    for name, overrides in RULES.items():
        cfg = replace(run.train, **overrides)
        result = train(cfg, data, run.fmt)
        model = quantize(result.net, run.fmt)
        rows[name] = {
            "config": cfg.to_dict(),
            "shape": model.shape,
            "float_test_acc": result.net.accuracy(data.x_test, data.y_test),
            "int_test_acc": model.accuracy(a_test, data.y_test),
            "train_seconds": result.seconds,
            "samples_per_s": result.samples_per_s,
            "csd_terms": int(sum(csd_count(layer.weight) for layer in model.layers)),
            "lut_estimate": Pipeline(model).estimate().lut,
        }
        print(f"{name}: float {100 * rows[name]['float_test_acc']:.2f}%, integer "
              f"{100 * rows[name]['int_test_acc']:.2f}%", file=sys.stderr)
    return data.split, rows


def main():
    print("bench: make sim ...", file=sys.stderr)
    sim_seconds, report = timed_make_sim()
    split, rules = compare_rules()
    g = report["gateware"]
    local_best = max(("ed", "csb"), key=lambda r: rules[r]["float_test_acc"])
    result = {
        "split": split,
        "make_sim_seconds": sim_seconds,
        "default_model": {
            "rule": report["train"]["rule"], "shape": report["shape"],
            "float_test_acc": report["float"]["test_acc"],
            "int_test_acc": report["integer"]["test_acc"],
            "gateware_test_acc": g["test_acc"],
            "samples_equal": g["samples_equal"], "logits_equal": g["logits_equal"],
            "n_samples": g["n_samples"], "n_logits": g["n_logits"],
            "latency_cycles": g["latency_cycles"], "samples_per_clock": g["samples_per_clock"],
            "lut_estimate": report["resources"]["lut_estimate"],
        },
        "rules": rules,
        "targets": {
            "best_local_rule_float_ge_97.5": rules[local_best]["float_test_acc"] >= 0.975,
            "gateware_agrees_100pct": g["samples_equal"] == g["n_samples"]
            and g["logits_equal"] == g["n_logits"],
            "gateware_within_0.5_points_of_float":
                abs(g["test_acc"] - report["float"]["test_acc"]) <= 0.005,
            "make_sim_under_120_s": sim_seconds < 120,
        },
    }
    d = result["default_model"]
    lines = [
        "# Benchmark: digits vertical slice", "",
        f"Split: {split}", "",
        f"`make sim` (train + export + simulate 450 samples + report): {sim_seconds:.1f} s", "",
        f"Default model (`{d['rule']}`, {' -> '.join(map(str, d['shape']))}): float "
        f"{100 * d['float_test_acc']:.2f}%, integer {100 * d['int_test_acc']:.2f}%, gateware "
        f"{100 * d['gateware_test_acc']:.2f}%; {d['samples_equal']}/{d['n_samples']} samples "
        f"and {d['logits_equal']}/{d['n_logits']} logits bit-exact; latency "
        f"{d['latency_cycles']} clocks, {d['samples_per_clock']} sample per clock, "
        f"~{d['lut_estimate']} LUT4 estimated.", "",
        "| rule | network | float | integer | shift-add terms | LUT4 estimate | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rules.items():
        lines.append(f"| {name} | {' -> '.join(map(str, r['shape']))} | "
                     f"{100 * r['float_test_acc']:.2f}% | {100 * r['int_test_acc']:.2f}% | "
                     f"{r['csd_terms']} | {r['lut_estimate']} | {r['train_seconds']:.1f} |")
    lines += ["", "Targets:", ""]
    lines += [f"- {k}: {'met' if v else 'NOT met'}" for k, v in result["targets"].items()]
    write_atomic(OUT / "digits.json", json.dumps(result, indent=2) + "\n")
    write_atomic(OUT / "digits.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
