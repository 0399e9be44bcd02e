"""``clockprop train-onchip``: integer training on the host next to training in the gateware.

    clockprop train-onchip [--dataset digits] [--set key=value ...] [--sim-steps N]
        -> reports/<name>/onchip.{json,md,png}

The host runs :func:`sw.inttrain.train_int`'s sample sequence with the integer trainer; the
Amaranth simulator runs the first ``--sim-steps`` samples of the same sequence through
:class:`hw.update.TrainableNet` in ``--points`` chunks, reading every weight back after each
chunk. The read-back weights must equal the host's (an error otherwise); the report plots the
test accuracy of both along the steps, with the integer trainer's whole run, the LUT/FF
estimate of the unit and its training throughput (clocks per sample; samples/s at ``--clock-mhz``,
an assumed clock, not a measured fmax).
"""

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

from .errors import ClockpropError

__all__ = ["register", "run_onchip"]

REPORTS = Path("reports")


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_onchip(cfg, data, sim_steps, points=4, clock_mhz=50.0, progress=_log, serial=False):
    """Host training, gateware training of the first ``sim_steps`` samples, the comparison.

    ``serial``: the gateware's bit-serial forward pass (:class:`hw.update.TrainableNet`).
    Returns a JSON-ready summary; raises :class:`ClockpropError` when the gateware's weights
    ever differ from the host's.
    """
    from ..hw.update import TrainableNet
    from ..sim.train_sim import check_weights, simulate_training
    from .inttrain import IntTrainer, lr_schedule, sample_order, train_int

    fmt = cfg.fmt
    a_train, a_test = fmt.quantize_input(data.x_train), fmt.quantize_input(data.x_test)
    full = train_int(cfg, data)
    order = sample_order(cfg, len(a_train))
    lrs = lr_schedule(cfg, len(a_train))
    sim_steps = min(sim_steps, len(order))

    host = IntTrainer(cfg, data.n_inputs, data.n_classes)
    chip = copy.deepcopy(host)
    bounds = np.unique(np.linspace(0, sim_steps, points + 1).astype(int))
    curve = [{"step": 0, "host_test_acc": host.accuracy(a_test, data.y_test),
              "chip_test_acc": chip.accuracy(a_test, data.y_test)}]
    sim_seconds = sim_cycles = 0
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = order[lo:hi]
        result = simulate_training(copy.deepcopy(chip), a_train[idx], data.y_train[idx],
                                   lr=lrs[lo:hi], serial=serial)
        host.train_steps(a_train[idx], data.y_train[idx], lrs[lo:hi])
        check_weights(host, result)
        chip.v = [w.copy() for w in result.weights]
        chip.lfsr.state = result.lfsr
        sim_seconds += result.seconds
        sim_cycles += result.cycles
        curve.append({"step": int(hi), "host_test_acc": host.accuracy(a_test, data.y_test),
                      "chip_test_acc": chip.accuracy(a_test, data.y_test)})
        progress(f"train-onchip: {hi}/{sim_steps} samples in the gateware, weights equal, "
                 f"test {100 * curve[-1]['chip_test_acc']:.2f}% "
                 f"({result.cycles_per_second:.0f} clocks/s simulated)")
    unit = TrainableNet(host, serial=serial)
    cost = unit.estimate()
    return {
        "config": cfg.to_dict(), "shape": host.shape, "split": data.split,
        "software": {"history": full.history, "test_acc": full.history[-1]["test_acc"],
                     "train_acc": full.history[-1]["train_acc"],
                     "samples_per_s": full.samples_per_s, "device": "cpu (numpy, batch 1)"},
        "gateware": {"simulator": "Amaranth pysim", "steps": int(sim_steps),
                     "weights_equal": True, "curve": curve, "sim_seconds": sim_seconds,
                     "sim_cycles": int(sim_cycles),
                     "sim_cycles_per_s": sim_cycles / max(sim_seconds, 1e-9)},
        "unit": {"weights": int(unit.n_weights), "serial": bool(serial),
                 "lut_estimate": cost.lut,
                 "ff_estimate": cost.ff, "clocks_per_sample": unit.interval,
                 "assumed_clock_mhz": clock_mhz,
                 "samples_per_s_at_assumed_clock": clock_mhz * 1e6 / unit.interval},
    }


def write_onchip_report(out_dir, name, summary):
    from .fileio import write_atomic
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "onchip.json", out_dir / "onchip.md"]
    write_atomic(paths[0], json.dumps(summary, indent=1) + "\n")
    sw, gw, unit = summary["software"], summary["gateware"], summary["unit"]
    lines = [f"# On-chip training: {name}", "",
             f"Net {summary['shape']}, rule {summary['config']['rule']}, {summary['split']}.", "",
             f"- integer trainer (host): test {100 * sw['test_acc']:.2f}% after "
             f"{sw['history'][-1]['step']} samples, {sw['samples_per_s']:.0f} samples/s "
             f"({sw['device']})",
             f"- gateware ({gw['simulator']}): {gw['steps']} samples, every weight equal to the "
             f"integer trainer's at each of {len(gw['curve']) - 1} read-backs; "
             f"{gw['sim_cycles_per_s']:.0f} simulated clocks/s",
             f"- update unit: {unit['weights']} weights, ~{unit['lut_estimate']} LUT4, "
             f"{unit['ff_estimate']} FF (estimate), {unit['clocks_per_sample']} clocks per "
             f"training sample = {unit['samples_per_s_at_assumed_clock']:.3g} samples/s at an "
             f"ASSUMED {unit['assumed_clock_mhz']:g} MHz (fmax not measured)", "",
             "| step | host test acc | gateware test acc |", "|---:|---:|---:|"]
    lines += [f"| {p['step']} | {100 * p['host_test_acc']:.2f}% | "
              f"{100 * p['chip_test_acc']:.2f}% |" for p in gw["curve"]]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.5))
        h = sw["history"]
        ax.plot([p["step"] for p in h], [100 * p["test_acc"] for p in h], "-",
                label="integer trainer (host)")
        c = gw["curve"]
        ax.plot([p["step"] for p in c], [100 * p["chip_test_acc"] for p in c], "o",
                label="gateware (read back)")
        ax.set_xlabel("training samples")
        ax.set_ylabel("test accuracy (%)")
        ax.legend()
        fig.tight_layout()
        paths.append(out_dir / "onchip.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
        lines += ["", "![learning curves](onchip.png)"]
    except ImportError:
        lines += ["", "(matplotlib is not installed: no plot)"]
    write_atomic(paths[1], "\n".join(lines) + "\n")
    return paths


def cmd_train_onchip(args):
    from .cli import _overrides
    from .datasets import load_dataset
    from .inttrain import IntTrainConfig

    settings = _overrides(args.set)
    try:
        cfg = IntTrainConfig(**settings)
    except TypeError as e:
        raise ClockpropError(f"train-onchip: unknown setting ({e})") from None
    if args.sim_steps < 1 or args.points < 1 or not args.clock_mhz > 0:
        raise ClockpropError("train-onchip: --sim-steps and --points must be >= 1, "
                             "--clock-mhz > 0")
    data = load_dataset(args.dataset, args.split_seed)
    start = time.perf_counter()
    summary = run_onchip(cfg, data, args.sim_steps, args.points, args.clock_mhz,
                         serial=args.serial)
    name = args.name or f"onchip-{args.dataset}"
    paths = write_onchip_report(REPORTS / name, name, summary)
    _log(f"train-onchip: integer test accuracy {100 * summary['software']['test_acc']:.2f}%, "
         f"{summary['gateware']['steps']} gateware steps bit-exact; "
         f"{time.perf_counter() - start:.0f} s -> {', '.join(map(str, paths))}")


def register(sub):
    sp = sub.add_parser("train-onchip", help="integer training on the host and in simulated "
                                             "gateware; compare the weights; write a report")
    sp.add_argument("--dataset", default="digits")
    sp.add_argument("--split-seed", type=int, default=0)
    sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="an IntTrainConfig field, e.g. hidden=[] or shift=8 (repeatable)")
    sp.add_argument("--sim-steps", type=int, default=200,
                    help="training samples run in the gateware simulator (default 200)")
    sp.add_argument("--points", type=int, default=4, help="weight read-backs (default 4)")
    sp.add_argument("--clock-mhz", type=float, default=50.0,
                    help="assumed clock for the throughput figure (default 50)")
    sp.add_argument("--serial", action="store_true",
                    help="bit-serial forward pass: act_bits clocks per layer, far less logic")
    sp.add_argument("--name", help="report name (default onchip-<dataset>)")
    sp.set_defaults(func=cmd_train_onchip)
