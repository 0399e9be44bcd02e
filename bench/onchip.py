"""Benchmark of on-chip learning (issue 4): reports/bench/onchip.{json,md,png}.

    .venv/bin/python bench/onchip.py [--seeds 5] [--random-steps 3000] [--digits-steps 3000]
                                     [--points 6] [--synth] [--synth-ecp5] [--exact-only]

1. Bit-exactness on random nets: ``--random-steps`` samples through the update unit in the
   Amaranth simulator for rules csb and ed (parallel, bit-serial, bit-serial with fold):
   every weight and the LFSR equal the integer trainer's.
2. The on-chip digits default (:data:`models.inttrain.ONCHIP_DIGITS`, csb 64 -> 30 -> 10) with
   the integer trainer (bit-exact with the gateware) for seeds 0..``--seeds``-1: final and
   best test accuracy, mean and min; next to it rule ed (one network per class, sign
   constraint) and csb with random signs and with fewer neurons, same number format.
3. The learning curve in the gateware: the first ``--digits-steps`` samples of seed 0's
   training sequence through :class:`hw.update.TrainableNet` (bit-serial, fold 2) in the
   simulator, the weights read back at ``--points`` moments and compared with the integer
   trainer's: the test accuracy of the read-back weights next to the software curve
   (``onchip.png``); for the digits default and for the ECP5 default (which also runs with
   ``rival`` off, every class's error, for comparison).
4. Resources: the training board top's estimate (unit, weight read-back, link; block RAM for
   the stored split) against ECP5-85F and, for :data:`models.inttrain.ONCHIP_UP5K`, against the
   UP5K; with ``--synth`` the UP5K training top is built with yosys + nextpnr
   (:func:`boards.build.build_train`, iCEBreaker) for measured LUT/FF/EBR and fmax, with
   ``--synth-ecp5`` also the training top of the ECP5 default (:data:`models.inttrain.ONCHIP_ECP5`,
   one dense layer) for the ULX3S (ECP5-85F, PLL at 20 MHz, kept in
   ``build/onchip/ulx3s_h<hidden>``; about 6 minutes here); ``--ecp5-only [--ecp5-hidden
   N]`` runs just that build, for the ECP5 default or for the digits default with N hidden
   neurons (whose place and route does not finish). A failure or a
   timeout is recorded as it happens, with what the tools got to (yosys's cell counts,
   nextpnr's last timing estimate).
5. Training throughput: clocks per sample of the unit; samples/s at the achieved fmax (where
   one was measured; otherwise at an assumed clock, said so) next to the CPU integer
   trainer's samples/s measured in the same run.
"""

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clockprop.boards.train_top import TrainDeviceCore, stored_split
from clockprop.sim.train_sim import check_weights, simulate_training, train_alongside
from clockprop.models.datasets import load_dataset
from clockprop.core.errors import ClockpropError
from clockprop.models.inttrain import (ONCHIP_DIGITS, ONCHIP_ECP5, ONCHIP_FOLD, ONCHIP_UP5K,
                                   IntTrainConfig, IntTrainer, train_int)

ASSUMED_MHZ = 50.0
RANDOM_NETS = {
    "csb": IntTrainConfig(hidden=(4,), weight_bits=7, drop=(0, 1), frac=(3, 3), shift=(5, 6),
                          e_shift=3, e_max=3, gate_margin=2, seed=11),
    "ed": IntTrainConfig(rule="ed", hidden=(2,), weight_bits=6, drop=(0, 1), frac=(2, 3),
                         shift=(4, 6), e_shift=2, e_max=3, gate_margin=2, seed=3),
}
RANDOM_NETS["csb, rival"] = dataclasses.replace(RANDOM_NETS["csb"], rival=True)
COMPARE = {
    "csb, no gate margin": dict(gate_margin=0),
    "csb, random signs": dict(signs="random"),
    "csb, 20 hidden": dict(hidden=(20,)),
    "ed, 2 per class (20 hidden)": dict(rule="ed", hidden=(2,)),
    "ed, 3 per class (30 hidden)": dict(rule="ed", hidden=(3,)),
}


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def random_net_checks(steps):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 16, (steps, 6)), rng.integers(0, 3, steps)
    rows = []
    for rule, cfg in RANDOM_NETS.items():
        for serial, fold in ((False, 1), (True, 1), (True, 2)):
            host = IntTrainer(cfg, 6, 3)
            result = simulate_training(copy.deepcopy(host), x, y, serial=serial, fold=fold)
            predicted = host.train_steps(x, y)
            np.testing.assert_array_equal(result.predicted, predicted)
            check_weights(host, result)                 # raises on any difference
            rows.append({"rule": rule, "shape": host.shape, "steps": steps,
                         "form": "parallel" if not serial else f"serial, fold {fold}",
                         "weights": len(host.flat_weights()), "weights_equal": True,
                         "cycles": result.cycles,
                         "sim_clocks_per_s": round(result.cycles_per_second, 1)})
            _log(f"random net {rule} {rows[-1]['form']}: {steps} steps, weights equal")
    return rows


def seeds_run(cfg, data, seeds):
    runs, curve = [], None
    for seed in range(seeds):
        res = train_int(dataclasses.replace(cfg, seed=seed), data)
        runs.append({"seed": seed, "test_acc": res.history[-1]["test_acc"],
                     "best_test_acc": max(h["test_acc"] for h in res.history),
                     "train_acc": res.history[-1]["train_acc"],
                     "cpu_samples_per_s": round(res.samples_per_s, 1)})
        if seed == 0:
            curve = [{"step": h["step"], "test_acc": h["test_acc"]} for h in res.history]
    accs = [r["test_acc"] for r in runs]
    return {"config": cfg.to_dict(), "seeds": runs, "mean_test_acc": float(np.mean(accs)),
            "min_test_acc": float(np.min(accs)), "max_test_acc": float(np.max(accs)),
            "all_at_least_95": bool(min(accs) >= 0.95),
            "cpu_samples_per_s": float(np.mean([r["cpu_samples_per_s"] for r in runs])),
            "curve_seed0": curve}


def top_estimate(cfg, n_in, n_classes, capacity, fold, stored):
    trainer = IntTrainer(cfg, n_in, n_classes)
    core = TrainDeviceCore(trainer, divisor=4, serial=True, fold=fold, stored=stored)
    need = core.estimate(capacity)
    return {"weights": core.n_weights, "fold": fold, "clocks_per_sample": core.interval,
            "stored_samples": len(stored[0]) if stored else 0, **need,
            "lut_share": round(need["lut"] / capacity.lut, 3),
            "fits": need["lut"] <= capacity.lut and need["ff"] <= capacity.ff and
            need["ebr"] <= capacity.ebr}


def estimates(out, data):
    """Fill in the training tops' resource estimates of ``out``: the digits default and the
    ECP5 default with their stored splits on the ECP5-85F, the variants of ``compare`` (no
    stored split), the UP5K config with its split. Returns how many samples each stored split
    holds: ``{"digits": n, "ecp5": n, "up5k": n}``."""
    from clockprop.boards.registry import get_board
    from clockprop.sw.train_cli import stored_capacity
    n = len(data.x_train)
    ecp5, up5k = get_board("ulx3s"), get_board("icebreaker")
    for name, change in COMPARE.items():
        if name in out["compare"]:
            cfg = dataclasses.replace(ONCHIP_DIGITS, **change)
            out["compare"][name]["estimate"] = top_estimate(cfg, 64, 10, ecp5.capacity,
                                                            ONCHIP_FOLD, None)
    stored = {}
    for name, cfg, board, fold in (("digits", ONCHIP_DIGITS, ecp5, ONCHIP_FOLD),
                                   ("ecp5", ONCHIP_ECP5, ecp5, ONCHIP_FOLD),
                                   ("up5k", ONCHIP_UP5K, up5k, 1)):
        k = stored[name] = stored_capacity(cfg, 64, 10, board, n)
        out[name]["estimate"] = top_estimate(cfg, 64, 10, board.capacity, fold,
                                             stored_split(cfg, data, k))
    return stored


def gateware_curve(cfg, data, steps, points, fold):
    """The first ``steps`` samples of seed 0's sequence through the unit, read back at
    ``points`` moments; the host's and the chip's test accuracy there."""
    _, curve, seconds, cycles = train_alongside(
        cfg, data, steps, points, serial=True, fold=fold,
        progress=lambda message: _log(f"gateware: {message}"))
    return {"steps": int(steps), "fold": fold, "weights_equal": True, "curve": curve,
            "sim_seconds": round(seconds, 1), "sim_cycles": int(cycles),
            "sim_clocks_per_s": round(cycles / max(seconds, 1e-9), 1)}


def synth(board_name, cfg, data, fold, stored_n, out_dir, timeout, freq=None):
    """Build the training top of ``cfg`` for ``board_name`` at ``freq`` Hz with
    :func:`clockprop.boards.build.build_train` (what ``clockprop train-onchip --bitstream``
    runs): resources and fmax. When the toolchain fails or runs past ``timeout``, what it got
    to is kept: yosys's cell counts and nextpnr's last timing estimate (``partial``), next to
    the error."""
    from clockprop.boards.build import build_train, parse_nextpnr, parse_yosys_stat
    from clockprop.boards.registry import get_board
    board = get_board(board_name)
    trainer = IntTrainer(cfg, data.n_inputs, data.n_classes)
    stored = stored_split(cfg, data, stored_n)
    t0 = time.perf_counter()
    base = {"board": board_name, "device": board.capacity.device, "stored_samples": stored_n,
            "out_dir": str(out_dir)}
    try:
        r = build_train(trainer, board_name, stored=stored, fold=fold, freq=freq,
                        out_dir=out_dir, timeout=timeout)
    except ClockpropError as e:
        base.update(error=str(e), seconds=round(time.perf_counter() - t0, 1))
        rpt, tim = Path(out_dir) / "top.rpt", Path(out_dir) / "top.tim"
        cells = parse_yosys_stat(rpt.read_text(errors="replace")) if rpt.exists() else {}
        if cells:
            lut = (cells.get("SB_LUT4", 0) if board.family == "ice40" else
                   cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0))
            ff = sum(v for k, v in cells.items() if k.startswith(("SB_DFF", "TRELLIS_FF")))
            util, fmax = parse_nextpnr("", tim.read_text(errors="replace")) if tim.exists() \
                else ({}, {})
            estimate = [v["achieved_mhz"] for v in fmax.values()]
            base["partial"] = {"yosys_lut": lut, "lut_available": board.capacity.lut,
                               "yosys_ff": ff, "yosys_cells": cells,
                               "nextpnr_utilisation": {k: v for k, v in util.items()
                                                       if v["used"]},
                               "nextpnr_last_estimate_mhz": min(estimate) if estimate else None}
        return base
    res = r["resources"]
    return {**base, "pll_mhz": r["pll_mhz"], "clocks_per_sample": r["clocks_per_sample"],
            "lut": res["lut"]["used"], "lut_available": res["lut"]["available"],
            "ff": res["ff"]["used"], "ebr": res["ebr"]["used"], "fmax_mhz": r["fmax_mhz"],
            "build_seconds": r["build_seconds"]}


def synth_ecp5(cfg, data, stored_n, timeout):
    """The digits training top of ``cfg`` for the ULX3S (ECP5-85F), PLL at the training
    tops' default clock (what ``train-onchip --bitstream`` builds), in
    ``build/onchip/ulx3s_h<hidden>`` (kept: the bitstream, and the logs of a place and route
    that does not finish)."""
    _log(f"synthesis: digits training top {[64, *cfg.hidden, 10]} (ulx3s, timeout "
         f"{timeout:.0f} s)")
    result = synth("ulx3s", cfg, data, ONCHIP_FOLD, stored_n,
                   Path(f"build/onchip/ulx3s_h{cfg.hidden[0] if cfg.hidden else 0}"), timeout)
    _log(f"  {result}")
    return result


def throughput(run):
    """Training samples/s at the measured fmax (where there is one), at the PLL clock and at
    the assumed clock, next to the CPU integer trainer's."""
    est = run["estimate"]
    fmax = (run.get("synth") or {}).get("fmax_mhz")
    clock = min(fmax, (run.get("synth") or {}).get("pll_mhz") or fmax) if fmax else None
    run["throughput"] = {
        "clocks_per_sample": est["clocks_per_sample"],
        "fmax_mhz": fmax,
        "samples_per_s_at_fmax": fmax * 1e6 / est["clocks_per_sample"] if fmax else None,
        "samples_per_s_at_clock": clock * 1e6 / est["clocks_per_sample"] if clock else None,
        "samples_per_s_at_assumed_clock": ASSUMED_MHZ * 1e6 / est["clocks_per_sample"],
        "cpu_samples_per_s": run["cpu_samples_per_s"]}


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    g = out["gateware"]["curve"]
    # the software curve, evaluated at its own points and at the gateware's read-backs
    sw = {p["step"]: p["test_acc"] for p in out["digits"]["first_epoch_curve"]}
    sw.update({p["step"]: p["host_test_acc"] for p in g})
    steps = sorted(sw)
    ax0.plot(steps, [100 * sw[k] for k in steps], "-", label="integer trainer (software)")
    ax0.plot([p["step"] for p in g], [100 * p["chip_test_acc"] for p in g], "o",
             label="gateware, weights read back")
    g5 = out["ecp5"]["gateware"]["curve"]
    ax0.plot([p["step"] for p in g5], [100 * p["host_test_acc"] for p in g5], "-",
             label="ECP5 default: integer trainer")
    ax0.plot([p["step"] for p in g5], [100 * p["chip_test_acc"] for p in g5], "s",
             label="ECP5 default: gateware")
    ax0.set_title(f"first {out['gateware']['steps']} samples, seed 0: the two coincide")
    ax0.set_xlabel("training samples")
    ax0.set_ylabel("test accuracy (%)")
    ax0.legend()
    for name, run in [("default (csb, 30 alternate)", out["digits"])] + \
            [(k, v) for k, v in out["compare"].items()] + \
            [("ECP5 default (64 -> 10, rival)", out["ecp5"]),
             ("ECP5 default, rival off", out["ecp5"]["rival_off"])]:
        c = run["curve_seed0"]
        ax1.plot([p["step"] / 1000 for p in c], [100 * p["test_acc"] for p in c], label=name)
    ax1.axhline(95, color="grey", lw=0.5, ls="--")
    ax1.set_ylim(80, 100)
    ax1.set_title("whole training, seed 0 (integer trainer = gateware)")
    ax1.set_xlabel("training samples (thousands)")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--random-steps", type=int, default=3000)
    p.add_argument("--digits-steps", type=int, default=3000,
                   help="samples of the digits sequence run in the gateware simulator")
    p.add_argument("--points", type=int, default=6, help="gateware weight read-backs")
    p.add_argument("--synth", action="store_true", help="build the UP5K training top")
    p.add_argument("--synth-ecp5", action="store_true",
                   help="also build the ECP5 default's training top for the ULX3S")
    p.add_argument("--ecp5-only", action="store_true",
                   help="only the --synth-ecp5 step, added to an existing onchip.json")
    p.add_argument("--ecp5-hidden", type=int,
                   help="with --ecp5-only: build the digits default with this many hidden "
                        "neurons instead (recorded under compare['csb, N hidden'])")
    p.add_argument("--estimates-only", action="store_true",
                   help="only recompute the resource estimates of an existing onchip.json")
    p.add_argument("--exact-only", action="store_true",
                   help="only rerun the bit-exactness checks (random nets, the digits sequence "
                        "in the gateware) into an existing onchip.json")
    p.add_argument("--plot-only", action="store_true",
                   help="only redraw onchip.png from an existing onchip.json")
    p.add_argument("--synth-timeout", type=float, default=3600)
    p.add_argument("--out", default="reports/bench")
    args = p.parse_args()
    from clockprop.boards.registry import get_board
    from clockprop.sw.train_cli import stored_capacity
    t0 = time.perf_counter()
    data = load_dataset("digits", 0)
    n = len(data.x_train)
    d = Path(args.out)
    if args.plot_only:
        plot(_report(d), d / "onchip.png")
        return
    if args.estimates_only:
        out = _report(d)
        estimates(out, data)
        for run in [out["digits"], out["ecp5"], out["up5k"]] + list(out["compare"].values()):
            if "estimate" in run and "cpu_samples_per_s" in run:
                throughput(run)
        (d / "onchip.json").write_text(json.dumps(out, indent=1) + "\n")
        (d / "onchip.md").write_text(markdown(out) + "\n")
        return
    if args.exact_only:
        random_nets = random_net_checks(args.random_steps)
        gateware = gateware_curve(ONCHIP_DIGITS, data, args.digits_steps, args.points,
                                  ONCHIP_FOLD)
        out = {**_report(d),                                      # as it is now
               "random_nets": random_nets, "gateware": gateware}
        out["ecp5"]["gateware"] = gateware_curve(ONCHIP_ECP5, data, args.digits_steps,
                                                 args.points, ONCHIP_FOLD)
        plot(out, d / "onchip.png")
        (d / "onchip.json").write_text(json.dumps(out, indent=1) + "\n")
        (d / "onchip.md").write_text(markdown(out) + "\n")
        return
    if args.ecp5_only:
        cfg = ONCHIP_ECP5
        if args.ecp5_hidden:
            cfg = dataclasses.replace(ONCHIP_DIGITS, hidden=(args.ecp5_hidden,))
        n_ecp5 = stored_capacity(cfg, 64, 10, get_board("ulx3s"), n)
        result = synth_ecp5(cfg, data, n_ecp5, args.synth_timeout)
        out = _report(d)                                    # as it is now, hours later
        run = (out["compare"].setdefault(f"csb, {args.ecp5_hidden} hidden", {})
               if args.ecp5_hidden else out["ecp5"])
        run["synth"] = result
        if "estimate" in run and "cpu_samples_per_s" in run:
            throughput(run)
        (d / "onchip.json").write_text(json.dumps(out, indent=1) + "\n")
        (d / "onchip.md").write_text(markdown(out) + "\n")
        return
    out = {"assumed_clock_mhz": ASSUMED_MHZ, "split": data.split}

    out["random_nets"] = random_net_checks(args.random_steps)

    _log("digits default, seeds")
    digits = out["digits"] = seeds_run(ONCHIP_DIGITS, data, args.seeds)
    first = train_int(ONCHIP_DIGITS, data, eval_every=max(1, n // (4 * args.points)))
    digits["first_epoch_curve"] = [{"step": h["step"], "test_acc": h["test_acc"]}
                                   for h in first.history if h["step"] <= n]
    _log(f"digits: {[round(100 * r['test_acc'], 2) for r in digits['seeds']]}")
    out["compare"] = {}
    for name, change in COMPARE.items():
        cfg = dataclasses.replace(ONCHIP_DIGITS, **change)
        out["compare"][name] = seeds_run(cfg, data, args.seeds)
        _log(f"{name}: {[round(100 * r['test_acc'], 2) for r in out['compare'][name]['seeds']]}")
    e5 = out["ecp5"] = seeds_run(ONCHIP_ECP5, data, args.seeds)
    _log(f"ECP5 default: {[round(100 * r['test_acc'], 2) for r in e5['seeds']]}")
    e5["rival_off"] = seeds_run(dataclasses.replace(ONCHIP_ECP5, rival=False), data,
                                args.seeds)
    _log(f"ECP5 default, rival off: "
         f"{[round(100 * r['test_acc'], 2) for r in e5['rival_off']['seeds']]}")
    up = out["up5k"] = seeds_run(ONCHIP_UP5K, data, args.seeds)
    n_stored = estimates(out, data)

    _log("gateware learning curve (pysim)")
    out["gateware"] = gateware_curve(ONCHIP_DIGITS, data, args.digits_steps, args.points,
                                     ONCHIP_FOLD)
    e5["gateware"] = gateware_curve(ONCHIP_ECP5, data, args.digits_steps, args.points,
                                    ONCHIP_FOLD)

    with tempfile.TemporaryDirectory() as work:
        if args.synth:
            _log("synthesis: UP5K training top (icebreaker)")
            up["synth"] = synth("icebreaker", ONCHIP_UP5K, data, 1, n_stored["up5k"],
                                Path(work) / "up5k", args.synth_timeout, freq=20e6)
            _log(f"  {up['synth']}")
    if args.synth_ecp5:
        e5["synth"] = synth_ecp5(ONCHIP_ECP5, data, n_stored["ecp5"], args.synth_timeout)

    for run in (digits, e5, up):
        throughput(run)
    out["seconds"] = round(time.perf_counter() - t0, 1)

    d.mkdir(parents=True, exist_ok=True)
    plot(out, d / "onchip.png")
    (d / "onchip.json").write_text(json.dumps(out, indent=1) + "\n")
    (d / "onchip.md").write_text(markdown(out) + "\n")
    _log(f"done in {out['seconds']} s -> {d}/onchip.json, onchip.md, onchip.png")


def _report(d):
    """The existing ``onchip.json`` that a partial run (``--*-only``) adds to; exits with a
    message when there is none, or it is from before the ECP5 default's rows."""
    path = d / "onchip.json"
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"bench/onchip.py: cannot read {path} ({e}); run the full benchmark first")
    if not {"rival_off", "gateware"} <= set(out.get("ecp5", {})):
        sys.exit(f"bench/onchip.py: {path} is from an older version of this benchmark (no "
                 f"ECP5 default rows); run the full benchmark first")
    return out


def _pct(x):
    return f"{100 * x:.2f}%"


def _seeds(run):
    accs = ", ".join(f"{100 * r['test_acc']:.2f}" for r in run["seeds"])
    return (f"{accs} (mean {_pct(run['mean_test_acc'])}, min {_pct(run['min_test_acc'])})")


def _estimate(e, device):
    return (f"~{e['lut']} LUT4 ({100 * e['lut_share']:.0f}% of {device}), {e['ff']} FF, "
            f"{e['ebr']} EBR, fits: {e['fits']}")


def _throughput(t):
    if t["samples_per_s_at_fmax"]:
        hw = (f"{t['samples_per_s_at_fmax']:.3g} samples/s at the achieved fmax "
              f"{t['fmax_mhz']:.1f} MHz")
    else:
        hw = (f"{t['samples_per_s_at_assumed_clock']:.3g} samples/s at an ASSUMED "
              f"{ASSUMED_MHZ:g} MHz (no fmax measured)")
    return (f"{t['clocks_per_sample']} clocks/sample: {hw}; CPU integer trainer "
            f"{t['cpu_samples_per_s']:.0f} samples/s (numpy, batch 1, this run)")


def markdown(out):
    dg, up, gw = out["digits"], out["up5k"], out["gateware"]
    c = dg["config"]
    lines = [
        "# On-chip learning benchmark", "",
        f"Default on-chip digits config (`models.inttrain.ONCHIP_DIGITS`): 64 -> "
        f"{c['hidden'][0]} -> 10, rule {c['rule']} (signs {c['signs']}), weight_bits "
        f"{c['weight_bits']} (forward uses V >> {c['drop'][0]}), act_bits {c['act_bits']}, "
        f"e_max {c['e_max']}, e_shift {c['e_shift']}, shift {c['shift']}, gate_margin "
        f"{c['gate_margin']}, {c['epochs']} epochs, anneal {c['anneal']}; built bit-serial "
        f"with fold {dg['estimate']['fold']}. {out['split']}.",
        "The integer trainer is bit-exact with the gateware (checked below), so its accuracy "
        "is the on-chip accuracy. The 30-hidden default's training top does not fit the "
        "ECP5-85F, and the 20-hidden one does not route there: the ECP5 boards' default "
        "(`models.inttrain.ONCHIP_ECP5`) is one dense layer that learns from the errors of the "
        "label and its rival (the strongest other class) only.", "",
        "| check | result |", "|---|---|"]
    for r in out["random_nets"]:
        lines.append(f"| random net {r['rule']} {r['shape']}, {r['form']}, {r['steps']} steps "
                     f"(pysim) | every weight equal: {r['weights_equal']} "
                     f"({r['sim_clocks_per_s']} clocks/s) |")
    lines.append(f"| gateware, digits default, first {gw['steps']} samples of seed 0 (pysim, "
                 f"fold {gw['fold']}) | every weight equal at {len(gw['curve']) - 1} read-backs:"
                 f" {gw['weights_equal']}; test accuracy of the read-back weights "
                 f"{', '.join(_pct(p['chip_test_acc']) for p in gw['curve'][1:])} = the "
                 f"software's ({gw['sim_clocks_per_s']} clocks/s simulated) |")
    lines.append(f"| digits default, seeds 0..{len(dg['seeds']) - 1} | test {_seeds(dg)}; all "
                 f">= 95%: {dg['all_at_least_95']} |")
    for name, run in out["compare"].items():
        lines.append(f"| {name} | test {_seeds(run)}; "
                     f"{_estimate(run['estimate'], 'ECP5-85F')} (no stored split) |")
        if run.get("synth"):
            lines.append(f"| {name}: training top, yosys + nextpnr-ecp5 (ULX3S, "
                         f"{run['synth']['stored_samples']} samples stored) | "
                         f"{_synth(run['synth'])} |")
    lines.append(f"| digits default: training top estimate (ECP5-85F, "
                 f"{dg['estimate']['stored_samples']} training samples stored) | "
                 f"{_estimate(dg['estimate'], 'ECP5-85F')} |")
    if dg.get("synth"):
        lines.append(f"| digits default: yosys + nextpnr-ecp5 (ULX3S) | {_synth(dg['synth'])} |")
    lines.append(f"| digits default: training throughput | {_throughput(dg['throughput'])} |")
    e, u = out["ecp5"]["config"], up["config"]
    e5, g5 = out["ecp5"], out["ecp5"]["gateware"]
    lines += _board_rows("ECP5 default", e5, f"`ONCHIP_ECP5`: 64 -> 10, weight_bits "
                         f"{e['weight_bits']}, forward uses V >> {e['drop'][0]}, frac "
                         f"{e['frac'][0]}, e_shift {e['e_shift']}, shift {e['shift'][0]}, "
                         f"{e['epochs']} epochs, anneal {e['anneal']}, rival "
                         f"{e['rival']}", "ECP5-85F", "yosys + nextpnr-ecp5 (ULX3S)")
    lines += [f"| ECP5 default, rival off (every class's error), seeds | test "
              f"{_seeds(e5['rival_off'])} |",
              f"| ECP5 default in the gateware, first {g5['steps']} samples of seed 0 (pysim, "
              f"fold {g5['fold']}) | every weight equal at {len(g5['curve']) - 1} read-backs: "
              f"{g5['weights_equal']}; test accuracy "
              f"{', '.join(_pct(p['chip_test_acc']) for p in g5['curve'][1:])} = the "
              f"software's ({g5['sim_clocks_per_s']} clocks/s simulated) |"]
    lines += _board_rows("UP5K config", up, f"`ONCHIP_UP5K`: one layer, fan_in "
                         f"{u['fan_in'][0]}, weight_bits {u['weight_bits']}", "UP5K",
                         "yosys + nextpnr-ice40 (iCEBreaker)")
    lines += ["", "![learning curves](onchip.png)", "",
              f"Total {out['seconds']} s."]
    return "\n".join(lines)


def _board_rows(label, run, about, device, tools):
    """A board config's rows: accuracy over the seeds, the training top's estimate, its
    build (if one ran) and its training throughput."""
    rows = [f"| {label} ({about}), seeds | test {_seeds(run)}; all >= 95%: "
            f"{run['all_at_least_95']} |",
            f"| {label}: training top estimate ({run['estimate']['stored_samples']} samples "
            f"stored) | {_estimate(run['estimate'], device)} |"]
    if run.get("synth"):
        rows.append(f"| {label}: {tools} | {_synth(run['synth'])} |")
    return rows + [f"| {label}: training throughput | {_throughput(run['throughput'])} |"]


def _synth(s):
    if "error" in s:
        text = f"failed after {s['seconds']} s: {s['error'][:300]}"
        p = s.get("partial")
        if p:
            est = p["nextpnr_last_estimate_mhz"]
            text += (f"; before that, yosys: {p['yosys_lut']} LUT4 / {p['lut_available']}"
                     f"{' (LUT4 + 2 x CCU2C)' if 'CCU2C' in p['yosys_cells'] else ''}, "
                     f"{p['yosys_ff']} FF")
            for name in ("TRELLIS_COMB", "ICESTORM_LC"):
                u = p.get("nextpnr_utilisation", {}).get(name)
                if u:
                    text += (f"; nextpnr packed {u['used']}/{u['available']} {name} "
                             f"({100 * u['used'] / u['available']:.0f}%)")
            text += f"; nextpnr's last timing estimate: {f'{est:.1f} MHz' if est else 'none'}"
        return text
    fmax = f"{s['fmax_mhz']:.1f}" if s["fmax_mhz"] else "-"
    return (f"{s['lut']} LUT4 / {s['lut_available']}, {s['ff']} FF, {s['ebr']} EBR, fmax "
            f"{fmax} MHz (PLL {s['pll_mhz']:g} MHz), build {s['build_seconds']} s "
            f"(measured)")


if __name__ == "__main__":
    main()
