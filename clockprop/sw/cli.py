"""The ``clockprop`` command line: one entry point, one subcommand per step.

    clockprop train  [--config FILE] [--set key=value ...]   -> build/<name>/model.json
    clockprop export MODEL                                    -> gateware/<name>/ (the package)
    clockprop testbench gateware/<name>                       -> runs its testbench
    clockprop sim    MODEL                                    -> build/<name>/sim.json
    clockprop report MODEL                                    -> reports/<name>/report.{md,json}
    clockprop flow   [--config FILE] [--set key=value ...]   -> all four, in order

MODEL is a model file or the name of a trained model (``build/<name>/model.json``).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..core.errors import ClockpropError
from ..core.fileio import write_atomic

__all__ = ["main"]

BUILD = Path("build")
GATEWARE = Path("gateware")
REPORTS = Path("reports")


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _parse_value(text):
    """``--set`` values are TOML values (``4``, ``0.5``, ``true``, ``[32, 16]``, ``"ed"``);
    anything else is taken as a plain string."""
    import tomllib
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _overrides(pairs):
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ClockpropError(f"--set takes key=value (for example train.epochs=20), "
                                 f"got {pair!r}")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _fold(text):
    """``--fold 4,1``: one fold factor per layer."""
    try:
        return [int(f) for f in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fold takes integers separated by commas, "
                                         f"one per layer (for example 4,1), got {text!r}")


def hardware_args(sp):
    """``--register-every`` and ``--fold``; left out, they come from the model's config
    (its ``[hardware]`` table, see :func:`clockprop.hw.pipeline.hardware_options`)."""
    sp.add_argument("--register-every", type=int, default=None, metavar="K",
                    help="pipeline registers every K adder levels (0: one clock per layer; "
                         "default: the model's [hardware] setting, else the board's: 1 on "
                         "ulx3s, else 0)")
    sp.add_argument("--fold", type=_fold, metavar="F,F,...",
                    help="fold factor per layer (default: the model's [hardware] setting, "
                         "else 1: fully parallel)")


def _model_path(arg):
    path = Path(arg)
    if path.suffix == ".json" or path.exists():
        return path
    return BUILD / arg / "model.json"


# -- steps ------------------------------------------------------------------------------

def _train_one(cfg, data, fmt, label, log=_log):
    from ..models.train import train

    def progress(epoch, n_epochs, row):
        if epoch == n_epochs or epoch % max(1, n_epochs // 8) == 0:
            extra = (f"  integer {100 * row['int_test_acc']:.2f}%"
                     if "int_test_acc" in row else "")
            log(f"train [{label}] epoch {epoch:3d}/{n_epochs}  loss {row['loss']:.4f}  "
                 f"train {100 * row['train_acc']:.2f}%  test {100 * row['test_acc']:.2f}%"
                 f"{extra}")

    return train(cfg, data, fmt, progress=progress)


def train_model(run, log=_log):
    """Train, quantize and evaluate :class:`~clockprop.models.config.RunConfig` ``run``: the
    :class:`~clockprop.models.intmodel.IntModel`, its metadata filled in (not saved)."""
    from ..models.datasets import fingerprint, load_dataset
    from ..models.train import to_int_model

    data = load_dataset(run.dataset, run.split_seed, label=run.label, scale=run.scale)
    log(f"data: {data.split}")
    result = _train_one(run.train, data, run.fmt, run.train.rule, log)
    reference = None
    if run.reference:
        ref = _train_one(run.reference, data, run.fmt, f"{run.reference.rule}, reference", log)
        reference = {"rule": run.reference.rule, "config": run.reference.to_dict(),
                     "shape": [data.n_inputs] + [len(b) for b in ref.net.biases],
                     "test_acc": ref.net.accuracy(data.x_test, data.y_test),
                     "device": ref.device, "history": ref.history}
    a_test = run.fmt.quantize_input(data.x_test)
    meta = {
        "name": run.name, "dataset": run.dataset, "split": data.split,
        "split_seed": run.split_seed, "n_classes": data.n_classes, "config": run.to_dict(),
        "data": data.source.to_dict() if data.source else None,
        "data_sha256": fingerprint(data),
        "float": {"train_acc": result.net.accuracy(data.x_train, data.y_train),
                  "test_acc": result.net.accuracy(data.x_test, data.y_test),
                  "device": result.device, "train_seconds": result.seconds,
                  "samples_per_s": result.samples_per_s},
        "history": result.history, "reference": reference,
    }
    model = to_int_model(result.net, run.fmt, meta, calibrate=(data.x_train, data.y_train)
                         if run.train.calibrate else None)
    model.meta["integer"] = {"test_acc": model.accuracy(a_test, data.y_test)}
    return model


def cmd_train(args):
    from ..models.config import load_config

    run = load_config(args.config, _overrides(args.set))
    model = train_model(run)
    out = Path(args.out) if args.out else BUILD / run.name / "model.json"
    model.save(out)
    _log(f"train: float {100 * model.meta['float']['test_acc']:.2f}%, integer "
         f"{100 * model.meta['integer']['test_acc']:.2f}% on the test split -> {out}")
    return out


def cmd_export(args):
    from ..models.intmodel import IntModel
    from ..hw.export import export
    from ..hw.pipeline import hardware_options

    model = IntModel.load(_model_path(args.model))
    name = model.meta.get("name", "model")
    out_dir = Path(args.out) if args.out else GATEWARE / name
    register_every, fold = hardware_options(model, register_every=args.register_every,
                                            fold=args.fold)
    vectors = None
    if args.vectors:
        vectors = test_split(model)[0][:args.vectors]
    paths = export(model, out_dir, name, register_every=register_every, fold=fold,
                   vectors=vectors)
    _log(f"export: {len(paths)} files in {out_dir}: {', '.join(p.name for p in paths)}")


def test_split(model):
    """The quantized test inputs and labels of the data ``model`` was trained on."""
    from ..models.datasets import model_dataset
    data = model_dataset(model.meta)
    return model.fmt.quantize_input(data.x_test), data.y_test


def cmd_sim(args):
    from ..models.intmodel import IntModel
    from ..models.mnist import check_image_size
    from ..hw.pipeline import hardware_options
    from ..sim.run import SIMULATOR_NAMES, choose_backend, simulate

    path = _model_path(args.model)
    model = IntModel.load(path)
    check_image_size(model.n_inputs, model.meta.get("dataset"))
    a, y = test_split(model)
    if args.limit:
        a, y = a[:args.limit], y[:args.limit]
    golden = model.forward(a)
    register_every, fold = hardware_options(model, register_every=args.register_every,
                                            fold=args.fold)
    backend = choose_backend(getattr(args, "backend", "auto"), model, len(a), vcd=args.vcd)
    _log(f"sim: streaming {len(a)} test samples through the gateware "
         f"({SIMULATOR_NAMES[backend]})")
    extra = {"log": lambda msg: _log(f"sim: {msg}")} if backend == "verilator" else {}
    result = simulate(model, a, backend=backend, register_every=register_every,
                      fold=fold, vcd=args.vcd,
                      progress=lambda done, total: _log(f"sim: {done}/{total} samples"),
                      **extra)
    equal = np.all(result.logits == golden, axis=1)
    summary = {
        "simulator": SIMULATOR_NAMES[backend], "backend": backend, "n_samples": int(len(a)),
        "samples_equal": int(equal.sum()),
        "logits_equal": int((result.logits == golden).sum()), "n_logits": int(golden.size),
        "classes_equal": int((result.classes == np.argmax(golden, axis=1)).sum()),
        "test_acc": float(np.mean(result.classes == y)),
        "latency_cycles": result.latency, "samples_per_clock": 1 / max(fold),
        "fold": fold, "cycles": result.cycles,
        "sim_seconds": result.seconds, "sim_cycles_per_s": result.cycles_per_second,
        "register_every": register_every,
        **({"build_seconds": result.build_seconds, "build_cached": result.cached}
           if backend == "verilator" else {}),
        "data_sha256": model.meta.get("data_sha256"),
        "predicted": result.classes.tolist(),
    }
    out = path.parent / "sim.json"
    write_atomic(out, json.dumps(summary) + "\n")
    _log(f"sim: gateware accuracy {100 * summary['test_acc']:.2f}%, "
         f"{summary['samples_equal']}/{len(a)} samples bit-exact with the golden model, "
         f"{result.cycles} clocks in {result.seconds:.1f} s -> {out}")
    if summary["samples_equal"] != len(a):
        raise ClockpropError(f"gateware disagrees with the golden model on "
                             f"{len(a) - summary['samples_equal']} samples; this is a bug, "
                             f"please report it with {path}")
    return summary


def cmd_report(args):
    from ..models.intmodel import IntModel
    from .report import write_report
    from ..hw.arith import csd_count
    from ..hw.pipeline import Pipeline

    path = _model_path(args.model)
    model = IntModel.load(path)
    sim_path = path.parent / "sim.json"
    try:
        sim = json.loads(sim_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        raise ClockpropError(f"{sim_path} is missing or unreadable; run "
                             f"'clockprop sim {args.model}' first") from None
    if sim.get("data_sha256") != model.meta.get("data_sha256"):
        raise ClockpropError(f"{sim_path} was simulated on other data than {path} was trained "
                             f"on (or by another model); run 'clockprop sim {args.model}' "
                             f"again")
    pipeline = Pipeline(model, register_every=sim.get("register_every", 0),
                        fold=sim.get("fold"))
    cost = pipeline.estimate()
    meta = model.meta
    summary = {
        "name": meta["name"], "dataset": meta["dataset"], "split": meta["split"],
        "data": meta.get("data"),
        "n_classes": model.n_classes, "shape": model.shape, "format": model.fmt.to_dict(),
        "fracs": [layer.frac for layer in model.layers], "train": meta["config"]["train"],
        "float": meta["float"], "integer": meta["integer"], "reference": meta["reference"],
        "history": meta["history"],
        "gateware": {k: v for k, v in sim.items() if k != "predicted"},
        "resources": {
            "weights": int(sum(layer.weight.size for layer in model.layers)),
            "nonzero_weights": int(sum(np.count_nonzero(layer.weight)
                                       for layer in model.layers)),
            "csd_terms": int(sum(csd_count(layer.weight) for layer in model.layers
                                 if layer.table is None)),
            "table_entries": int(sum(layer.table.size for layer in model.layers
                                     if layer.table is not None)),
            "lut_estimate": cost.lut, "ff_estimate": cost.ff, "rom_bits": cost.rom_bits,
            "layers": pipeline.layer_rows(),
        },
    }
    _, y = test_split(model)
    if len(sim["predicted"]) != len(y):
        y = y[:len(sim["predicted"])]
    paths = write_report(REPORTS / meta["name"], summary, y, sim["predicted"])
    _log(f"report: {', '.join(map(str, paths))}")
    return summary


def cmd_testbench(args):
    from ..sim.exported import SIMULATORS, run_exported
    for simulator in SIMULATORS if args.simulator == "all" else (args.simulator,):
        line = run_exported(args.folder, simulator)
        _log(f"testbench ({simulator}): {line}")


def cmd_flow(args):
    start = time.perf_counter()
    model = cmd_train(args)
    step = argparse.Namespace(model=str(model), out=None, register_every=None, fold=None,
                              limit=0, vcd=None, vectors=256)
    cmd_export(step)
    cmd_sim(step)
    cmd_report(step)
    _log(f"flow: done in {time.perf_counter() - start:.1f} s; see "
         f"{REPORTS / model.parent.name / 'report.md'}")


# -- the parser -------------------------------------------------------------------------

def _parser():
    p = argparse.ArgumentParser(prog="clockprop", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def training(sp):
        sp.add_argument("--config", help="TOML model config (default: built-in defaults)")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a config value, e.g. train.epochs=20 or "
                             "format.weight_bits=6 (repeatable)")
        sp.add_argument("--out", help="model file to write (default build/<name>/model.json)")

    sp = sub.add_parser("train", help="train a model, quantize it, save the model file")
    training(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("export", help="write the gateware package of a model (Verilog, "
                                       "RTLIL, testbench, README, manifest)")
    sp.add_argument("model", help="model file or name")
    sp.add_argument("--out", help="output folder (default gateware/<name>/)")
    sp.add_argument("--vectors", type=int, default=256, metavar="N",
                    help="test vectors for the testbench: the first N test samples "
                         "(default 256; 0: no testbench)")
    hardware_args(sp)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("sim", help="simulate the gateware over the test split, bit-exactly")
    sp.add_argument("model", help="model file or name")
    sp.add_argument("--limit", type=int, default=0, help="only the first N test samples")
    hardware_args(sp)
    sp.add_argument("--vcd", help="write a waveform file (pysim backend only)")
    sp.add_argument("--backend", choices=("auto", "pysim", "verilator"), default="auto",
                    help="simulator: Amaranth's Python simulator, Verilator (compiled, for "
                         "big designs), or auto (default: Verilator for big jobs when "
                         "installed)")
    sp.set_defaults(func=cmd_sim)

    sp = sub.add_parser("report", help="write reports/<name>/ (Markdown, JSON, PNG)")
    sp.add_argument("model", help="model file or name")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("testbench", help="run an export's self-checking testbench (Icarus "
                                          "Verilog, Verilator)")
    sp.add_argument("folder", help="the export folder (e.g. gateware/digits)")
    sp.add_argument("--simulator", choices=("all", "iverilog", "verilator"), default="all",
                    help="which simulator (default: both)")
    sp.set_defaults(func=cmd_testbench)

    sp = sub.add_parser("flow", help="train, export, sim and report in one go")
    training(sp)
    sp.set_defaults(func=cmd_flow)

    for register in feature_commands():
        register(sub)
    return p


COMMAND_GROUP = "clockprop.commands"


def feature_commands():
    """The ``register(subparsers)`` functions of the ``clockprop.commands`` entry points
    (pyproject.toml), in name order; a missing installation says how to fix it."""
    from importlib.metadata import entry_points
    found = sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name)
    if not found:
        raise SystemExit("clockprop: error: no feature commands are registered; the package's "
                         "metadata is missing: pip install -e . (or make venv)")
    return [e.load() for e in found]


def main(argv=None):
    args = _parser().parse_args(argv)
    for name in ("register_every", "limit", "vectors"):
        if (getattr(args, name, 0) or 0) < 0:
            _log(f"clockprop: error: --{name.replace('_', '-')} must be >= 0")
            return 2
    try:
        args.func(args)
    except ClockpropError as e:
        _log(f"clockprop: error: {e}")
        return 1
    except KeyboardInterrupt:
        _log("clockprop: interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
