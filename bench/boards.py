"""Benchmark of issue 3: bitstreams for the targets, classic and pipelined adder trees.

    .venv/bin/python bench/boards.py [--only up5k|ecp5] [--modes 0,2] [--pnr-seeds 1,4]
                                     [--no-selftest] [--timeout SECONDS]

Builds (with the yowasp toolchain) a digits model small enough for the iCE40UP5K on the
iCEBreaker, and the default digits model on the ULX3S (ECP5-85F), each one clock per layer
(register_every=0) and with pipelined adder trees (register_every=2 on the UP5K, 1 on the
ECP5, the board's default), with each of the
nextpnr seeds ``--pnr-seeds`` (placement moves fmax by a few percent; default seed 1 and
the config's ``[hardware] pnr_seed``), and writes reports/bench/boards.json and boards.md with
LUT/FF/EBR/DSP, fmax, throughput, latency and build time. ``--no-selftest`` builds the tops
without the stored test split (the pipeline behind the host link only). Results are written
after every build, so a long ECP5 run can be stopped; rows of earlier runs that this run does
not rebuild (another board, mode, seed or self-test choice) are kept.
"""

import argparse
import fcntl
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clockprop.sw.cli import main as cli                    # noqa: E402
from clockprop.core.errors import ClockpropError              # noqa: E402
from clockprop.core.fileio import write_atomic                # noqa: E402
from clockprop.models.intmodel import IntModel                  # noqa: E402

OUT = ROOT / "reports" / "bench"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def trained(config):
    """The model of ``configs/<config>.toml``, trained unless it already is (from the config
    as it is now: a model file older than its config is trained again)."""
    path = ROOT / "build" / config / "model.json"
    toml = ROOT / "configs" / f"{config}.toml"
    fresh = path.exists() and path.stat().st_mtime >= toml.stat().st_mtime
    if not fresh and cli(["train", "--config", str(ROOT / "configs" / f"{config}.toml"),
                                  "--out", str(path)]) != 0:
        raise SystemExit(f"training {config} failed")
    return IntModel.load(path)


def up5k_model():
    return trained("digits_up5k")


def default_model():
    return trained("digits")


def markdown(rows):
    lines = ["# Board builds (issue 3)", "",
             "| model | board | mode | seed | int. acc | LUT4 | FF | EBR | DSP | clock MHz "
             "| fmax MHz | Msamples/s | latency cycles / ns | build s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['board']} | register_every={r['register_every']}"
                         f"{_no_selftest(r)} | {r.get('pnr_seed', '')} | | | | | | | | | | "
                         f"{r['error']} |")
            continue
        res = r["resources"]
        acc = r["test_acc_integer"]
        lat = f"{r['latency_cycles']} / {r['latency_ns']:.1f}" if r["latency_ns"] else "-"
        lines.append(
            f"| {r['model']} | {r['board']} | {r['mode']} (k={r['register_every']})"
            f"{_no_selftest(r)} | "
            f"{r.get('pnr_seed', 1)} | {100 * acc:.1f}% | "
            f"{res['lut']['used']}/{res['lut']['available']} | "
            f"{res['ff']['used']} | {res['ebr']['used']}/{res['ebr']['available']} | "
            f"{res['dsp']['used']} | {r['pll_mhz']:g} | {r['fmax_mhz']:.1f} | "
            f"{r['throughput_msamples_s']:.1f} | {lat} | {r['build_seconds']} |")
    lines += ["", "Over the nextpnr seeds (placement only: the netlist is the same):", ""]
    groups = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault((r["model"], r["board"], r["register_every"], r["pll_mhz"],
                               _no_selftest(r)), []).append((r["fmax_mhz"], r.get("pnr_seed", 1)))
    for (model, board, k, clock, no_st), runs in groups.items():
        fmax = sorted(f for f, _ in runs)
        met = [seed for f, seed in runs if f >= clock]
        lines.append(f"- {model} on {board}, k={k}{no_st}: fmax {fmax[0]:.1f} to "
                     f"{fmax[-1]:.1f} MHz (median {np.median(fmax):.1f}) over {len(runs)} seeds; {clock:g} MHz met "
                     f"with seed(s) {', '.join(map(str, sorted(met))) or 'none'}")
    lines += ["", "Targets: >= 150 MHz on ECP5-85F for the default digits model; >= 48 MHz on "
              "UP5K for a digits model that fits it. One sample per clock in every mode.", ""]
    return "\n".join(lines)


def _no_selftest(row):
    if not row.get("selftest", True):
        return ", no self-test"
    return ", self-test in logic" if row.get("selftest_storage") == "logic" else ""


def _key(row):
    return (row["model"], row["board"], row["register_every"], row.get("pnr_seed", 1),
            row.get("selftest", True), row.get("selftest_storage") or "")


def record(row):
    """Add ``row`` to boards.json (replacing the row of the same model, board, mode and seed)
    and rewrite boards.md. The file is read again under a lock, so that two runs (say
    ``--only up5k`` and ``--only ecp5``) can share it."""
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "boards.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = OUT / "boards.json"
        rows = json.loads(path.read_text()) if path.exists() else []
        rows = sorted([r for r in rows if _key(r) != _key(row)] + [row], key=_key)
        write_atomic(path, json.dumps(rows, indent=1) + "\n")
        write_atomic(OUT / "boards.md", markdown(rows))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=["up5k", "ecp5"])
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--modes", default=None,
                   help="register_every values (default: 0,2 on the UP5K, 0,1 on the ECP5)")
    p.add_argument("--pnr-seeds", default=None,
                   help="nextpnr seeds to build each mode with (fmax moves a few percent; "
                        "default: 1 and the config's [hardware] pnr_seed)")
    p.add_argument("--no-selftest", action="store_true",
                   help="build without the stored test split (the pipeline and the host link)")
    args = p.parse_args()
    from clockprop.boards.build import build
    from clockprop.hw.pipeline import config_hardware

    modes = [int(k) for k in args.modes.split(",")] if args.modes else None
    jobs = []
    if args.only in (None, "up5k"):
        jobs += [(up5k_model(), "icebreaker", 48e6, modes or [0, 2])]
    if args.only in (None, "ecp5"):
        jobs += [(default_model(), "ulx3s", 150e6, modes or [0, 1])]
    for model, board, freq, ks in jobs:
        seeds = ([int(seed) for seed in args.pnr_seeds.split(",")] if args.pnr_seeds else
                 sorted({1, config_hardware(model).get("pnr_seed", 1)}))
        for k, seed in ((k, seed) for k in ks for seed in seeds):
            start = time.perf_counter()
            log(f"bench: building {model.meta['name']} for {board}, register_every={k}, "
                f"nextpnr seed {seed}")
            try:
                out_dir = ROOT / "build" / model.meta["name"] / (
                    f"{board}_k{k}_s{seed}" + ("_nost" if args.no_selftest else ""))
                row = build(model, board, freq=freq, register_every=k, timeout=args.timeout,
                            out_dir=out_dir, seed=seed, selftest=not args.no_selftest)
            except ClockpropError as e:
                row = {"model": model.meta["name"], "board": board, "register_every": k,
                       "pnr_seed": seed, "error": str(e),
                       "seconds": round(time.perf_counter() - start, 1)}
                log(f"bench: {e}")
            row["selftest"] = not args.no_selftest
            record(row)
    log(f"bench: wrote {OUT / 'boards.json'} and boards.md")


if __name__ == "__main__":
    main()
