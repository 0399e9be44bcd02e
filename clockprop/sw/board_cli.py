"""Boards from the command line, and the host API that talks to a board top.

    clockprop boards                                          the supported boards
    clockprop fit       MODEL [--board B]                     resource estimate vs capacity
    clockprop bitstream MODEL --board B [--freq MHZ] [--register-every K] [--fold F,...]
                                                              -> build/<name>/<board>/top.bin|bit
                                                              (a recurrent model file:
                                                              the text generator top,
                                                              [--shift S] [--lfsr-seed N])
    clockprop program   MODEL --board B                       load that bitstream
    clockprop run       MODEL --port PORT [--limit N]         stream the test split, print
                                                              accuracy and throughput
    clockprop selftest  MODEL --port PORT                     the board replays its stored
                                                              test split and reports its count

``--port sim`` runs ``run`` / ``selftest`` against the simulated board top (the same
:class:`BoardClient` code, through :class:`clockprop.sim.top_sim.SimTransport`).
``--register-every`` and ``--fold`` default to the model's ``[hardware]`` config.
"""

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ClockpropError
from .cli import test_split

__all__ = ["BoardClient", "RunResult", "register"]


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- host API ---------------------------------------------------------------------------

@dataclass
class RunResult:
    classes: np.ndarray      # int64 [N]
    logits: np.ndarray       # int64 [N, n_classes]
    seconds: float           # wall time for the whole stream

    @property
    def samples_per_s(self):
        return len(self.classes) / self.seconds if self.seconds else float("nan")


class BoardClient:
    """Classify samples on a board (or the simulated board) running ``model``.

    Parameters
    ----------
    link : clockprop.core.transport.Link
        The framed link (serial port, or :class:`~clockprop.sim.top_sim.SimTransport`).
    model : IntModel
        The model the board was built for: sets the sample and result formats.
    """

    def __init__(self, link, model):
        self.link = link
        self.model = model
        self.logit_bits = model.acc_widths()[-1]

    def ping(self):
        return self.link.ping()

    def classify_one(self, activations):
        from ..core.protocol import FrameType, decode_result, encode_sample
        a = self.model.check_inputs(np.asarray(activations).reshape(1, -1))[0]
        reply = self.link.request(FrameType.SAMPLE, encode_sample(a, self.model.fmt.act_bits),
                                  expect=FrameType.RESULT)
        if len(reply.payload) != _result_size(self.model):
            raise ClockpropError(f"RESULT of {len(reply.payload)} bytes, expected "
                                 f"{_result_size(self.model)}: the board runs another model; "
                                 f"program the bitstream of this one")
        result = decode_result(reply.payload, self.logit_bits, self.model.n_classes)
        return result.cls, np.array(result.logits, dtype=np.int64)

    def classify(self, samples, progress=None):
        """Classes and logits of every row of ``samples``, one request per sample."""
        samples = self.model.check_inputs(samples)
        classes = np.zeros(len(samples), dtype=np.int64)
        logits = np.zeros((len(samples), self.model.n_classes), dtype=np.int64)
        start = time.perf_counter()
        for k, row in enumerate(samples):
            classes[k], logits[k] = self.classify_one(row)
            if progress and ((k + 1) % 50 == 0 or k + 1 == len(samples)):
                progress(k + 1, len(samples))
        return RunResult(classes, logits, time.perf_counter() - start)

    def selftest(self):
        """Have the board replay its stored test split: a :class:`SelfTestResult`."""
        from ..core.protocol import FrameType, SelfTestResult
        reply = self.link.request(FrameType.SELFTEST, b"", expect=FrameType.SELFTEST_RESULT)
        return SelfTestResult.decode(reply.payload)


def _result_size(model):
    return 1 + (model.n_classes * model.acc_widths()[-1] + 7) // 8


# -- command helpers --------------------------------------------------------------------

def _model_path(arg):
    path = Path(arg)
    if path.suffix == ".json" or path.exists():
        return path
    return Path("build") / arg / "model.json"


def _load(arg):
    from ..models.intmodel import IntModel
    return IntModel.load(_model_path(arg))


def _hardware(args, model, board=None):
    from ..boards.registry import get_board
    from ..hw.pipeline import hardware_options
    if board is None and getattr(args, "board", None):
        board = get_board(args.board)
    return hardware_options(model, register_every=getattr(args, "register_every", None),
                            fold=getattr(args, "fold", None), board=board)


def _open_link(args, model, selftest_split=None):
    from ..core.transport import Link, SerialTransport
    if args.port == "sim":
        from ..sim.top_sim import simulated_board
        _log("link: simulated board top (Amaranth simulator, UART model)")
        register_every, fold = _hardware(args, model)
        transport = simulated_board(model, register_every=register_every, fold=fold,
                                    selftest=selftest_split, baud=args.baud)
        # The simulator is slower than the line it models: wall-clock timeouts stretch.
        return Link(transport, timeout=max(args.timeout, 600.0), retries=args.retries)
    transport = SerialTransport(args.port, args.baud, timeout=args.timeout)
    return Link(transport, timeout=args.timeout, retries=args.retries)


def _board_report(model, board):
    if not board:
        return None
    path = _model_path_dir(model) / board / "report.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _model_path_dir(model):
    return Path("build") / model.meta.get("name", "model")


# -- commands ---------------------------------------------------------------------------

def cmd_boards(args):
    from ..boards.registry import BOARDS
    for b in BOARDS.values():
        c = b.capacity
        print(f"{b.name:12s} {b.title}: {c.lut} LUT4, {c.ebr} EBR, {c.dsp} DSP; clock "
              f"{b.target_hz / 1e6:g} MHz; program with {b.programmer}. {b.note}")


def cmd_fit(args):
    from ..boards.build import selftest_split
    from ..boards.registry import BOARDS, get_board
    from ..boards.fit import check_fit
    from ..hw.pipeline import Pipeline

    model = _load(args.model)
    boards = [get_board(args.board)] if args.board else list(BOARDS.values())
    rows = []
    for board in boards:
        register_every, fold = _hardware(args, model, board)
        n = len(selftest_split(model, board, fold=fold)[0]) if args.selftest else 0
        fit = check_fit(model, board, register_every=register_every, fold=fold,
                        selftest_samples=n, strict=bool(args.board))
        rows.append(fit.to_dict() | {"selftest_samples": n})
        need, have = fit.need, fit.available
        print(f"{board.name:12s} {'fits' if fit.fits else 'DOES NOT FIT':12s} "
              f"LUT4 {need['lut']}/{have['lut']}  FF {need['ff']}/{have['ff']}  "
              f"EBR {need['ebr']}/{have['ebr']}  DSP {need['dsp']}/{have['dsp']}  "
              f"self-test samples {n}" + (f"  ({'; '.join(fit.warnings)})"
                                          if fit.warnings else ""))
    for row in Pipeline(model, register_every=register_every, fold=fold).layer_rows():
        bits = f", {row['table_bits']} input bits" if "table_bits" in row else ""
        print(f"layer {row['layer']} ({row['shape'][0]} -> {row['shape'][1]}): "
              f"{row['mapping']}{bits}, {row['lut']} LUT4, {row['ff']} FF (estimate)")
    return rows


def _recurrent_model(arg):
    """The recurrent model file that ``arg`` names (a file, or a name with a
    ``build/<name>/recurrent.json`` and no ``model.json``), or ``None``."""
    from .generate_cli import is_recurrent_file
    path = Path(arg)
    if not path.exists() and not (Path("build") / arg / "model.json").exists():
        path = Path("build") / arg / "recurrent.json"
    return path if is_recurrent_file(path) else None


def cmd_bitstream(args):
    from ..boards.build import build
    from ..hw.pipeline import config_hardware
    recurrent = _recurrent_model(args.model)
    if recurrent is not None:                    # a text generator: the recurrent top
        from .generate_cli import bitstream_recurrent
        return bitstream_recurrent(recurrent, args)
    if args.shift is not None or args.temperature is not None:
        raise ClockpropError("--shift and --temperature apply to recurrent models only")
    model = _load(args.model)
    register_every, fold = _hardware(args, model)
    return build(model, args.board, freq=args.freq * 1e6 if args.freq else None,
                 baud=args.baud, register_every=register_every, fold=fold,
                 selftest=not args.no_selftest, out_dir=args.out, timeout=args.timeout,
                 seed=args.pnr_seed or config_hardware(model).get("pnr_seed", 1))


def cmd_program(args):
    from ..boards.build import program
    from ..boards.registry import get_board
    board = get_board(args.board)
    recurrent = None if args.bitstream else _recurrent_model(args.model)
    if args.bitstream:
        bitstream = Path(args.bitstream)
    elif recurrent is not None:
        from .generate_cli import load_recurrent
        name = load_recurrent(recurrent)[2].get("name", recurrent.parent.name)
        bitstream = Path("build") / name / board.name / (
            "top.bin" if board.family == "ice40" else "top.bit")
    else:
        model = _load(args.model)
        bitstream = _model_path_dir(model) / board.name / (
            "top.bin" if board.family == "ice40" else "top.bit")
    program(board.name, bitstream)
    _log(f"program: {bitstream} loaded into {board.name}")


def _run_samples(args, model):
    """The test split of the model's data, or the samples of ``--data FILE``."""
    if not args.data:
        return test_split(model)
    from ..models.userdata import load_samples
    x, y = load_samples(args.data, model.meta, model.n_inputs)
    return model.fmt.quantize_input(x), y


def cmd_run(args):
    model = _load(args.model)
    a, y = _run_samples(args, model)
    if args.limit:
        a, y = a[:args.limit], y[:args.limit]
    with _open_link(args, model) as link:
        client = BoardClient(link, model)
        _log(f"run: streaming {len(a)} test samples to {link.transport.name}")
        result = client.classify(a, progress=lambda d, t: _log(f"run: {d}/{t} samples"))
        resends = link.resends
    golden = model.predict(a)
    acc = float(np.mean(result.classes == y)) if y is not None else None
    same = int(np.sum(result.classes == golden))
    scored = f"board accuracy {100 * acc:.2f}%" if y is not None else "no labels"
    print(f"{scored} on {len(a)} samples; {same}/{len(a)} classes "
          f"equal to the golden model; {result.samples_per_s:.1f} samples/s over the link "
          f"({resends} resends)")
    if same != len(a):
        raise ClockpropError(f"the board disagrees with the golden model on {len(a) - same} "
                             f"samples: is it programmed with this model's bitstream?")
    return {"accuracy": acc, "samples": len(a), "equal_to_golden": same,
            "samples_per_s": result.samples_per_s, "resends": resends}


def cmd_selftest(args):
    from ..boards.build import selftest_split
    from ..boards.registry import get_board

    model = _load(args.model)
    if args.port == "sim":
        if args.board:
            split = selftest_split(model, get_board(args.board),
                                   fold=_hardware(args, model)[1])
        else:
            split = test_split(model)
        if args.limit:
            split = (split[0][:args.limit], split[1][:args.limit])
    else:
        split = None
    with _open_link(args, model, split) as link:
        result = BoardClient(link, model).selftest()
    report = _board_report(model, args.board)
    line = (f"self-test: {result.correct}/{result.total} correct "
            f"({100 * result.accuracy:.2f}%) in {result.cycles} clocks "
            f"({result.total / result.cycles:.3f} samples per clock)")
    if report and report.get("fmax_mhz"):
        mhz = min(report["fmax_mhz"], report["pll_mhz"])
        line += (f"; at {mhz:.1f} MHz: {result.cycles / mhz:.2f} us, "
                 f"{result.total / result.cycles * mhz:.1f} Msamples/s")
    print(line)
    if split is not None:
        expected = int(np.sum(model.predict(split[0]) == split[1]))
        print(f"golden model: {expected}/{len(split[1])} correct")
        if expected != result.correct or result.total != len(split[1]):
            raise ClockpropError(f"self-test count {result.correct}/{result.total} differs "
                                 f"from the golden model's {expected}/{len(split[1])}")
    return result


# -- the parser -------------------------------------------------------------------------

def register(sub):
    from .cli import hardware_args

    def model_arg(sp, required=True):
        sp.add_argument("model", nargs=None if required else "?", default="digits",
                        help="model file or name (default digits)")

    def board_arg(sp, required):
        sp.add_argument("--board", required=required,
                        help="board name (clockprop boards lists them)")

    def link_args(sp):
        sp.add_argument("--port", required=True,
                        help="serial port (e.g. /dev/ttyUSB1), or 'sim' for the simulator")
        sp.add_argument("--baud", type=int, default=115200)
        sp.add_argument("--timeout", type=float, default=2.0,
                        help="seconds to wait for each answer (default 2)")
        sp.add_argument("--retries", type=int, default=3)
        hardware_args(sp)

    sp = sub.add_parser("boards", help="list the supported boards")
    sp.set_defaults(func=cmd_boards)

    sp = sub.add_parser("fit", help="estimate LUT/FF/EBR/DSP and check a model fits boards")
    model_arg(sp)
    board_arg(sp, required=False)
    hardware_args(sp)
    sp.add_argument("--no-selftest", dest="selftest", action="store_false",
                    help="leave the stored test split out")
    sp.set_defaults(func=cmd_fit)

    sp = sub.add_parser("bitstream", help="build a bitstream of a model for a board")
    model_arg(sp)
    board_arg(sp, required=True)
    sp.add_argument("--freq", type=float, help="pipeline clock in MHz (default: the board's)")
    sp.add_argument("--baud", type=int, default=115200)
    hardware_args(sp)
    sp.add_argument("--no-selftest", action="store_true", help="no test split on chip")
    how = sp.add_mutually_exclusive_group()
    how.add_argument("--shift", type=int, help="recurrent model: sample with this integer "
                                               "temperature shift (default: argmax)")
    how.add_argument("--temperature", type=float,
                     help="recurrent model: sample at this softmax temperature")
    sp.add_argument("--lfsr-seed", type=int, default=0xACE1,
                    help="recurrent model: LFSR seed for sampling")
    sp.add_argument("--streams", type=int, default=None,
                    help="recurrent model: streams interleaved through the core (C-slow; "
                         "default: the board family's for argmax or sampling, "
                         "boards.recurrent_top.RECURRENT_STREAMS)")
    sp.add_argument("--out", help="output folder (default build/<name>/<board>/)")
    sp.add_argument("--timeout", type=float, default=None, help="toolchain time limit, s")
    sp.add_argument("--pnr-seed", type=int, default=None,
                    help="nextpnr's placement seed (fmax moves by a few percent between seeds; "
                         "default: the model's [hardware] pnr_seed, else 1)")
    sp.set_defaults(func=cmd_bitstream)

    sp = sub.add_parser("program", help="load a built bitstream into a board")
    model_arg(sp, required=False)
    board_arg(sp, required=True)
    sp.add_argument("--bitstream", help="bitstream file (default: the model's build)")
    sp.set_defaults(func=cmd_program)

    sp = sub.add_parser("run", help="stream the test split to a board, print accuracy")
    model_arg(sp)
    link_args(sp)
    sp.add_argument("--limit", type=int, default=0, help="only the first N test samples")
    sp.add_argument("--data", metavar="FILE",
                    help="classify the samples of an .npz/.csv file instead (scaled as the "
                         "model's training data; accuracy where the file has labels)")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("selftest", help="have the board replay its stored test split")
    model_arg(sp)
    link_args(sp)
    board_arg(sp, required=False)
    sp.add_argument("--limit", type=int, default=0,
                    help="with --port sim: store only the first N test samples")
    sp.set_defaults(func=cmd_selftest)
