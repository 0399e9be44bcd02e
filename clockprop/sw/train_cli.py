"""``clockprop train-onchip``: integer training on the host next to training in the gateware.

    clockprop train-onchip [--dataset digits] [--set key=value ...] [--sim-steps N]
        -> reports/<name>/onchip.{json,md,png}
    clockprop train-onchip --port PORT|sim [--board B] [--stored] [--limit N] [--set ...]
        -> reports/<name>/onchip_board.{json,md}
    clockprop train-onchip --bitstream --board B [--stored] [--limit N] [--set ...]
        -> build/onchip/<board>/top.{bin,bit}, report.{json,md}

Without ``--port``:
The host runs :func:`models.inttrain.train_int`'s sample sequence with the integer trainer; the
Amaranth simulator runs the first ``--sim-steps`` samples of the same sequence through
:class:`hw.update.TrainableNet` in ``--points`` chunks, reading every weight back after each
chunk. The read-back weights must equal the host's (an error otherwise); the report plots the
test accuracy of both along the steps, with the integer trainer's whole run, the LUT/FF
estimate of the unit and its training throughput (clocks per sample; samples/s at ``--clock-mhz``,
an assumed clock, not a measured fmax).

With ``--port``: the training board top (:mod:`clockprop.boards.train_top`, or its simulation
with ``--port sim``) learns from the training split, streamed sample by sample over the link
(``TRAIN``) or, with ``--stored``, from its own copy of the split in block RAM
(``TRAIN_STORED``, one request per epoch); the host's :class:`TrainClient` then reads every
weight back (``READ_WEIGHTS``) and compares it with the integer trainer run on the same
sequence. Any difference is an error that says how many weights differ and where. The config
is the board's on-chip default (:func:`models.inttrain.onchip_config`) with ``--set`` on top.

With ``--bitstream``: that training top, with the same initial weights and (``--stored``) the
same stored split as the host will assume, built for ``--board`` with yosys and nextpnr
(:func:`clockprop.boards.build.build_train`); a top that does not fit is refused first.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..core.errors import ClockpropError

__all__ = ["register", "run_onchip", "run_board", "TrainClient", "compare_weights"]

REPORTS = Path("reports")


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_onchip(cfg, data, sim_steps, points=4, clock_mhz=50.0, progress=_log, serial=False,
               fold=1):
    """Host training, gateware training of the first ``sim_steps`` samples, the comparison.

    ``serial``, ``fold``: the gateware's bit-serial forward pass (:class:`hw.update.TrainableNet`).
    Returns a JSON-ready summary; raises :class:`ClockpropError` when the gateware's weights
    ever differ from the host's.
    """
    from ..hw.update import TrainableNet
    from ..sim.train_sim import train_alongside
    from ..models.inttrain import train_int

    full = train_int(cfg, data)
    host, curve, sim_seconds, sim_cycles = train_alongside(
        cfg, data, sim_steps, points, serial=serial, fold=fold,
        progress=lambda message: progress(f"train-onchip: {message}"))
    sim_steps = curve[-1]["step"]
    unit = TrainableNet(host, serial=serial, fold=fold)
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
        "unit": {"weights": int(unit.n_weights), "serial": bool(serial), "fold": fold,
                 "lut_estimate": cost.lut,
                 "ff_estimate": cost.ff, "clocks_per_sample": unit.interval,
                 "assumed_clock_mhz": clock_mhz,
                 "samples_per_s_at_assumed_clock": clock_mhz * 1e6 / unit.interval},
    }


# -- a training board: host API ---------------------------------------------------------

class TrainClient:
    """Train a training top (or its simulation) and read its weights back.

    Parameters
    ----------
    link : clockprop.core.transport.Link
    trainer : IntTrainer
        The host's model of the board (its shape, format and masks; its weights are not
        touched).
    """

    def __init__(self, link, trainer):
        self.link = link
        self.trainer = trainer
        self.n_weights = len(trainer.flat_weights())

    def _check(self, x, label, lr):
        cfg = self.trainer.cfg
        if not (isinstance(label, (int, np.integer)) and 0 <= label < self.trainer.n_classes):
            raise ClockpropError(f"train-onchip: label {label!r} is out of range: the network "
                                 f"has {self.trainer.n_classes} classes (0.."
                                 f"{self.trainer.n_classes - 1})")
        if not (isinstance(lr, (int, np.integer)) and 0 <= lr <= cfg.anneal):
            raise ClockpropError(f"train-onchip: lr {lr!r} must be in [0, {cfg.anneal}] "
                                 f"(anneal)")
        x = np.asarray(x)
        if (x.shape != (self.trainer.shape[0],) or not np.issubdtype(x.dtype, np.integer) or
                x.min() < 0 or x.max() > self.trainer.fmt.a_max):
            raise ClockpropError(f"train-onchip: a sample is {self.trainer.shape[0]} integer "
                                 f"activations in [0, {self.trainer.fmt.a_max}]")
        return x

    def train(self, x, label, lr=0):
        """One training step on the board: a :class:`~clockprop.core.protocol.TrainAck`."""
        from ..core.protocol import FrameType, TrainAck, encode_train
        x = self._check(x, label, lr)
        reply = self.link.request(FrameType.TRAIN,
                                  encode_train(label, lr, x, self.trainer.fmt.act_bits),
                                  expect=FrameType.TRAIN_ACK)
        return TrainAck.decode(reply.payload)

    def train_stored(self, lr, count):
        """``count`` steps over the split stored on the board: a ``TrainAck``."""
        from ..core.protocol import FrameType, TrainAck, encode_train_stored
        self._check(np.zeros(self.trainer.shape[0], np.int64), 0, lr)
        reply = self.link.request(FrameType.TRAIN_STORED, encode_train_stored(lr, count),
                                  expect=FrameType.TRAIN_ACK)
        return TrainAck.decode(reply.payload)

    def infer(self, x):
        """The board's class and logits for one sample (no update)."""
        from ..core.protocol import FrameType, decode_result, encode_sample
        x = self._check(x, 0, 0)
        reply = self.link.request(FrameType.INFER, encode_sample(x, self.trainer.fmt.act_bits),
                                  expect=FrameType.RESULT)
        result = decode_result(reply.payload, _logit_width(self.trainer),
                               self.trainer.n_classes)
        return result.cls, np.array(result.logits, dtype=np.int64)

    def read_weights(self):
        """Every weight on the board, in :meth:`IntTrainer.flat_weights` order."""
        from ..core.protocol import FrameType, decode_weights
        flat = []
        while len(flat) < self.n_weights:
            reply = self.link.request(FrameType.READ_WEIGHTS, len(flat).to_bytes(2, "little"),
                                      expect=FrameType.WEIGHTS)
            start, chunk = decode_weights(reply.payload)
            if start != len(flat) or not chunk:
                raise ClockpropError(f"READ_WEIGHTS from {len(flat)}: the board answered "
                                     f"{len(chunk)} weights from {start}; is it built for this "
                                     f"network ({self.n_weights} weights)?")
            flat += chunk
        return np.array(flat[:self.n_weights], dtype=np.int64)


def _logit_width(trainer):
    """The width of a logit in ``RESULT`` (as :attr:`hw.update.TrainableNet.logit_width`)."""
    from ..core.qformat import signed_width
    a, w = trainer.fmt.a_max, trainer.cfg.f_max(trainer.n_layers - 1)
    n_last = trainer.shape[-2] + 1
    return signed_width(-a * w * n_last, a * w * n_last)


def compare_weights(host, flat, lfsr=None):
    """Raise :class:`ClockpropError` unless the board's weights ``flat`` (and LFSR state)
    equal the host trainer's; the message counts the differences and names the first few."""
    want = host.flat_weights()
    flat = np.asarray(flat, dtype=np.int64)
    if flat.shape != want.shape:
        raise ClockpropError(f"the board holds {flat.size} weights, the host's network "
                             f"{want.size}: the board was built for another config")
    bad = np.flatnonzero(flat != want)
    if bad.size:
        where = []
        bounds = np.cumsum([0] + [int(m.sum()) for m in host.masks])
        for k in bad[:3]:
            l = int(np.searchsorted(bounds, k, side="right") - 1)
            j, i = np.argwhere(host.masks[l])[k - bounds[l]]
            where.append(f"layer {l} V[{j}, {i}] = {flat[k]} on the board, {want[k]} on the "
                         f"host")
        raise ClockpropError(
            f"{bad.size} of {want.size} weights read back from the board differ from the "
            f"host's integer trainer ({'; '.join(where)}{'; ...' if bad.size > 3 else ''}): "
            f"the board diverged; check that it was built from this config and seed")
    if lfsr is not None and host.cfg.rounding == "lfsr" and lfsr != host.lfsr.state:
        raise ClockpropError(f"the board's rounding LFSR is at {lfsr:#06x}, the host's at "
                             f"{host.lfsr.state:#06x}: the board diverged")


def run_board(cfg, data, link, *, stored=None, limit=0, points=1, progress=_log):
    """Train a training top over ``link`` and check it against the host's integer trainer.

    ``stored``: the board holds this many training samples (``stored_order``) and trains on
    them with one ``TRAIN_STORED`` per epoch; otherwise the samples of
    :func:`models.inttrain.sample_order` go over the link one by one (the first ``limit`` if
    ``limit > 0``). The weights are read back at ``points`` evenly spaced moments and must
    equal the host's each time. Returns a JSON-ready summary.
    """
    from ..boards.train_top import stored_order
    from ..models.inttrain import IntTrainer, lr_schedule, sample_order

    fmt = cfg.fmt
    a_train, a_test = fmt.quantize_input(data.x_train), fmt.quantize_input(data.x_test)
    host = IntTrainer(cfg, data.n_inputs, data.n_classes)
    client = TrainClient(link, host)
    n = len(a_train)
    if stored:
        order = np.tile(stored_order(cfg, n)[:stored], cfg.epochs)
        lrs = np.repeat(lr_schedule(cfg, 1), stored)      # one lr per epoch
        chunk = stored                          # one TRAIN_STORED per epoch
    else:
        order, lrs = sample_order(cfg, n), lr_schedule(cfg, n)
        if limit:
            order, lrs = order[:limit], lrs[:limit]
        chunk = 0
    total = len(order)
    marks = set(np.unique(np.linspace(0, total, points + 1).astype(int))[1:].tolist())
    curve = [{"step": 0, "test_acc": host.accuracy(a_test, data.y_test), "train_correct": 0}]
    start = time.perf_counter()
    done = correct = 0
    ack = None
    while done < total:
        if chunk:
            count = min(chunk, total - done)
            ack = client.train_stored(int(lrs[done]), count)
            pred = host.train_steps(a_train[order[done:done + count]],
                                    data.y_train[order[done:done + count]], lrs[done])
            want = int(np.sum(pred == data.y_train[order[done:done + count]]))
            if ack.correct != want:
                raise ClockpropError(f"the board classified {ack.correct} of {count} stored "
                                     f"samples correctly before their update, the host "
                                     f"{want}: the board diverged")
            done += count
            correct += want
        else:
            k = order[done]
            ack = client.train(a_train[k], int(data.y_train[k]), int(lrs[done]))
            want = host.step(a_train[k], int(data.y_train[k]), int(lrs[done]))
            if ack.cls != want:
                raise ClockpropError(f"training sample {done}: the board predicted class "
                                     f"{ack.cls}, the host's integer trainer {want}: the "
                                     f"board diverged")
            done += 1
            correct += ack.correct
        if ack.steps != host.steps:
            raise ClockpropError(f"the board counts {ack.steps} training steps, the host "
                                 f"{host.steps}: was it trained before? (reload it)")
        if done in marks:
            compare_weights(host, client.read_weights(), ack.lfsr)
            curve.append({"step": done, "test_acc": host.accuracy(a_test, data.y_test),
                          "train_correct": correct})
            progress(f"train-onchip: {done}/{total} samples on {link.transport.name}, "
                     f"every weight equal to the host's; test {100 * curve[-1]['test_acc']:.2f}%")
    seconds = time.perf_counter() - start
    return {"config": cfg.to_dict(), "shape": host.shape, "split": data.split,
            "mode": "stored" if stored else "uart", "steps": int(host.steps),
            "stored_samples": int(stored or 0), "weights": int(client.n_weights),
            "weights_equal": True, "read_backs": len(curve) - 1, "curve": curve,
            "test_acc": curve[-1]["test_acc"], "seconds": seconds,
            "samples_per_s_link": total / max(seconds, 1e-9), "resends": link.resends,
            "transport": link.transport.name}


def write_onchip_report(out_dir, name, summary):
    from ..core.fileio import write_atomic
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


def _config(args):
    """The board's on-chip default config (:func:`models.inttrain.onchip_config`) with ``--set``."""
    import dataclasses

    from .cli import _overrides
    from ..models.inttrain import onchip_config

    board = None
    if args.board:
        from ..boards.registry import get_board
        board = get_board(args.board)
    base = onchip_config(board.family if board else None)
    settings = _overrides(args.set)
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(base)})
    if unknown:
        raise ClockpropError(f"train-onchip: unknown setting {', '.join(unknown)}; settings "
                             f"are the fields of IntTrainConfig: "
                             f"{', '.join(f.name for f in dataclasses.fields(base))}")
    if "hidden" in settings:
        # another depth: per-layer fields that are one value for every layer carry over
        for name in ("frac", "shift", "drop", "fan_in"):
            value = getattr(base, name)
            if name not in settings and len(set(value)) == 1:
                settings[name] = value[0]
    return dataclasses.replace(base, **settings), board


def stored_capacity(cfg, n_in, n_classes, board, n_available):
    """How many training samples a training top on ``board`` keeps in block RAM (all of
    ``n_available`` when no board is named)."""
    if board is None:
        return n_available
    from ..boards.fit import ebr_blocks
    bits = n_in * cfg.act_bits + max(1, (n_classes - 1).bit_length())
    cap = board.capacity
    free = cap.ebr - 2                                  # the frame buffer and some slack
    n = n_available
    while n > 0 and ebr_blocks(n, bits, cap) > free:
        n = n * 3 // 4
    return n


def _open_train_link(args, cfg, data, stored):
    from ..models.inttrain import IntTrainer
    from ..core.transport import Link, SerialTransport
    if args.port == "sim":
        from ..boards.train_top import stored_split
        from ..sim.train_top_sim import simulated_train_board
        trainer = IntTrainer(cfg, data.n_inputs, data.n_classes)
        split = stored_split(cfg, data, stored)
        _log("link: simulated training top (Amaranth simulator, UART model)")
        transport = simulated_train_board(trainer, stored=split, baud=args.baud,
                                          fold=args.fold)
        return Link(transport, timeout=max(args.timeout, 600.0), retries=args.retries)
    transport = SerialTransport(args.port, args.baud, timeout=args.timeout)
    return Link(transport, timeout=args.timeout, retries=args.retries)


def cmd_train_board(args):
    """``train-onchip --port``: train a training top, read back, compare."""
    from ..models.datasets import load_dataset

    cfg, board = _config(args)
    if args.limit < 0 or args.points < 1:
        raise ClockpropError("train-onchip: --limit must be >= 0 and --points >= 1")
    data = load_dataset(args.dataset, args.split_seed)
    stored = 0
    if args.stored:
        stored = stored_capacity(cfg, data.n_inputs, data.n_classes, board, len(data.x_train))
        if args.limit:
            stored = min(stored, args.limit)
        if stored < 1:
            raise ClockpropError(f"train-onchip: {board.name}'s block RAM holds no training "
                                 f"sample of this size; drop --stored")
    with _open_train_link(args, cfg, data, stored) as link:
        summary = run_board(cfg, data, link, stored=stored, limit=args.limit,
                            points=args.points)
    summary["board"] = board.name if board else None
    name = args.name or f"onchip-{args.dataset}"
    out_dir = REPORTS / name
    out_dir.mkdir(parents=True, exist_ok=True)
    from ..core.fileio import write_atomic
    write_atomic(out_dir / "onchip_board.json", json.dumps(summary, indent=1) + "\n")
    print(f"train-onchip: {summary['steps']} training steps on {summary['transport']} "
          f"({summary['mode']}), all {summary['weights']} weights read back equal to the "
          f"host's integer trainer at {summary['read_backs']} points; test accuracy "
          f"{100 * summary['test_acc']:.2f}%; {summary['samples_per_s_link']:.1f} samples/s "
          f"({summary['resends']} resends) -> {out_dir / 'onchip_board.json'}")
    return summary


def cmd_train_bitstream(args):
    """``train-onchip --bitstream``: build the training top of the board's config."""
    from ..boards.build import build_train
    from ..boards.train_top import stored_split
    from ..models.datasets import load_dataset
    from ..models.inttrain import IntTrainer

    cfg, board = _config(args)
    if board is None:
        raise ClockpropError("train-onchip --bitstream needs --board (clockprop boards lists "
                             "them)")
    if args.limit < 0:
        raise ClockpropError("train-onchip: --limit must be >= 0")
    data = load_dataset(args.dataset, args.split_seed)
    n = 0
    if args.stored:
        n = stored_capacity(cfg, data.n_inputs, data.n_classes, board, len(data.x_train))
        n = min(n, args.limit) if args.limit else n
        if n < 1:
            raise ClockpropError(f"train-onchip: {board.name}'s block RAM holds no training "
                                 f"sample of this size; drop --stored")
    split = stored_split(cfg, data, n)
    trainer = IntTrainer(cfg, data.n_inputs, data.n_classes)
    return build_train(trainer, board.name, stored=split, fold=args.fold,
                       freq=args.freq * 1e6 if args.freq else None, baud=args.baud,
                       out_dir=args.out, seed=args.pnr_seed)


def cmd_train_onchip(args):
    from ..models.datasets import load_dataset

    if args.bitstream:
        if args.port:
            raise ClockpropError("train-onchip: --bitstream builds, --port trains: one at a "
                                 "time")
        return cmd_train_bitstream(args)
    if args.port:
        return cmd_train_board(args)
    cfg, _ = _config(args)
    if args.sim_steps < 1 or args.points < 1 or not args.clock_mhz > 0:
        raise ClockpropError("train-onchip: --sim-steps and --points must be >= 1, "
                             "--clock-mhz > 0")
    data = load_dataset(args.dataset, args.split_seed)
    start = time.perf_counter()
    if args.parallel and args.fold != 1:
        raise ClockpropError("train-onchip: --fold needs the bit-serial forward pass; drop "
                             "--parallel")
    summary = run_onchip(cfg, data, args.sim_steps, args.points, args.clock_mhz,
                         serial=not args.parallel, fold=args.fold)
    name = args.name or f"onchip-{args.dataset}"
    paths = write_onchip_report(REPORTS / name, name, summary)
    _log(f"train-onchip: integer test accuracy {100 * summary['software']['test_acc']:.2f}%, "
         f"{summary['gateware']['steps']} gateware steps bit-exact; "
         f"{time.perf_counter() - start:.0f} s -> {', '.join(map(str, paths))}")


def register(sub):
    sp = sub.add_parser("train-onchip", help="integer training on the host and in simulated "
                                             "gateware, or on a training board top; compare "
                                             "the weights; write a report")
    sp.add_argument("--dataset", default="digits")
    sp.add_argument("--split-seed", type=int, default=0)
    sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="an IntTrainConfig field, e.g. rule=\"ed\" or shift=8 (repeatable), "
                         "on top of the on-chip default config")
    sp.add_argument("--sim-steps", type=int, default=200,
                    help="training samples run in the gateware simulator (default 200)")
    sp.add_argument("--points", type=int, default=None,
                    help="weight read-backs (default 4; 1 with --port)")
    sp.add_argument("--clock-mhz", type=float, default=50.0,
                    help="assumed clock for the throughput figure (default 50)")
    sp.add_argument("--parallel", action="store_true",
                    help="without --port: the parallel forward pass (one clock per layer, "
                         "several times the logic) instead of the bit-serial one")
    sp.add_argument("--serial", action="store_true", help=argparse.SUPPRESS)   # the default
    sp.add_argument("--fold", type=int, default=None,
                    help="bit-serial fold: each bit plane over F clocks, 1/F of the forward "
                         "adders (default 2, the on-chip default; 1 for an iCE40 --board)")
    sp.add_argument("--name", help="report name (default onchip-<dataset>)")
    sp.add_argument("--port", help="train a training board top on this serial port, or 'sim' "
                                   "for its simulation, instead of the pysim comparison")
    sp.add_argument("--board", help="the board (its default on-chip config and block RAM); "
                                    "clockprop boards lists them")
    sp.add_argument("--stored", action="store_true",
                    help="with --port: train from the split stored on chip (TRAIN_STORED, "
                         "one request per epoch) instead of streaming samples")
    sp.add_argument("--limit", type=int, default=0,
                    help="with --port: only the first N samples of the training sequence "
                         "(with --stored: store at most N samples)")
    sp.add_argument("--baud", type=int, default=115200)
    sp.add_argument("--timeout", type=float, default=2.0,
                    help="seconds to wait for each answer (default 2)")
    sp.add_argument("--retries", type=int, default=3)
    sp.add_argument("--bitstream", action="store_true",
                    help="build the training top's bitstream for --board instead of training")
    sp.add_argument("--freq", type=float, default=None,
                    help="with --bitstream: the clock in MHz (default 20)")
    sp.add_argument("--pnr-seed", type=int, default=1,
                    help="with --bitstream: nextpnr's placement seed")
    sp.add_argument("--out", help="with --bitstream: output folder (default "
                                  "build/onchip/<board>/)")
    sp.set_defaults(func=_dispatch)


def _dispatch(args):
    from ..boards.registry import get_board
    from ..models.inttrain import onchip_fold
    if args.points is None:
        args.points = 1 if args.port else 4
    if args.fold is None:
        family = get_board(args.board).family if args.board else None
        args.fold = 1 if args.parallel else onchip_fold(family)
    return cmd_train_onchip(args)
