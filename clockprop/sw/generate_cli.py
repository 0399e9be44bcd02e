"""``clockprop generate``: train (or load) a recurrent character model and generate text.

    clockprop generate [--corpus iyoshi|prose|FILE] [--cell elman|reservoir|sioconv]
                       [--no-context] [--prompt TEXT ...] [-n N] [--temperature T | --shift S]
                       [--backend software|sim] [--board NAME] [--model FILE]
                       [--port sim|/dev/ttyUSB1] [--lfsr-seed S]

Training writes ``build/<name>/recurrent.json`` (the integer model, versioned, with a
checksum) and ``reports/<name>/`` (``report.md``, ``report.json`` and ``loss.png``: the loss
curves of the run and of the same run with the context forced to zero, the ablation). The
generated text goes to standard output; progress to standard error.

``--port`` generates on a board running the recurrent top (``clockprop bitstream
build/<name>/recurrent.json --board B``), or with ``--port sim`` on its simulation
(:mod:`clockprop.sim.recurrent_top_sim`), through the same :class:`BoardGenerator`; the text
must equal the golden model's, character for character.
"""

import json
import sys
from pathlib import Path

import numpy as np

from ..core.document import load_document, save_document
from ..core.errors import ClockpropError
from ..core.fileio import write_atomic

__all__ = ["register", "cmd_generate", "save_recurrent", "load_recurrent", "load_corpus",
           "is_recurrent_file", "BoardGenerator", "check_board_text", "bitstream_recurrent",
           "RECURRENT_FORMAT", "RECURRENT_VERSION"]

BUILD = Path("build")
REPORTS = Path("reports")
RECURRENT_FORMAT = "clockprop-recurrent"
RECURRENT_VERSION = 1


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- corpus ------------------------------------------------------------------------------------


def load_corpus(spec):
    """``(name, text)`` for ``"iyoshi"``, ``"prose"`` or the path of a UTF-8 text file."""
    from ..models.text import iyoshi_corpus, prose_corpus
    if spec == "iyoshi":
        return "iyoshi", iyoshi_corpus()
    if spec == "prose":
        return "prose", prose_corpus()
    path = Path(spec)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ClockpropError(f"corpus {spec!r} is neither 'iyoshi', 'prose' nor an existing "
                             f"file") from None
    except OSError as e:
        raise ClockpropError(f"cannot read corpus {path}: {e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ClockpropError(f"corpus {path} is not valid UTF-8 ({e})") from None
    if len(text) < 2:
        raise ClockpropError(f"corpus {path} is {'empty' if not text else 'one character'}; "
                             f"give a text with at least two characters")
    if len(set(text)) < 2:
        raise ClockpropError(f"corpus {path} uses a single character; a model needs at least "
                             f"two different characters to choose from")
    return path.stem, text


# -- the model file ----------------------------------------------------------------------------


def save_recurrent(path, model, vocab, meta):
    """Write an integer recurrent model, its vocabulary and ``meta`` as one checked file."""
    from ..models.recurrent import IntSioConv
    arrays = {"b": model.b, "w_out": model.w_out, "b_out": model.b_out}
    if isinstance(model, IntSioConv):
        arrays.update(w_in=model.w_in, shifts=model.shifts)
        scalars = {"cell": "sioconv", "state_frac": model.state_frac}
    else:
        arrays.update(w=model.w)
        scalars = {"cell": meta.get("cell", "elman")}
    save_document(path, RECURRENT_FORMAT, RECURRENT_VERSION, {
        "qformat": model.fmt.to_dict(), "vocab": "".join(vocab.chars),
        "frac": model.frac, "frac_out": model.frac_out, "context": model.context,
        **scalars, **{k: np.asarray(v).tolist() for k, v in arrays.items()},
        "meta": meta,
    })


def load_recurrent(path):
    """``(model, vocab, meta)`` from a file written by :func:`save_recurrent`."""
    from ..core.qformat import QFormat
    from ..models.recurrent import IntElman, IntSioConv
    from ..models.text import Vocab
    content = load_document(path, RECURRENT_FORMAT, RECURRENT_VERSION,
                            "recurrent model file", "train it again with 'clockprop generate'")
    try:
        fmt = QFormat(**content["qformat"])
        vocab = Vocab(tuple(content["vocab"]))

        def arr(key):
            return np.array(content[key], dtype=np.int64)

        common = dict(fmt=fmt, b=arr("b"), frac=content["frac"], w_out=arr("w_out"),
                      b_out=arr("b_out"), frac_out=content["frac_out"],
                      context=bool(content["context"]))
        if content["cell"] == "sioconv":
            model = IntSioConv(w_in=arr("w_in"), shifts=arr("shifts"),
                               state_frac=content["state_frac"], **common)
        else:
            model = IntElman(w=arr("w"), **common)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ClockpropError(f"recurrent model file {path} is malformed: {e}") from None
    if len(vocab) != model.n_vocab:
        raise ClockpropError(f"recurrent model file {path} is malformed: {len(vocab)} "
                             f"characters for a model of {model.n_vocab}")
    return model, vocab, content.get("meta", {})


def is_recurrent_file(path):
    """Whether ``path`` is a recurrent model file (by its ``format``; no checks beyond)."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(content, dict) and content.get("format") == RECURRENT_FORMAT


# -- on a board --------------------------------------------------------------------------------

# What to do about each error a recurrent board top answers a GENERATE request with.
_BOARD_HINTS = {
    "MODE": "the bitstream was built for another output stage or number of streams; use "
            "the --shift (or --temperature), --lfsr-seed and --streams it was built with "
            "(see its report.json), or rebuild it with 'clockprop bitstream'",
    "BAD_TOKEN": "the board runs a model with a smaller vocabulary; program the bitstream "
                 "of this model",
    "TOO_LONG": "ask for fewer characters with -n",
    "LENGTH": "the prompt is empty or longer than the board takes",
}


class BoardGenerator:
    """Generate text on a board (or the simulated board) running the recurrent top.

    Parameters
    ----------
    link : clockprop.core.transport.Link
        The framed link (serial port, or :class:`~clockprop.sim.top_sim.SimTransport`).
    model, vocab :
        The model the board was built for and its vocabulary.
    max_prompt, max_chars : int
        The board's buffers (:mod:`clockprop.boards.recurrent_top` defaults).
    streams : int
        The streams of the board's core: more than one takes :meth:`generate_streams`.
    """

    def __init__(self, link, model, vocab, *, max_prompt=None, max_chars=None, streams=1):
        from ..boards.recurrent_top import MAX_CHARS, MAX_PROMPT
        self.link = link
        self.model = model
        self.vocab = vocab
        self.max_prompt = max_prompt or MAX_PROMPT
        self.max_chars = max_chars or MAX_CHARS
        self.streams = streams

    def generate(self, prompt, n, shift=None, seed=0xACE1):
        """Send one ``GENERATE`` request; return the board's :class:`TextReply`.

        The prompt and ``n`` are checked here first, so that a bad request fails with a
        message rather than an error code from the board.
        """
        from ..core.protocol import GenerateRequest, TextReply
        from ..models.recurrent import prompt_ids
        ids = prompt_ids(self.model, self.vocab, prompt, n)
        if len(ids) > self.max_prompt:
            raise ClockpropError(f"the prompt has {len(ids)} characters; the board takes at "
                                 f"most {self.max_prompt}")
        self._check_length_and_seed(n, shift, seed, "request")
        if self.streams > 1:
            return self.generate_streams([prompt], n, shift, seed)[1]
        request = GenerateRequest(tuple(int(i) for i in ids), n, shift, seed)
        return TextReply.decode(self._request(request.encode()))

    def _check_length_and_seed(self, n, shift, seed, per):
        """Refuse ``n`` characters over the board's buffer (``per`` request, or stream and
        request) and, when sampling, a seed the LFSR cannot take."""
        from ..core.lfsr import Lfsr16
        if n > self.max_chars:
            raise ClockpropError(f"the board generates at most {self.max_chars} characters "
                                 f"per {per} (its buffer), asked for {n}; ask for fewer "
                                 f"with -n")
        if shift is not None:
            Lfsr16(seed)                                # the seed's own check

    def generate_streams(self, prompts, n, shift=None, seed=0xACE1):
        """One ``GENERATE`` request with one prompt per stream (at most ``streams``), ``n``
        characters each; returns ``(texts, reply)``: the texts of the streams, in the order
        of ``prompts``, and the board's :class:`TextReply` (all texts one after the other).
        """
        from ..core.protocol import GenerateStreamsRequest, TextReply
        from ..models.recurrent import prompt_ids
        prompts = list(prompts)
        if not 1 <= len(prompts) <= self.streams:
            raise ClockpropError(f"{len(prompts)} prompts for a board of {self.streams} "
                                 f"stream{'s' * (self.streams > 1)}: give 1 to "
                                 f"{self.streams} prompts (one per stream), or build the "
                                 f"bitstream with more --streams")
        if self.streams == 1:
            reply = self.generate(prompts[0], n, shift, seed)
            return [reply.text], reply
        ids = [prompt_ids(self.model, self.vocab, p, n) for p in prompts]
        size = sum(len(p) + 1 for p in ids)
        if size > self.max_prompt or max(map(len, ids)) > 0xFF:
            raise ClockpropError(f"the prompts take {size} bytes (each its characters and a "
                                 f"length); the board takes at most {self.max_prompt}, 255 "
                                 f"characters per prompt")
        self._check_length_and_seed(n, shift, seed, "stream and request")
        request = GenerateStreamsRequest(tuple(tuple(int(i) for i in p) for p in ids), n,
                                         shift, seed)
        reply = TextReply.decode(self._request(request.encode()))
        if len(reply.text) != n * len(prompts):
            raise ClockpropError(f"the board sent {len(reply.text)} characters for "
                                 f"{len(prompts)} streams of {n}")
        return [reply.text[k * n:(k + 1) * n] for k in range(len(prompts))], reply

    def _request(self, payload):
        """The ``TEXT`` answer's payload to ``GENERATE`` ``payload``; board errors explained."""
        from ..core.protocol import FrameType
        try:
            return self.link.request(FrameType.GENERATE, payload,
                                     expect=FrameType.TEXT).payload
        except ClockpropError as error:
            hint = next((h for code, h in _BOARD_HINTS.items()
                         if str(error).endswith(f"error: {code}")), None)
            if hint is None:
                raise
            raise ClockpropError(f"{error}: {hint}") from None


def check_board_text(text, golden):
    """Raise :class:`ClockpropError` unless the board's ``text`` is the golden model's."""
    if text == golden:
        return
    k = next((i for i, (a, b) in enumerate(zip(text, golden)) if a != b),
             min(len(text), len(golden)))
    raise ClockpropError(f"the board's text differs from the golden model's at character "
                         f"{k} (board {text[k:k + 8]!r}, golden {golden[k:k + 8]!r}; "
                         f"{len(text)} vs {len(golden)} characters): is the board programmed "
                         f"with this model's bitstream, built with the same --shift and "
                         f"--lfsr-seed?")


def _board_link(args, model, vocab):
    from ..boards.recurrent_top import MAX_CHARS
    from ..core.protocol import TextReply
    from ..core.transport import Link, SerialTransport
    longest = TextReply.HEADER + 4 * MAX_CHARS          # the longest answer: TEXT
    if args.port == "sim":
        from ..sim.recurrent_top_sim import simulated_recurrent_board
        _log("generate: simulated recurrent board top (Amaranth simulator, UART model)")
        transport = simulated_recurrent_board(model, vocab, shift=args.shift_value,
                                              seed=args.lfsr_seed, baud=args.baud,
                                              streams=args.streams or 1)
        # The simulator is slower than the line it models: wall-clock timeouts stretch.
        return Link(transport, timeout=max(args.timeout, 600.0), retries=args.retries,
                    max_payload=longest)
    transport = SerialTransport(args.port, args.baud, timeout=args.timeout)
    return Link(transport, timeout=args.timeout, retries=args.retries,
                max_payload=longest)


def _generate_on_board(args, model, vocab, prompts, goldens, name):
    """``--port``: the texts from the board, one per prompt (several prompts go to the
    core's streams in one request), and their summary (compared with ``goldens``)."""
    report = BUILD / name / (args.board or "-") / "report.json"
    if args.streams is None and args.board and report.exists():
        try:
            args.streams = json.loads(report.read_text()).get("streams")
        except json.JSONDecodeError:
            pass
    with _board_link(args, model, vocab) as link:
        board = BoardGenerator(link, model, vocab, streams=args.streams or 1)
        if len(prompts) == 1:
            reply = board.generate(prompts[0], args.n, shift=args.shift_value,
                                   seed=args.lfsr_seed)
            texts = [reply.text]
        else:
            texts, reply = board.generate_streams(prompts, args.n, shift=args.shift_value,
                                                  seed=args.lfsr_seed)
        resends = link.resends
    summary = {"port": args.port, "text_equal": texts == goldens,
               "golden_text": goldens[0] if len(goldens) == 1 else goldens,
               "prime_cycles": reply.prime_cycles, "gen_cycles": reply.gen_cycles,
               "chars_per_clock": reply.chars_per_clock if args.n else None,
               "resends": resends}
    prompt_chars = sum(len(p) for p in prompts)
    what = "prompt" if len(prompts) == 1 else f"{len(prompts)} prompts"
    line = (f"generate: board: {what} of {prompt_chars} characters in {reply.prime_cycles} "
            f"clocks, {len(reply.text)} characters in {reply.gen_cycles} clocks")
    if args.n:
        line += f" ({reply.chars_per_clock:.3f} per clock)"
    if args.board and args.n and report.exists():
        try:
            built = json.loads(report.read_text())
        except json.JSONDecodeError:
            built = {}
        fmax = built.get("fmax_mhz")
        if fmax and built.get("kind") == "recurrent" and built.get("shift") == args.shift_value:
            summary["chars_per_s_at_fmax"] = reply.chars_per_clock * fmax * 1e6
            line += (f"; at the build's fmax {fmax:.1f} MHz: "
                     f"{fmax * reply.chars_per_clock:.1f} M characters/s")
    if (args.streams or 1) > len(prompts):
        line += (f"; the board's core has {args.streams} streams, these prompts took "
                 f"{len(prompts)}")
    _log(line)
    return texts, summary


def bitstream_recurrent(path, args):
    """``clockprop bitstream <recurrent model file> --board B``: build the recurrent top."""
    from ..boards.recurrent_top import build_recurrent
    from ..core.lfsr import Lfsr16
    from ..models.recurrent import temperature_shift
    model, vocab, meta = load_recurrent(path)
    shift = getattr(args, "shift", None)
    if getattr(args, "temperature", None) is not None:
        shift = temperature_shift(model, args.temperature)
    if shift is not None and not 0 <= shift <= 62:
        raise ClockpropError(f"--shift must be in [0, 62], got {shift}")
    seed = getattr(args, "lfsr_seed", None) or 0xACE1
    if shift is not None:
        Lfsr16(seed)
    return build_recurrent(model, vocab, args.board, shift=shift, seed=seed,
                           freq=args.freq * 1e6 if args.freq else None, baud=args.baud,
                           out_dir=args.out, timeout=args.timeout, pnr_seed=args.pnr_seed or 1,
                           name=meta.get("name", Path(path).parent.name),
                           streams=getattr(args, "streams", None))


# -- training and the report -------------------------------------------------------------------


def _train_pair(text, vocab, args):
    """Train the model and its ablation (context forced to zero); measure both."""
    from ..core.qformat import QFormat
    from ..models.recurrent import (RecurrentConfig, accuracy, bits_per_char, quantize_recurrent,
                            train_recurrent)
    from ..models.text import determined_positions

    ids = vocab.encode(text, "corpus")
    det = determined_positions(text, 2)
    hidden = args.hidden or (8 if len(vocab) <= 4 else 32)
    fmt = QFormat(act_bits=args.act_bits, weight_bits=args.weight_bits)
    runs = {}
    for label, context in (("context", True), ("no_context", False)):
        cfg = RecurrentConfig(cell=args.cell, hidden=hidden, context=context,
                              epochs=args.epochs, seed=args.seed)
        every = max(1, cfg.epochs // 5)

        def progress(epoch, loss, label=label):
            if (epoch + 1) % every == 0 or epoch + 1 == cfg.epochs:
                _log(f"generate: train [{args.cell}, {label.replace('_', ' ')}] epoch "
                     f"{epoch + 1:3d}/{cfg.epochs}  loss {loss:.4f} bits/char")

        result = train_recurrent(ids, len(vocab), cfg, progress=progress)
        q = quantize_recurrent(result.net, fmt)
        runs[label] = {
            "model": q,
            "summary": {
                "context": context, "hidden": hidden, "curve": result.curve,
                "train_seconds": result.seconds,
                "float": {"det_acc": accuracy(result.net, ids, det),
                          "acc": accuracy(result.net, ids),
                          "bpc": bits_per_char(result.net, ids)},
                "integer": {"det_acc": accuracy(q, ids, det), "acc": accuracy(q, ids),
                            "bpc": bits_per_char(q, ids)},
            },
        }
    return runs, int(det.sum()), hidden


def _loss_png(name, runs):
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, style in (("context", "-"), ("no_context", "--")):
        curve = runs[label]["curve"]
        ax.plot(range(1, len(curve) + 1), curve, style,
                label="context fed back" if label == "context" else "context forced to zero")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (bits per character)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{name}: the context ablation")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pct(x):
    return "n/a" if x is None or x != x else f"{100 * x:.2f}%"


def _markdown(s):
    c, z = s["runs"]["context"], s["runs"]["no_context"]
    lines = [
        f"# clockprop recurrent report: {s['name']}",
        "",
        f"- corpus: {s['corpus']} ({s['n_chars']} characters, vocabulary of "
        f"{s['n_vocab']}: `{s['vocab']}`)",
        f"- cell: `{s['cell']}`, {s['hidden']} hidden channels, "
        f"{s['format']['act_bits']}-bit activations, {s['format']['weight_bits']}-bit weights",
        f"- positions whose next character the last two characters determine: "
        f"{s['n_determined']}",
        "",
        "| | context fed back | context forced to zero |",
        "|---|---|---|",
        f"| final training loss (bits/char) | {c['curve'][-1]:.4f} | {z['curve'][-1]:.4f} |",
        f"| float accuracy, determined positions | {_pct(c['float']['det_acc'])} | "
        f"{_pct(z['float']['det_acc'])} |",
        f"| integer accuracy, determined positions | {_pct(c['integer']['det_acc'])} | "
        f"{_pct(z['integer']['det_acc'])} |",
        f"| float accuracy, all positions | {_pct(c['float']['acc'])} | "
        f"{_pct(z['float']['acc'])} |",
        f"| float bits per character | {c['float']['bpc']:.4f} | {z['float']['bpc']:.4f} |",
        f"| integer bits per character | {c['integer']['bpc']:.4f} | "
        f"{z['integer']['bpc']:.4f} |",
        "",
        "![loss curves](loss.png)",
        "",
    ]
    g = s.get("generation")
    if g:
        lines += [
            "## Generation",
            "",
            f"- backend: {g['backend']}, {g['mode']}",
            f"- prompt: `{g['prompt']}`",
            f"- generated ({len(g['text'])} characters): `{g['text']}`",
        ]
        if "gateware" in g:
            gw = g["gateware"]
            lines += [
                f"- gateware text equals the golden model's: {gw['text_equal']}",
                f"- gateware: {gw['chars_per_clock']:.3f} characters per clock once primed, "
                f"first character {gw['latency_cycles']} clock after the prompt; about "
                f"{gw['lut_estimate']} LUT4 and {gw['ff_estimate']} FF (estimate)",
            ]
        lines.append("")
    return "\n".join(lines) + "\n"


def _write_report(name, summary, runs):
    out = REPORTS / name
    paths = [out / "report.json", out / "report.md", out / "loss.png"]
    write_atomic(paths[0], json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    write_atomic(paths[1], _markdown(summary))
    write_atomic(paths[2], _loss_png(name, runs))
    return paths


# -- the command -------------------------------------------------------------------------------


def _board_check(args, model=None):
    """With ``--board``: the vocabulary (and, given a model, the core's size) must fit."""
    if not args.board:
        return
    from ..boards.registry import get_board
    from ..hw.recurrent import MAX_VOCAB, check_core
    board = get_board(args.board)
    if model is None:
        return board
    where = f" on {board.name} ({board.capacity.device})"
    check_core(model, max_vocab=MAX_VOCAB, where=where)
    from ..hw.recurrent import RecurrentCore
    cost = RecurrentCore(model, shift=args.shift_value).estimate()
    check_core(model, lut_budget=board.capacity.lut, cost=cost, where=where)
    from ..boards.recurrent_top import check_recurrent_fit
    need, avail = check_recurrent_fit(model, board, shift=args.shift_value,
                                      streams=getattr(args, "streams", None) or 1)
    _log(f"generate: the board top needs about {need['lut']} of {avail['lut']} LUT4 and "
         f"{need['ebr']} of {avail['ebr']} block RAMs on {board.name} (the core "
         f"{cost.lut} LUT4)")
    return board


def cmd_generate(args):
    from ..models.recurrent import generate, temperature_shift
    from ..models.text import Vocab

    if args.n < 0:
        raise ClockpropError(f"-n must be >= 0, got {args.n}")
    if args.board:
        _board_check(args)                          # an unknown board fails before training
    if args.port and args.port != "sim":            # a missing port fails before training
        from ..core.transport import SerialTransport
        SerialTransport(args.port, args.baud, timeout=args.timeout).close()
    summary = None
    if args.model:
        model, vocab, meta = load_recurrent(args.model)
        name = meta.get("name", Path(args.model).parent.name)
        _log(f"generate: loaded {args.model} ({meta.get('cell', '?')}, {model.n_vocab} "
             f"characters, {model.n_hidden} channels)")
    else:
        corpus_name, text = load_corpus(args.corpus)
        vocab = Vocab.from_text(text)
        if args.board:
            from ..hw.recurrent import MAX_VOCAB
            if len(vocab) > MAX_VOCAB:
                raise ClockpropError(f"the corpus has {len(vocab)} distinct characters; the "
                                     f"recurrent core on {args.board} takes at most "
                                     f"{MAX_VOCAB}: use a text with fewer distinct characters")
        name = args.name or f"{corpus_name}-{args.cell}"
        runs, n_det, hidden = _train_pair(text, vocab, args)
        chosen = "no_context" if args.no_context else "context"
        model = runs[chosen]["model"]
        meta = {"name": name, "cell": args.cell, "corpus": args.corpus,
                **{k: v for k, v in runs[chosen]["summary"].items() if k != "curve"}}
        path = BUILD / name / "recurrent.json"
        save_recurrent(path, model, vocab, meta)
        summary = {
            "name": name, "corpus": args.corpus, "n_chars": len(text), "n_vocab": len(vocab),
            "vocab": "".join(vocab.chars), "cell": args.cell, "hidden": hidden,
            "format": model.fmt.to_dict(), "n_determined": n_det, "model_file": str(path),
            "generated_with": chosen,
            "runs": {k: r["summary"] for k, r in runs.items()},
        }
        for label, r in summary["runs"].items():
            _log(f"generate: {label.replace('_', ' ')}: accuracy on determined positions "
                 f"float {_pct(r['float']['det_acc'])}, integer {_pct(r['integer']['det_acc'])}"
                 f"; bits/char float {r['float']['bpc']:.4f}, integer "
                 f"{r['integer']['bpc']:.4f}")
        _log(f"generate: integer model ({chosen.replace('_', ' ')}) -> {path}")

    prompts = args.prompt or [vocab.chars[0]]
    for prompt in prompts:
        if not prompt:
            raise ClockpropError("the prompt is empty; give at least one character to start "
                                 "from")
        vocab.encode(prompt, "prompt")              # a clear error before any simulation
    if args.vcd and len(prompts) > 1:
        raise ClockpropError("--vcd writes the waveform of one simulation: give one --prompt")
    if args.temperature is not None:
        args.shift_value = temperature_shift(model, args.temperature)
    else:
        args.shift_value = args.shift
    if args.shift_value is not None and not 0 <= args.shift_value <= 62:
        raise ClockpropError(f"--shift must be in [0, 62], got {args.shift_value}")
    mode = ("argmax" if args.shift_value is None
            else f"sampling, temperature shift {args.shift_value}, LFSR seed {args.lfsr_seed}")
    _board_check(args, model)

    goldens = [generate(model, vocab, p, args.n, shift=args.shift_value, seed=args.lfsr_seed)
               for p in prompts]
    generation = {"backend": args.backend, "mode": mode, "prompt": prompts[0],
                  "text": goldens[0]}
    if len(prompts) > 1:
        generation.update(prompts=prompts, texts=goldens)
    texts = goldens
    if args.backend == "sim":
        texts, gateware = zip(*(_simulate(args, model, vocab, p, g)
                                for p, g in zip(prompts, goldens)))
        texts = list(texts)
        generation["text"] = texts[0]
        generation["gateware"] = gateware[0] if len(prompts) == 1 else list(gateware)
    board_texts = None
    if args.port:
        board_texts, generation["board"] = _generate_on_board(args, model, vocab, prompts,
                                                              goldens, name)
        _log(f"generate: board text {'equals' if board_texts == goldens else 'DIFFERS FROM'} "
             f"the golden model's")
    if summary is not None:
        summary["generation"] = generation
        paths = _write_report(name, summary, summary["runs"])
        _log(f"generate: report {', '.join(map(str, paths))}")
    for prompt, text in zip(prompts, board_texts or texts):
        print(prompt + text, flush=True)
    for text, golden in zip(board_texts or (), goldens):
        check_board_text(text, golden)
    if texts != goldens:
        raise ClockpropError("the simulated gateware disagrees with the golden model; this "
                             "is a bug, please report it with the model file")
    return generation


def _simulate(args, model, vocab, prompt, golden):
    """``--backend sim``: the simulated core's text for ``prompt`` and its summary."""
    from ..sim.recurrent_sim import generate_sim
    _log(f"generate: simulating the recurrent core for {len(prompt)} + {args.n} clocks")
    text, result = generate_sim(model, vocab, prompt, args.n, shift=args.shift_value,
                                seed=args.lfsr_seed, vcd=args.vcd)
    session = result.sessions[0]
    gateware = {
        "text_equal": text == golden, "golden_text": golden,
        "chars_per_clock": session.chars_per_clock if args.n else None,
        "latency_cycles": session.latency, "gen_clocks": session.gen_clocks,
        "sim_cycles": result.cycles, "sim_seconds": result.seconds,
        "lut_estimate": result.cost.lut, "ff_estimate": result.cost.ff,
    }
    _log(f"generate: gateware text {'equals' if text == golden else 'DIFFERS FROM'} the "
         f"golden model's; {gateware['chars_per_clock'] or 0:.3f} characters per clock, "
         f"{result.cycles} clocks in {result.seconds:.1f} s")
    return text, gateware


def register(sub):
    sp = sub.add_parser("generate", help="train a recurrent character model and generate text "
                                         "(software or simulated gateware)")
    sp.add_argument("--corpus", default="iyoshi",
                    help="'iyoshi' (default), 'prose' or the path of a UTF-8 text file")
    sp.add_argument("--model", help="generate from this recurrent.json instead of training")
    sp.add_argument("--name", help="run name (default <corpus>-<cell>)")
    sp.add_argument("--cell", default="elman", choices=["elman", "reservoir", "sioconv"])
    sp.add_argument("--hidden", type=int, default=0,
                    help="hidden channels (default 8 for up to 4 characters, else 32)")
    sp.add_argument("--epochs", type=int, default=30)
    sp.add_argument("--seed", type=int, default=0, help="training seed")
    sp.add_argument("--act-bits", type=int, default=4)
    sp.add_argument("--weight-bits", type=int, default=8)
    sp.add_argument("--no-context", action="store_true",
                    help="generate with the ablation (context forced to zero)")
    sp.add_argument("--prompt", action="append",
                    help="start text (default: the first vocabulary character); give it "
                         "once per stream to generate several texts: on a board (--port), "
                         "one request to its core's streams (bitstream --streams)")
    sp.add_argument("-n", type=int, default=40, help="characters to generate (default 40)")
    how = sp.add_mutually_exclusive_group()
    how.add_argument("--temperature", type=float,
                     help="sample at this softmax temperature (default: argmax)")
    how.add_argument("--shift", type=int, help="sample with this integer temperature shift")
    sp.add_argument("--lfsr-seed", type=int, default=0xACE1, help="LFSR seed for sampling")
    sp.add_argument("--backend", default="software", choices=["software", "sim"],
                    help="golden model only, or also the simulated gateware (checked equal)")
    sp.add_argument("--board", help="check that the core fits this board (vocabulary, LUTs)")
    sp.add_argument("--vcd", help="waveform file (--backend sim)")
    sp.add_argument("--port", help="generate on a board running the recurrent top: a serial "
                                   "port (e.g. /dev/ttyUSB1), or 'sim' for its simulation")
    sp.add_argument("--baud", type=int, default=115200)
    sp.add_argument("--streams", type=int, default=None,
                    help="--port: the streams of the board's core (C-slow; default: those of "
                         "its build report, build/<name>/<board>/report.json, else 1); the "
                         "prompt goes to stream 0")
    sp.add_argument("--timeout", type=float, default=2.0,
                    help="seconds to wait for the board's answer (default 2)")
    sp.add_argument("--retries", type=int, default=3)
    sp.set_defaults(func=cmd_generate)
