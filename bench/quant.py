"""Benchmark: does quantization hold on every split? Writes reports/bench/quant.{md,json}.

For each default config (``digits``, ``digits_up5k``, ``mnist_up5k``) and split seeds 0-4,
float training and quantization-aware training (``train.qat``), each quantized with the
largest weight's scale or calibrated on the training split (``train.calibrate``): float and
integer test accuracy, the float -> integer loss and the LUT4 estimate. The points run as one ``clockprop sweep`` per config
(local Ray, estimates only; results cached in ``reports/sweep/quant-<config>/``).

Targets (issue 23): the shipped configs lose at most 0.5 points float -> integer on every
split seed 0-4, and ``mnist_up5k`` reaches >= 90% integer on each of them.

Run: `.venv/bin/python bench/quant.py [--configs digits,digits_up5k,mnist_up5k]`.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from clockprop.core.fileio import write_atomic
from clockprop.models.config import load_config
from clockprop.sw.sweep_cli import run_sweep

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "bench"
SEEDS = range(5)
MAX_LOSS = 0.005
MNIST_UP5K_MIN = 0.90


def sweep(config):
    space = (f'name = "quant-{config}"\nbase = "configs/{config}.toml"\nsynth = "none"\n'
             f'[space]\n"split_seed" = {{range = [0, {max(SEEDS)}]}}\n'
             f'"train.qat" = [false, true]\n"train.calibrate" = [false, true]\n'
             f'board = "ulx3s"\n')
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(space)
    try:
        return run_sweep(f.name, ROOT / "reports" / "sweep" / f"quant-{config}")
    finally:
        os.unlink(f.name)


def rows(config, summary):
    cfg = load_config(ROOT / "configs" / f"{config}.toml").train
    shipped = (cfg.qat, cfg.calibrate)
    out = []
    for r in summary["results"]:
        p = r["point"]
        out.append({"config": config, "split_seed": p["split_seed"], "qat": p["train.qat"],
                    "calibrate": p["train.calibrate"],
                    "shipped": (p["train.qat"], p["train.calibrate"]) == shipped,
                    "status": r["status"], "lut_estimate": r.get("lut_estimate"),
                    "float": r.get("float_acc"), "integer": r.get("int_acc"),
                    "reference": r.get("ref_acc"),
                    "loss": (r["float_acc"] - r["int_acc"]) if r.get("int_acc") is not None
                    else None, "reason": r.get("reason")})
    return out


def _pct(x):
    return "-" if x is None else f"{100 * x:.2f}%"


def markdown(table, targets):
    lines = ["# Quantization on every split", "",
             "Float -> integer loss (points) per split seed; `shipped` marks the training the "
             "config ships with. bp: the float backprop reference of the config.", "",
             "| config | training | seed | float | integer | loss | bp reference | LUT4 est. |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(table, key=lambda r: (r["config"], r["qat"], r["calibrate"],
                                          r["split_seed"])):
        mode = (("QAT" if r["qat"] else "float") + (", calibrated" if r["calibrate"] else "")
                + (" (shipped)" if r["shipped"] else ""))
        if r["integer"] is None:
            lines.append(f"| {r['config']} | {mode} | {r['split_seed']} | failed: "
                         f"{r['reason']} | | | | |")
            continue
        lines.append(f"| {r['config']} | {mode} | {r['split_seed']} | {100 * r['float']:.2f}% "
                     f"| {100 * r['integer']:.2f}% | {100 * r['loss']:+.2f} | "
                     f"{_pct(r['reference'])} | {r['lut_estimate']} |")
    lines += ["", "## Targets", ""] + [f"- {k}: {'met' if v else 'MISSED'}"
                                       for k, v in targets.items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="digits,digits_up5k,mnist_up5k")
    args = p.parse_args(argv)
    os.chdir(ROOT)
    table = []
    for config in args.configs.split(","):
        table += rows(config, sweep(config))
    shipped = [r for r in table if r["shipped"]]
    targets = {f"{c}: float -> integer within 0.5 points on seeds 0-4":
               all(r["loss"] is not None and r["loss"] <= MAX_LOSS
                   for r in shipped if r["config"] == c)
               for c in args.configs.split(",")}
    if "mnist_up5k" in args.configs:
        targets["mnist_up5k: >= 90% integer on seeds 0-4"] = all(
            (r["integer"] or 0) >= MNIST_UP5K_MIN for r in shipped
            if r["config"] == "mnist_up5k")
    OUT.mkdir(parents=True, exist_ok=True)
    write_atomic(OUT / "quant.json", json.dumps({"rows": table, "targets": targets},
                                                indent=1) + "\n")
    write_atomic(OUT / "quant.md", markdown(table, targets))
    print((OUT / "quant.md").read_text())
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
