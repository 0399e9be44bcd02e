"""``clockprop sweep SPACE.toml``: every point of a search space as a Ray task.

    clockprop sweep SPACE.toml [--address ray://host:10001] [--cpus N] [--synth front|all|none]
                               [--retry-failed] [--out DIR]

Two phases, each point a Ray task (:mod:`ray`; a local Ray by default, the cluster at
``--address`` or ``$RAY_ADDRESS`` otherwise):

1. **estimate**: train, quantize, integer accuracy, the resource estimate and the fit check
   for the point's board (``[resources] train_cpus`` per task);
2. **synthesis** of the points on the estimated Pareto front (or all that fit, or none): the
   board top without its self-test, LUT4/FF and fmax from yosys and nextpnr
   (``synth_cpus`` and ``synth_memory_gb`` per task, ``timeout`` seconds each).

The driver writes each result as it arrives to ``<out>/points/<key>.json`` (atomically; the
key hashes the point's full config and board), so an interrupted sweep loses only the points
in flight, and a re-run computes only what is missing. A point that fails (invalid config,
does not fit, toolchain error, timeout) is recorded with its reason; ``--retry-failed``
computes it again. Outputs: ``results.json``, ``results.csv``, ``front.md`` and ``pareto.png``.

Workers of a cluster need clockprop installed and the data files at the same paths.
"""

import csv
import io
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from ..core.errors import ClockpropError
from ..core.fileio import write_atomic
from .sweep import (DEFAULT_BOARD, load_space, pareto_front, point_key, points, resolve,
                    text_key)

__all__ = ["run_sweep", "register"]

REPORTS = Path("reports") / "sweep"


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- the Ray tasks (plain functions; ray.remote wraps them) ---------------------------------

def evaluate_point(base, point, name):
    """Phase 1 of one point: its record and its model file's text (None if it failed)."""
    from ..boards.fit import check_fit
    from ..boards.registry import get_board
    from ..hw.pipeline import hardware_options, layer_mappings
    from ..models.config import from_dict
    from .cli import train_model

    start = time.perf_counter()
    record = {"status": "failed", "reason": None}
    try:
        run = from_dict(base, {**{k: v for k, v in point.items() if k != "board"},
                               "name": name})
        board = get_board(point.get("board", DEFAULT_BOARD))
        model = train_model(run, log=lambda msg: None)
        register_every, fold = hardware_options(model, board=board)
        fit = check_fit(model, board, register_every=register_every, fold=fold, strict=False)
        misfit = (f"does not fit {board.name}: {'; '.join(fit.problems)} (estimate)"
                  if fit.problems else None)
        record.update({
            "status": "failed" if misfit else "done", "reason": misfit,
            "fits": not fit.problems, "shape": model.shape,
            "float_acc": model.meta["float"]["test_acc"],
            "int_acc": model.meta["integer"]["test_acc"],
            "ref_acc": (model.meta["reference"] or {}).get("test_acc"),
            "lut_estimate": fit.need["lut"], "ff_estimate": fit.need["ff"],
            "ebr_estimate": fit.need["ebr"], "register_every": register_every,
            "fold": list(fold), "mappings": layer_mappings(model, fold),
        })
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / "model.json")
            text = (Path(tmp) / "model.json").read_text()
    except ClockpropError as e:
        record["reason"], text = str(e), None
    except Exception as e:                       # recorded, and the sweep goes on
        record["reason"], text = f"{type(e).__name__}: {e}", None
    record["train_seconds"] = round(time.perf_counter() - start, 2)
    return record, text


def synthesize_point(model_text, board_name, register_every, fold, seed, timeout):
    """Phase 2 of one point: the board top's synthesized resources and fmax."""
    from ..boards.build import build
    from ..models.intmodel import IntModel

    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.json"
            path.write_text(model_text)
            model = IntModel.load(path)
            report = build(model, board_name, register_every=register_every, fold=fold,
                           selftest=False, out_dir=Path(tmp) / "build", timeout=timeout,
                           seed=seed)
        res = report["resources"]
        return {"status": "done", "lut": res["lut"]["used"], "ff": res["ff"]["used"],
                "logic_cells": (res.get("logic_cells") or {}).get("used"),
                "ebr": res["ebr"]["used"], "fmax_mhz": report["fmax_mhz"],
                "clock_mhz": report["pll_mhz"], "timing_met": report["timing_met"],
                "seconds": round(time.perf_counter() - start, 1)}
    except ClockpropError as e:
        reason = str(e).split("; see the logs in ")[0]     # the worker's temporary folder
    except Exception as e:
        reason = f"{type(e).__name__}: {e}"
    return {"status": "failed", "reason": reason,
            "seconds": round(time.perf_counter() - start, 1)}


# -- Ray -------------------------------------------------------------------------------------

def _check_reachable(address):
    """Fail in seconds, not after Ray's 30 s client timeout, on a closed host:port."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClockpropError(f"Ray address {address!r} is not host:port or ray://host:port "
                             f"(or 'auto' for the cluster this machine belongs to)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ClockpropError(f"cannot reach the Ray cluster at {address} ({e}); check the "
                             f"address and that the head node is up, or leave --address and "
                             f"RAY_ADDRESS unset for a local Ray") from None


def _connect(address, cpus):
    import logging
    import ray
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ClockpropError(f"cannot start Ray ({address or 'local'}): {e}") from None
    _log(f"sweep: Ray {'at ' + address if address else 'local'}, "
         f"{int(ray.cluster_resources().get('CPU', 0))} CPUs")
    return ray


def _gather(ray, futures, on_result):
    """Wait for ``futures`` (ref -> tag), handing each result to ``on_result`` as it ends."""
    pending = dict(futures)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        tag = pending.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as e:                   # a worker that died (memory, node lost)
            result = e
        on_result(tag, result)


# -- the driver ------------------------------------------------------------------------------

class _Store:
    """The point files of one sweep folder, written atomically as results arrive."""

    def __init__(self, out):
        self.dir = Path(out) / "points"

    def load(self, key):
        try:
            return json.loads((self.dir / f"{key}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save(self, record):
        write_atomic(self.dir / f"{record['key']}.json", json.dumps(record, indent=1) + "\n")

    def save_model(self, key, text):
        write_atomic(self.dir / f"{key}.model.json", text)

    def model_text(self, key):
        return (self.dir / f"{key}.model.json").read_text()


class _Progress:
    """Points done, failed and left: a tqdm bar on a terminal, else one log line a point."""

    def __init__(self, total, desc, initial=0):
        from tqdm import tqdm
        self.total, self.desc, self.n = total, desc, initial
        self.bar = (tqdm(total=total, initial=initial, desc=desc, unit="point",
                         file=sys.stderr, dynamic_ncols=True)
                    if sys.stderr.isatty() else None)

    def step(self, records):
        self.n += 1
        done = sum(r["status"] == "done" for r in records)
        failed = sum(r["status"] == "failed" for r in records)
        left = self.total - self.n
        if self.bar is None:
            _log(f"sweep: {self.desc} {self.n}/{self.total}: {done} done, {failed} failed, "
                 f"{left} left")
        else:
            self.bar.set_postfix(done=done, failed=failed, left=left, refresh=False)
            self.bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def run_sweep(space_path, out=None, *, address=None, cpus=None, synth=None,
              retry_failed=False):
    """Run (or resume) the sweep of ``space_path``; the summary dict (also in results.json)."""
    start = time.perf_counter()
    space = load_space(space_path)
    synth = synth or space.synth
    out = Path(out or REPORTS / space.name)
    store = _Store(out)
    address = address or os.environ.get("RAY_ADDRESS") or None
    cpus = cpus or os.cpu_count()

    records, todo = [], []
    for point in points(space):
        record = _new_record(space, point, store, retry_failed)
        records.append(record)
        if record["status"] == "todo":
            todo.append(record)
    cached = len(records) - len(todo)
    _log(f"sweep {space.name}: {len(records)} points, {cached} cached, {len(todo)} to "
         f"train -> {out}")

    ray = None
    computed = {"estimate": 0, "synthesis": 0}
    if todo:
        ray = _connect(address, cpus)
        computed["estimate"] = _estimate_phase(ray, space, todo, records, store)
    candidates = _synth_candidates(records, synth)
    pending = [r for r in candidates if r.get("synth") is None or
               (retry_failed and r["synth"]["status"] == "failed")]
    if pending:
        ray = ray or _connect(address, cpus)
        computed["synthesis"] = _synth_phase(ray, space, pending, store)
    if ray is not None:
        ray.shutdown()
    summary = {"name": space.name, "space": str(space_path), "sampling": space.sampling,
               "synth": synth, "points": len(records), "cached": cached,
               "computed": computed, "seconds": round(time.perf_counter() - start, 2),
               "front": [r["key"] for r in pareto_front(_fitting(records))],
               "results": records}
    paths = write_outputs(out, summary)
    _log(f"sweep: {sum(r['status'] == 'done' for r in records)} done, "
         f"{sum(r['status'] == 'failed' for r in records)} failed, computed "
         f"{computed['estimate']} estimates and {computed['synthesis']} syntheses in "
         f"{summary['seconds']:.1f} s -> {', '.join(map(str, paths))}")
    return summary


def _new_record(space, point, store, retry_failed):
    """The point's stored record, or a fresh one to compute (``status`` "todo")."""
    try:
        run, board = resolve(space, point)
    except ClockpropError as e:                  # an invalid combination: recorded, not fatal
        key = "invalid-" + text_key(json.dumps(point, sort_keys=True))
        return {"key": key, "point": point, "board": point.get("board", DEFAULT_BOARD),
                "status": "failed", "reason": str(e), "synth": None}
    key = point_key(run, board)
    stored = store.load(key)
    if stored and not (retry_failed and stored["status"] == "failed" and
                       stored.get("phase") == "estimate"):
        stored["point"] = point
        return stored
    return {"key": key, "point": point, "board": board, "status": "todo", "synth": None,
            "pnr_seed": run.hardware.pnr_seed}


def _estimate_phase(ray, space, todo, records, store):
    task = ray.remote(num_cpus=space.resources["train_cpus"])(evaluate_point)
    futures = {task.remote(space.base, r["point"], f"sweep_{r['key'][:10]}"): r for r in todo}
    bar = _Progress(len(records), "estimate", initial=len(records) - len(todo))

    def on_result(r, result):
        if isinstance(result, Exception):
            r.update(status="failed", reason=f"the Ray task died: {result}")
            text = None
        else:
            update, text = result
            r.update(update)
        r["phase"] = "estimate"
        if text is not None:
            store.save_model(r["key"], text)
        store.save(r)
        bar.step(records)

    with bar:
        _gather(ray, futures, on_result)
    return len(todo)


def _fitting(records):
    return [r for r in records if r["status"] == "done" and r.get("fits")]


def _synth_candidates(records, synth):
    if synth == "none":
        return []
    fitting = _fitting(records)
    return fitting if synth == "all" else pareto_front(fitting)


def _synth_phase(ray, space, pending, store):
    r = space.resources
    task = ray.remote(num_cpus=r["synth_cpus"],
                      memory=int(r["synth_memory_gb"] * 2 ** 30))(synthesize_point)
    futures = {task.remote(store.model_text(p["key"]), p["board"], p["register_every"],
                           p["fold"], p.get("pnr_seed", 1), space.timeout): p
               for p in pending}
    bar = _Progress(len(pending), "synthesis")

    def on_result(p, result):
        if isinstance(result, Exception):
            result = {"status": "failed", "reason": f"the Ray task died: {result}"}
        p["synth"] = result
        store.save(p)
        bar.step([q["synth"] for q in pending if q.get("synth")])

    with bar:
        _gather(ray, futures, on_result)
    return len(pending)


# -- outputs ---------------------------------------------------------------------------------

CSV_COLUMNS = ["key", "status", "reason", "board", "point", "float_acc", "int_acc", "ref_acc",
               "lut_estimate", "ff_estimate", "ebr_estimate", "fits", "train_seconds",
               "synth_status", "synth_lut", "synth_ff", "synth_fmax_mhz", "synth_reason"]


def _csv(records):
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in records:
        s = r.get("synth") or {}
        w.writerow({**r, "point": json.dumps(r["point"], sort_keys=True),
                    "synth_status": s.get("status"), "synth_lut": s.get("lut"),
                    "synth_ff": s.get("ff"), "synth_fmax_mhz": s.get("fmax_mhz"),
                    "synth_reason": s.get("reason")})
    return buf.getvalue()


def _pct(x):
    return "" if x is None else f"{100 * x:.2f}%"


def _point_text(r):
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in r["point"].items() if k != "board")


def _markdown(summary):
    records = {r["key"]: r for r in summary["results"]}
    lines = [f"# Sweep {summary['name']}", "",
             f"{summary['points']} points ({summary['sampling']}) from `{summary['space']}`: "
             f"{sum(r['status'] == 'done' for r in records.values())} done, "
             f"{sum(r['status'] == 'failed' for r in records.values())} failed. The front: "
             f"no other point that fits has fewer estimated LUT4 and at least the integer "
             f"accuracy.", "",
             "| point | board | float | integer | LUT4 est. | FF est. | LUT4 synth | FF synth "
             "| fmax MHz |", "|---|---|---|---|---|---|---|---|---|"]
    for key in summary["front"]:
        r = records[key]
        s = r.get("synth") or {}
        point = _point_text(r)
        fmax = (f"{s['fmax_mhz']:.1f}" if s.get("fmax_mhz") else
                "failed, see below" if s.get("status") == "failed" else "")
        lines.append(f"| {point} | {r['board']} | {_pct(r.get('float_acc'))} | "
                     f"{_pct(r.get('int_acc'))} | {r['lut_estimate']} | {r['ff_estimate']} | "
                     f"{s.get('lut', '')} | {s.get('ff', '')} | {fmax} |")
    failed_synth = [r for r in records.values()
                    if (r.get("synth") or {}).get("status") == "failed"]
    if failed_synth:
        lines += ["", "## Failed syntheses", ""]
        lines += [f"- {_point_text(r)}: {r['synth']['reason']}" for r in failed_synth]
    failed = [r for r in records.values() if r["status"] == "failed"]
    if failed:
        lines += ["", "## Failed points", ""]
        lines += [f"- {_point_text(r)}: {r['reason']}" for r in failed]
    return "\n".join(lines) + "\n"


def _plot(summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["results"] if r.get("lut_estimate") is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for fits, style in ((True, dict(c="lightgrey", edgecolors="grey", label="estimate")),
                        (False, dict(c="tab:orange", marker="x", label="does not fit"))):
        part = [r for r in rows if bool(r.get("fits")) == fits]
        if part:
            ax.scatter([r["lut_estimate"] for r in part], [100 * r["int_acc"] for r in part],
                       zorder=2, **style)
    synth = [r for r in rows if (r.get("synth") or {}).get("status") == "done"]
    if synth:
        sc = ax.scatter([r["synth"]["lut"] for r in synth], [100 * r["int_acc"] for r in synth],
                        c=[r["synth"]["fmax_mhz"] or 0 for r in synth], cmap="viridis",
                        marker="s", label="synthesized", zorder=3)
        fig.colorbar(sc, ax=ax, label="fmax (MHz)")
    front = set(summary["front"])
    fr = sorted((r for r in rows if r["key"] in front), key=lambda r: r["lut_estimate"])
    ax.step([r["lut_estimate"] for r in fr], [100 * r["int_acc"] for r in fr], where="post",
            color="tab:red", label="front (estimate)", zorder=1)
    ax.set_xscale("log")
    ax.set_xlabel("LUT4")
    ax.set_ylabel("integer test accuracy (%)")
    ax.set_title(f"sweep {summary['name']}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def write_outputs(out, summary):
    out = Path(out)
    paths = [out / "results.json", out / "results.csv", out / "front.md", out / "pareto.png"]
    write_atomic(paths[0], json.dumps(summary, indent=1) + "\n")
    write_atomic(paths[1], _csv(summary["results"]))
    write_atomic(paths[2], _markdown(summary))
    _plot(summary, paths[3])
    return paths


# -- the parser ------------------------------------------------------------------------------

def cmd_sweep(args):
    if args.cpus is not None and args.cpus < 1:
        raise ClockpropError("--cpus must be at least 1")
    return run_sweep(args.space, args.out, address=args.address, cpus=args.cpus,
                     synth=args.synth, retry_failed=args.retry_failed)


def register(sub):
    sp = sub.add_parser("sweep", help="train and estimate every point of a search space "
                                      "on Ray, synthesize the Pareto front")
    sp.add_argument("space", help="search space TOML file")
    sp.add_argument("--address", help="Ray cluster (ray://host:10001, host:6379 or auto; "
                                      "default $RAY_ADDRESS, else a local Ray)")
    sp.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all)")
    sp.add_argument("--synth", choices=("front", "all", "none"),
                    help="which points to synthesize (default: the space's synth, 'front')")
    sp.add_argument("--retry-failed", action="store_true",
                    help="compute the points that failed before again")
    sp.add_argument("--out", help="results folder (default reports/sweep/<name>/)")
    sp.set_defaults(func=cmd_sweep)
