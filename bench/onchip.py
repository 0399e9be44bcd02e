"""Benchmark of on-chip learning (issue 4): reports/bench/onchip.json and .md.

    .venv/bin/python bench/onchip.py [--random-steps 2000] [--digits-steps 100]

1. A random two-layer net trained for --random-steps samples in the Amaranth simulator:
   every weight (and the LFSR) equals the integer trainer's.
2. digits, single layer 64 -> 10: --digits-steps samples in the simulator, weights equal.
3. Integer-training accuracy on the digits test split (software golden model, which the
   gateware reproduces bit for bit) for a single-layer and a hidden-layer configuration.
4. LUT4/FF estimates (hw.arith.Cost tally, not synthesis) vs ECP5-85F and UP5K.
5. Training throughput: clocks per sample; samples/s at an ASSUMED clock (fmax not measured)
   next to the CPU integer trainer's samples/s measured in the same run.
"""

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

from clockprop.hw.update import TrainableNet
from clockprop.sim.train_sim import check_weights, simulate_training
from clockprop.sw.datasets import load_dataset
from clockprop.sw.inttrain import IntTrainConfig, IntTrainer, sample_order, train_int

ECP5_85F_LUT4, UP5K_LUT4 = 84_000, 5_280
ASSUMED_MHZ = 50.0

DIGITS_SINGLE = IntTrainConfig(hidden=(), weight_bits=10, frac=7, shift=8, e_shift=6, e_max=7,
                               epochs=20)
DIGITS_HIDDEN = IntTrainConfig(hidden=(32,), weight_bits=10, frac=(7, 7), shift=(7, 8),
                               e_shift=6, e_max=7, epochs=20)
RANDOM_NET = IntTrainConfig(hidden=(4,), weight_bits=6, frac=(3, 3), shift=(5, 6), e_shift=3,
                            e_max=3, seed=11)
SMALL = IntTrainConfig(hidden=(), weight_bits=6, frac=3, shift=5, e_shift=3, e_max=3)


def equal_after(cfg, n_in, n_classes, a, y):
    host = IntTrainer(cfg, n_in, n_classes)
    result = simulate_training(copy.deepcopy(host), a, y)
    host.train_steps(a, y)
    check_weights(host, result)                 # raises on any difference
    return {"steps": int(len(a)), "weights_equal": True, "n_weights": int(sum(
        v.size for v in host.v)), "cycles": int(result.cycles),
        "sim_seconds": round(result.seconds, 2),
        "sim_clocks_per_s": round(result.cycles_per_second, 1)}


def unit_cost(cfg, n_in, n_classes, budget):
    unit = TrainableNet(IntTrainer(cfg, n_in, n_classes))
    cost = unit.estimate()
    return {"shape": unit.shape, "weights": int(unit.n_weights), "lut_estimate": cost.lut,
            "ff_estimate": cost.ff, "budget_lut4": budget, "fits": cost.lut <= budget,
            "clocks_per_sample": unit.interval,
            "samples_per_s_at_assumed_clock": ASSUMED_MHZ * 1e6 / unit.interval}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--random-steps", type=int, default=2000)
    p.add_argument("--digits-steps", type=int, default=100)
    p.add_argument("--out", default="reports/bench")
    args = p.parse_args()
    t0 = time.perf_counter()
    out = {"assumed_clock_mhz": ASSUMED_MHZ, "fmax": "not measured (no synthesis run)"}
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 16, (args.random_steps, 6)), rng.integers(0, 3, args.random_steps)
    out["random_net"] = {"shape": [6, 4, 3], **equal_after(RANDOM_NET, 6, 3, x, y)}
    print("random", out["random_net"], flush=True)

    data = load_dataset("digits", 0)
    for name, cfg in (("digits_single", DIGITS_SINGLE), ("digits_hidden", DIGITS_HIDDEN)):
        res = train_int(cfg, data)
        out[name] = {"config": cfg.to_dict(), "int_test_acc": res.history[-1]["test_acc"],
                     "int_best_test_acc": max(h["test_acc"] for h in res.history),
                     "target_95": res.history[-1]["test_acc"] >= 0.95,
                     "cpu_samples_per_s": round(res.samples_per_s, 1),
                     "curve": [(h["step"], h["test_acc"]) for h in res.history],
                     "unit": unit_cost(cfg, 64, 10, ECP5_85F_LUT4)}
        print(name, {k: v for k, v in out[name].items() if k != "curve"}, flush=True)
    a = DIGITS_SINGLE.fmt.quantize_input(data.x_train)
    order = sample_order(DIGITS_SINGLE, len(a))[:args.digits_steps]
    out["digits_single"]["gateware"] = equal_after(DIGITS_SINGLE, 64, 10, a[order],
                                                   data.y_train[order])
    print("digits gateware", out["digits_single"]["gateware"], flush=True)
    out["small_up5k"] = {"task": "8 inputs -> 3 classes, single layer",
                         **unit_cost(SMALL, 8, 3, UP5K_LUT4)}
    out["seconds"] = round(time.perf_counter() - t0, 1)

    d = Path(args.out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "onchip.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["# On-chip learning benchmark", "",
             f"Throughput at an ASSUMED {ASSUMED_MHZ:g} MHz (fmax not measured).", "",
             "| check | result |", "|---|---|"]
    r = out["random_net"]
    lines.append(f"| random net {r['shape']}, {r['steps']} steps (pysim) | weights equal: "
                 f"{r['weights_equal']} ({r['sim_clocks_per_s']} clocks/s) |")
    g = out["digits_single"]["gateware"]
    lines.append(f"| digits 64->10, {g['steps']} steps (pysim) | weights equal: "
                 f"{g['weights_equal']} ({g['sim_clocks_per_s']} clocks/s) |")
    for name in ("digits_single", "digits_hidden"):
        s, u = out[name], out[name]["unit"]
        lines.append(f"| {name} {u['shape']} | int test {100 * s['int_test_acc']:.2f}% "
                     f"(best {100 * s['int_best_test_acc']:.2f}%, target 95%: "
                     f"{s['target_95']}); ~{u['lut_estimate']} LUT4 / {u['ff_estimate']} FF, "
                     f"ECP5-85F fits: {u['fits']}; {u['clocks_per_sample']} clocks/sample = "
                     f"{u['samples_per_s_at_assumed_clock']:.3g} samples/s vs CPU "
                     f"{s['cpu_samples_per_s']:.0f} samples/s |")
    u = out["small_up5k"]
    lines.append(f"| small {u['shape']} | ~{u['lut_estimate']} LUT4 / {u['ff_estimate']} FF, "
                 f"UP5K fits: {u['fits']} |")
    (d / "onchip.md").write_text("\n".join(lines) + "\n")
    print(f"done in {out['seconds']} s -> {d}/onchip.json, onchip.md")


if __name__ == "__main__":
    main()
