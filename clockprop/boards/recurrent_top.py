"""The recurrent board top: text generation on a board, answered in UTF-8 over the UART link.

:class:`RecurrentDeviceCore` is everything but the pins and the clock (what ``sim`` runs);
:class:`RecurrentBoardTop` puts it on a board: PLL, UART pins, LEDs. :func:`build_recurrent`
makes its bitstream and report, :func:`check_recurrent_fit` refuses a model that cannot fit.

Requests the core answers (frame types of :mod:`clockprop.core.protocol`):

* ``GENERATE`` (mode, shift, seed, ``n``, prompt ids) -> ``TEXT`` (prompt cycles, generation
  cycles, the ``n`` generated characters in UTF-8), after priming the
  :class:`~clockprop.hw.recurrent.RecurrentCore` on the prompt at one character per clock and
  generating at one character per clock into an on-chip buffer;
* ``PING`` -> ``PONG`` with the same payload;
* anything else -> ``ERROR`` with an :class:`~clockprop.core.protocol.ErrorCode`: ``LENGTH``
  (no prompt, or a prompt longer than ``max_prompt``), ``MODE`` (argmax/sampling, shift or
  seed other than the bitstream's), ``TOO_LONG`` (``n > max_chars``), ``BAD_TOKEN`` (a
  prompt id outside the vocabulary), ``UNKNOWN_TYPE``; a corrupted frame gets ``CRC``.
"""

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from amaranth.hdl import Cat, ClockSignal, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..hw.framing import FrameRx, FrameTx
from ..hw.recurrent import MAX_VOCAB, RecurrentCore, check_core
from ..hw.uart import UARTRx, UARTTx
from ..core.errors import ClockpropError
from ..core.fileio import write_atomic
from ..core.protocol import (
    ErrorCode, FrameType, GenerateRequest, GenerateStreamsRequest, TextReply,
)
from .top import BoardShell

__all__ = ["MAX_PROMPT", "MAX_CHARS", "RECURRENT_TOP_OVERHEAD", "RECURRENT_STREAMS",
           "RECURRENT_STREAM_OVERHEAD", "utf8_words", "RecurrentDeviceCore", "RecurrentBoardTop",
           "recurrent_freq", "estimate_recurrent", "check_recurrent_fit", "build_recurrent"]

MAX_PROMPT = 256            # prompt characters per request (the frame buffer)
MAX_CHARS = 1024            # generated characters per request (the character buffer)
# LUT4 / FF of the top without the recurrent core (UART, frame codec, request FSM, counters,
# buffer addressing): an iCEBreaker build of the iyoshi Elman top (2945 LUT4, 573 FF) minus
# the same core synthesized alone (2018 LUT4, 52 FF).
RECURRENT_TOP_OVERHEAD = {"lut": 900, "ff": 520}
# ... and per stream beyond the first (its prompt and output pointers, the feed's stream):
# the iCEBreaker K=4 argmax top had 1459 FF and 3395 LUT4 where the core tally and the
# one-stream overhead said 1074 and 3372.
RECURRENT_STREAM_OVERHEAD = {"lut": 40, "ff": 100}
# Default clock per family and output stage, below the fmax measured by bench/recurrent.py
# (reports/bench/recurrent.md): the core's loop (state -> hidden -> readout -> argmax or
# sampler -> state) is one combinational path, so it sets fmax. 8.4375 MHz is the lowest
# clock the iCE40 PLL makes from 12 MHz; 4 MHz comes from a clock divider (12 MHz / 3).
RECURRENT_HZ = {("ice40", "argmax"): 8.4375e6, ("ice40", "sampled"): 4e6,
                ("ecp5", "argmax"): 25e6, ("ecp5", "sampled"): 12.5e6}
# Streams of the C-slow core per family and output stage (the loop cut by K - 1 registers:
# about K times the clock, one character per clock with all streams generating), and the
# default clock of those builds, below the fmax that bench/recurrent.py --streams measured for
# the iyoshi Elman top (reports/bench/recurrent.md): argmax K=4 28.3 MHz on the iCEBreaker,
# 67.1 MHz on the ULX3S; sampled K=4 41.4 MHz on the ULX3S, K=3 7.9 MHz on the iCEBreaker
# (K=4 sampled needs more than its 5280 logic cells). A K not measured gets the one-stream
# clock, which a cut loop makes with room to spare.
RECURRENT_STREAMS = {("ice40", "argmax"): 4, ("ice40", "sampled"): 3,
                     ("ecp5", "argmax"): 4, ("ecp5", "sampled"): 4}
RECURRENT_STREAMS_HZ = {("ice40", "argmax", 4): 24e6, ("ice40", "sampled", 3): 6e6,
                        ("ecp5", "argmax", 4): 60e6, ("ecp5", "sampled", 4): 37.5e6}


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def utf8_words(vocab):
    """The UTF-8 ROM: character id -> its 1 to 4 bytes, byte 0 in bits 0-7 (rest zero)."""
    return [int.from_bytes(c.encode("utf-8"), "little") for c in vocab.chars]


def _utf8_length(lead):
    """Bytes of a UTF-8 character from its lead byte (0xxxxxxx, 110xxxxx, 1110xxxx, 11110xxx)."""
    return Mux(~lead[7], 1, Mux(~lead[5], 2, Mux(~lead[4], 3, 4)))


class RecurrentDeviceCore(wiring.Component):
    """Recurrent core + character buffer + UTF-8 ROM + framed UART: the platform-free top.

    Parameters
    ----------
    model : IntElman or IntSioConv
        The integer recurrent model (its weights become constants).
    vocab : clockprop.models.text.Vocab
        Its characters: the UTF-8 ROM that the ``TEXT`` answer is read from.
    divisor : int
        UART clocks per bit (``clk_freq // baud``).
    shift : int or None
        Built-in output stage: ``None`` argmax, an integer the sampling temperature shift.
        A ``GENERATE`` request must ask for the same mode, shift and ``seed`` (``MODE``
        error otherwise): both are constants of the core.
    seed : int
        LFSR seed of every session (sampling only).
    max_prompt : int
        Longest prompt accepted, in characters (sets the frame buffer).
    max_chars : int
        Most characters generated per request (per stream; sets the character buffer).
    streams : int
        ``K``, the streams of the :class:`~clockprop.hw.recurrent.RecurrentCore` (C-slow).
        With ``K > 1`` a ``GENERATE`` request carries 1 to ``K`` prompts
        (:class:`~clockprop.core.protocol.GenerateStreamsRequest`: each its length and its
        ids, ``max_prompt`` bytes in all), and ``TEXT`` holds the ``n`` characters of every
        stream, one stream after the other; more prompts than streams, an empty prompt or
        a length past the end are ``LENGTH``, the one-prompt format ``MODE``.

    Members
    -------
    rx : ``In(1, init=1)``;  tx : ``Out(1, init=1)``   -- the serial line (8N1)
    last_char : ``Out(8)``                             -- id of the last character generated
    activity : ``Out(1)``                              -- high while a request is handled

    Latency and throughput, for a prompt of ``P`` characters and ``n`` to generate: the
    request is checked once its last byte is in (``ERROR`` before anything runs); then the
    core takes the prompt from the buffer at one character per clock (``P`` clocks, plus 2
    for the buffer read and an input register), its first character comes 1 clock after the
    last prompt character, and the ``n`` characters follow at one per clock into the buffer,
    ``n`` clocks; the counts measured by the gateware come back in ``TEXT``
    (``prime_cycles == P``, ``gen_cycles == n``). Sending the text takes 3 clocks per
    character plus the UART time of its bytes, which dominates: one request and its answer
    move ``12 + P`` and ``14 + (UTF-8 bytes)`` bytes at 10 bits each. Buffers:
    ``max(max_prompt, max_chars)`` character ids (block RAM), the frame buffer of
    ``6 + max_prompt`` bytes and the ``V`` x 32-bit UTF-8 ROM.

    With ``K > 1`` streams every stream takes a prompt character or makes one every ``K``
    clocks, on its turn: the prompts go in interleaved (``K`` prompts of ``P`` characters in
    ``K * P`` clocks), a stream's first character comes ``K`` clocks after its last prompt
    character, and with ``K`` prompts of one length the core makes one character per clock,
    ``gen_cycles == K * n`` for ``K * n`` characters. The character buffer holds the prompts
    (``max_prompt`` ids), then ``max_chars`` ids per stream.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    last_char: Out(8)
    activity: Out(1)

    def __init__(self, model, vocab, *, divisor, shift=None, seed=0xACE1,
                 max_prompt=MAX_PROMPT, max_chars=MAX_CHARS, streams=1):
        try:
            if len(vocab) != model.n_vocab:
                raise ClockpropError(f"the vocabulary has {len(vocab)} characters, the model "
                                     f"{model.n_vocab}")
            if not isinstance(max_prompt, int) or not 1 <= max_prompt <= 0xFFFF - 6:
                raise ClockpropError(f"max_prompt must be in [1, {0xFFFF - 6}], got "
                                     f"{max_prompt!r}")
            limit = (0xFFFF - TextReply.HEADER) // 4 // max(1, streams)
            if not isinstance(max_chars, int) or not 1 <= max_chars <= limit:
                raise ClockpropError(f"max_chars must be in [1, {limit}] (one TEXT frame"
                                     f"{' for all streams' if streams != 1 else ''}), got "
                                     f"{max_chars!r}")
            self.recurrent = RecurrentCore(model, shift=shift, seed=seed,
                                           count_bits=max_chars.bit_length(),
                                           streams=streams)
        except ClockpropError:
            self._MustUse__silence = True      # never elaborated: no "unused" warning
            raise
        self.model = model
        self.vocab = vocab
        self.divisor = divisor
        self.shift = shift
        self.seed = seed
        self.max_prompt = max_prompt
        self.max_chars = max_chars
        # One stream: the characters overwrite the prompt. Several: a stream generates while
        # another primes, so the prompts come first, then max_chars per stream.
        self.depth = (max(max_prompt, max_chars) if streams == 1 else
                      max_prompt + streams * max_chars)
        self.streams = streams
        self.latency = self.recurrent.latency
        super().__init__()

    # -- elaboration: link, buffers, registers, the core's feed and counters, then the
    # -- request state machine (request, generate and send states); one namespace ``r`` --

    def elaborate(self, platform):
        m = Module()
        r = SimpleNamespace()
        self._link(m, r)
        self._buffers(m, r)
        self._registers(m, r)
        self._feed(m, r)
        with m.FSM():
            self._request_states(m, r)
            if self.streams > 1:
                self._run_state(m, r)
            else:
                self._generate_states(m, r)
            self._send_states(m, r)
        return m

    def _link(self, m, r):
        H = GenerateRequest.HEADER
        m.submodules.uart_rx = uart_rx = UARTRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTx(self.divisor)
        m.submodules.frame_rx = r.frame_rx = FrameRx(H + self.max_prompt,
                                                     timeout=40 * self.divisor)
        m.submodules.frame_tx = r.frame_tx = FrameTx()
        m.submodules.recurrent = r.core = self.recurrent
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.o, r.frame_rx.i)
        wiring.connect(m, r.frame_tx.o, uart_tx.i)

    def _buffers(self, m, r):
        """The prompt, then the generated characters, as ids; the UTF-8 bytes of each id."""
        m.submodules.chars = chars = Memory(shape=unsigned(self.recurrent.id_bits),
                                            depth=self.depth, init=[])
        r.wr = chars.write_port()
        r.rd = chars.read_port()
        m.submodules.utf8 = utf8 = Memory(shape=unsigned(32), depth=self.model.n_vocab,
                                          init=utf8_words(self.vocab))
        r.rom = utf8.read_port()

    def _registers(self, m, r):
        H, depth = GenerateRequest.HEADER, self.depth
        r.byte = r.frame_rx.o.payload
        r.hdr_len = Signal(16, name="hdr_len")
        r.count = Signal(16, name="count")                  # bytes of the request taken so far
        r.params = Signal(8 * H, name="params")             # mode, shift, seed, n: H bytes
        r.p_mode, r.p_shift, r.p_seed, r.p_n = (r.params[0:8], r.params[8:16],
                                                r.params[16:32], r.params[32:48])
        r.bad_token = Signal(name="bad_token")
        r.ptr = Signal(range(depth + 1), name="ptr")        # buffer address
        r.plen = Signal(range(depth + 1), name="plen")
        r.n = Signal(16, name="n")
        r.nbytes = Signal(16, name="nbytes")                # UTF-8 bytes of the text
        r.prime_cycles = Signal(24, name="prime_cycles")
        r.gen_cycles = Signal(24, name="gen_cycles")
        r.in_prompt = Signal(name="in_prompt")
        r.in_gen = Signal(name="in_gen")
        r.out = Signal(64, name="out")                      # answer bytes, sent LSB first
        r.out_type = Signal(8, name="out_type")
        r.out_len = Signal(16, name="out_len")
        r.word = Signal(32, name="word")                    # the UTF-8 bytes of a character
        r.left = Signal(3, name="left")
        r.pending = Signal(8, name="pending")               # error code to report when idle
        r.is_text = Signal(name="is_text")
        m.d.comb += r.is_text.eq(r.out_type == FrameType.TEXT)

        if self.streams > 1:
            self._stream_registers(m, r)

        with m.If(r.frame_rx.crc_error | r.frame_rx.timeout_error):
            m.d.sync += r.pending.eq(ErrorCode.CRC)
        with m.If(r.frame_rx.length_error):
            m.d.sync += r.pending.eq(ErrorCode.LENGTH)

    def _feed(self, m, r):
        """The prompt from the buffer into the core, the clock counters, the byte tally and
        the frame transmitter's header."""
        core, rd, rom = r.core, r.rd, r.rom
        # The prompt goes from the buffer through a register into the core, so neither the
        # block RAM's output nor the FSM adds to the core's path (its loop sets fmax).
        r.rd_valid, r.rd_last = Signal(name="rd_valid"), Signal(name="rd_last")
        r.feed_valid, feed_last = Signal(name="feed_valid"), Signal(name="feed_last")
        feed_char = Signal(self.recurrent.id_bits, name="feed_char")
        m.d.sync += [r.rd_valid.eq(0), r.feed_valid.eq(r.rd_valid), feed_last.eq(r.rd_last),
                     feed_char.eq(rd.data)]
        m.d.comb += [
            rd.addr.eq(r.ptr), r.wr.addr.eq(r.ptr), r.wr.data.eq(r.byte[:self.recurrent.id_bits]),
            rom.addr.eq(rd.data),
            core.i.valid.eq(r.feed_valid), core.i.payload.char.eq(feed_char),
            core.i.payload.last.eq(feed_last), core.i.payload.count.eq(r.n),
            core.o.ready.eq(1),
        ]
        if self.streams > 1:
            # The character read for a stream goes with it to the core, 2 clocks later.
            K = self.streams
            feed_stream = Signal(range(K), name="feed_stream")
            m.d.sync += feed_stream.eq(r.rd_stream)
            m.d.comb += core.i.payload.stream.eq(feed_stream)
            # The stream whose turn comes 2 clocks from now, and its prompt pointers.
            r.ahead = Signal(range(K), name="ahead")
            with m.Switch(core.turn):
                for t in range(K):
                    with m.Case(t):
                        m.d.comb += r.ahead.eq((t + 2) % K)
            r.rp_ahead = Signal.like(r.rp[0], name="rp_ahead")
            r.last_ahead = Signal.like(r.last[0], name="last_ahead")
            with m.Switch(r.ahead):
                for s in range(K):
                    with m.Case(s):
                        m.d.comb += [r.rp_ahead.eq(r.rp[s]), r.last_ahead.eq(r.last[s])]

        # What the gateware measures: clocks from the first prompt character taken by the
        # core to the last, and from the first generated character to the last (inclusive).
        taken_in = core.i.valid & core.i.ready
        with m.If(taken_in | r.in_prompt):
            m.d.sync += r.prime_cycles.eq(r.prime_cycles + 1)
        with m.If(taken_in):
            if self.streams > 1:        # the last prompt character of every stream
                m.d.sync += [r.in_prompt.eq(r.fed != r.plen_last), r.fed.eq(r.fed + 1)]
            else:
                m.d.sync += r.in_prompt.eq(~core.i.payload.last)
        with m.If(core.o.valid | r.in_gen):
            m.d.sync += r.gen_cycles.eq(r.gen_cycles + 1)
        # The byte count of the text, one clock behind the character (the ROM read).
        r.tally = Signal(name="tally")
        m.d.sync += r.tally.eq(0)
        with m.If(r.tally):
            m.d.sync += r.nbytes.eq(r.nbytes + _utf8_length(rom.data[:8]))

        m.d.comb += [r.frame_tx.header.payload.type.eq(r.out_type),
                     r.frame_tx.header.payload.length.eq(
                         Mux(r.is_text, r.nbytes + TextReply.HEADER, r.out_len)),
                     r.frame_tx.i.payload.eq(r.out[:8])]

    def _answer(self, m, r, type_, length, payload):
        m.d.sync += [r.out_type.eq(type_), r.out_len.eq(length), r.out.eq(payload)]
        if self.streams > 1:
            m.d.sync += r.out_last.eq(length - 1)
        m.next = "SEND_HEADER"

    def _fail(self, m, r, code):
        self._answer(m, r, FrameType.ERROR, 1, code)

    def _request_states(self, m, r):
        """IDLE, DRAIN, PARAMS, PROMPT and CHECK: the request taken and checked."""
        H, V = GenerateRequest.HEADER, self.model.n_vocab
        frame_rx, byte = r.frame_rx, r.byte
        flag = GenerateStreamsRequest.STREAMS_FLAG if self.streams > 1 else 0
        if self.shift is None:
            mode_ok = r.p_mode == flag
        else:
            mode_ok = ((r.p_mode == (flag | 1)) & (r.p_shift == self.shift) &
                       (r.p_seed == self.seed))

        with m.State("IDLE"):
            m.d.comb += frame_rx.header.ready.eq(1)
            with m.If(frame_rx.header.valid):
                h = frame_rx.header.payload
                m.d.sync += [r.hdr_len.eq(h.length), r.count.eq(0), r.ptr.eq(0),
                             r.bad_token.eq(0)]
                if self.streams > 1:
                    m.d.sync += [r.prompts.eq(0), r.prompt_left.eq(0), r.bad_length.eq(0),
                                 r.hdr_last.eq(h.length - 1)]
                with m.If((h.type == FrameType.GENERATE) & (h.length > H)):
                    m.next = "PARAMS"
                with m.Elif(h.type == FrameType.PING):
                    self._answer(m, r, FrameType.PONG, h.length, 0)
                with m.Else():
                    code = Mux(h.type == FrameType.GENERATE, ErrorCode.LENGTH,
                               ErrorCode.UNKNOWN_TYPE)
                    m.d.sync += [r.out.eq(code), r.out_type.eq(FrameType.ERROR),
                                 r.out_len.eq(1)]
                    if self.streams > 1:
                        m.d.sync += r.out_last.eq(0)
                    with m.If(h.length == 0):
                        m.next = "SEND_HEADER"
                    with m.Else():
                        m.next = "DRAIN"
            with m.Elif(r.pending != 0):
                m.d.sync += r.pending.eq(0)
                self._fail(m, r, r.pending)

        with m.State("DRAIN"):
            m.d.comb += frame_rx.o.ready.eq(1)
            with m.If(frame_rx.o.valid):
                m.d.sync += r.count.eq(r.count + 1)
                with m.If(r.count == (r.hdr_len - 1 if self.streams == 1 else r.hdr_last)):
                    m.next = "SEND_HEADER"

        with m.State("PARAMS"):
            m.d.comb += [frame_rx.o.ready.eq(1), self.activity.eq(1)]
            with m.If(frame_rx.o.valid):
                m.d.sync += [r.params.eq(Cat(r.params[8:], byte)), r.count.eq(r.count + 1)]
                with m.If(r.count == H - 1):
                    m.next = "PROMPT"

        if self.streams > 1:
            self._prompts_states(m, r, mode_ok)
            return

        with m.State("PROMPT"):
            m.d.comb += [frame_rx.o.ready.eq(1), self.activity.eq(1),
                         r.wr.en.eq(frame_rx.o.valid)]
            with m.If(frame_rx.o.valid):
                m.d.sync += [r.ptr.eq(r.ptr + 1), r.count.eq(r.count + 1)]
                with m.If(byte >= V):
                    m.d.sync += r.bad_token.eq(1)
                with m.If(r.count == r.hdr_len - 1):
                    m.next = "CHECK"

        with self._check_state(m, r, [(~mode_ok, ErrorCode.MODE),
                                      (r.p_n > self.max_chars, ErrorCode.TOO_LONG),
                                      (r.bad_token, ErrorCode.BAD_TOKEN)]):
            m.d.sync += [r.plen.eq(r.ptr), r.ptr.eq(0), r.n.eq(r.p_n), r.nbytes.eq(0),
                         r.prime_cycles.eq(0), r.gen_cycles.eq(0)]
            m.next = "PRIME"

    @contextmanager
    def _check_state(self, m, r, failures):
        """CHECK: the first of ``failures`` (``(condition, ErrorCode)``) that holds is
        answered with its error; the body of the ``with`` runs when none does."""
        with m.State("CHECK"):
            m.d.comb += self.activity.eq(1)
            for k, (condition, code) in enumerate(failures):
                with (m.Elif if k else m.If)(condition):
                    self._fail(m, r, code)
            with m.Else():
                yield

    def _generate_states(self, m, r):
        """PRIME (the prompt into the core), GENERATE (one character a clock), TALLY."""
        core, ptr = r.core, r.ptr
        with m.State("PRIME"):
            m.d.comb += self.activity.eq(1)
            m.d.sync += [r.rd_valid.eq(1), r.rd_last.eq(ptr == r.plen - 1)]
            with m.If(ptr == r.plen - 1):
                m.d.sync += ptr.eq(0)
                m.next = "GENERATE"
            with m.Else():
                m.d.sync += ptr.eq(ptr + 1)

        with m.State("GENERATE"):
            m.d.comb += [self.activity.eq(1), r.rom.addr.eq(core.o.payload),
                         r.wr.data.eq(core.o.payload), r.wr.en.eq(core.o.valid)]
            with m.If(core.o.valid):
                last = ptr == r.n - 1
                m.d.sync += [ptr.eq(ptr + 1), r.tally.eq(1), r.in_gen.eq(~last),
                             self.last_char.eq(core.o.payload)]
                with m.If(last):
                    m.next = "TALLY"
            with m.If((r.n == 0) & ~r.rd_valid & ~r.feed_valid & ~core.busy):
                m.next = "TALLY"

        with m.State("TALLY"):                  # the last character's byte count
            m.d.comb += self.activity.eq(1)
            self._answer(m, r, FrameType.TEXT, TextReply.HEADER,
                         Cat(r.prime_cycles, Const(0, 8), r.gen_cycles, Const(0, 8)))

    def _send_states(self, m, r):
        """SEND_HEADER, SEND, ECHO, and the text: id from the buffer, its bytes from the
        ROM, then the bytes (TEXT_ADDR, TEXT_ROM, TEXT_WORD, TEXT_BYTES)."""
        frame_rx, frame_tx = r.frame_rx, r.frame_tx
        with m.State("SEND_HEADER"):
            m.d.comb += frame_tx.header.valid.eq(1)
            with m.If(frame_tx.header.ready):
                m.d.sync += [r.count.eq(0), r.ptr.eq(0 if self.streams == 1 else
                                                      self.max_prompt)]
                with m.If(r.out_len == 0):
                    m.next = "IDLE"
                with m.Elif(r.out_type == FrameType.PONG):
                    m.next = "ECHO"
                with m.Else():
                    m.next = "SEND"

        with m.State("SEND"):
            m.d.comb += frame_tx.i.valid.eq(1)
            with m.If(frame_tx.i.ready):
                m.d.sync += [r.out.eq(r.out >> 8), r.count.eq(r.count + 1)]
                with m.If(r.count == (r.out_len - 1 if self.streams == 1 else r.out_last)):
                    m.next = "IDLE"
                    with m.If(r.is_text & (r.n != 0)):
                        m.next = "TEXT_ADDR"

        with m.State("ECHO"):
            m.d.comb += [
                frame_tx.i.valid.eq(frame_rx.o.valid),
                frame_tx.i.payload.eq(frame_rx.o.payload),
                frame_rx.o.ready.eq(frame_tx.i.ready),
            ]
            with m.If(frame_rx.o.valid & frame_tx.i.ready):
                m.d.sync += r.count.eq(r.count + 1)
                with m.If(r.count == (r.out_len - 1 if self.streams == 1 else r.out_last)):
                    m.next = "IDLE"

        with m.State("TEXT_ADDR"):
            m.d.comb += self.activity.eq(1)
            m.next = "TEXT_ROM"
        with m.State("TEXT_ROM"):
            m.d.comb += self.activity.eq(1)
            m.next = "TEXT_WORD"
        with m.State("TEXT_WORD"):
            m.d.comb += self.activity.eq(1)
            m.d.sync += [r.word.eq(r.rom.data), r.left.eq(_utf8_length(r.rom.data[:8]))]
            m.next = "TEXT_BYTES"
        with m.State("TEXT_BYTES"):
            m.d.comb += [self.activity.eq(1), frame_tx.i.valid.eq(1),
                         frame_tx.i.payload.eq(r.word[:8])]
            with m.If(frame_tx.i.ready):
                m.d.sync += [r.word.eq(r.word >> 8), r.left.eq(r.left - 1)]
                with m.If(r.left == 1):
                    m.d.sync += r.ptr.eq(r.ptr + 1)
                    m.next = "TEXT_ADDR"
                    with m.If(r.ptr == (r.n - 1 if self.streams == 1 else r.text_last)):
                        m.next = "IDLE"


    # -- several streams: prompts in, one per stream; the streams generate together -----

    def _stream_registers(self, m, r):
        K, depth = self.streams, self.depth
        total_w = range(K * self.max_chars + 1)
        r.prompt_left = Signal(8, name="prompt_left")      # ids left of the prompt being read
        r.prompts = Signal(range(K + 1), name="prompts")    # prompts in the request
        r.bad_length = Signal(name="bad_length")
        r.first = [Signal(range(depth + 1), name=f"first{s}") for s in range(K)]
        r.last = [Signal(range(depth + 1), name=f"last{s}") for s in range(K)]
        r.rp = [Signal(range(depth + 1), name=f"rp{s}") for s in range(K)]    # next prompt id
        r.wp = [Signal(range(depth + 1), name=f"wp{s}") for s in range(K)]    # next output
        r.active = Signal(K, name="active")                 # streams still priming
        # Comparisons with registers set before they are needed (no subtraction between a
        # counter and the state machine): the last byte of the request, the last prompt
        # id, the last character of all streams.
        r.hdr_last = Signal(16, name="hdr_last")
        r.out_last = Signal(range(-1, 1 << 16), name="out_last")
        r.plen_last = Signal(range(-1, depth + 1), name="plen_last")
        r.total_last = Signal(range(-1, K * self.max_chars + 1), name="total_last")
        r.made = Signal(total_w, name="made")
        r.fed = Signal(range(depth + 1), name="fed")        # prompt ids taken by the core
        r.text_last = Signal(range(depth + 1), name="text_last")
        r.rd_stream = Signal(range(K), name="rd_stream")

    def _prompts_states(self, m, r, mode_ok):
        """PROMPT and CHECK of a request to several streams: each prompt as its length and
        its ids, stored one after the other; the stream pointers set."""
        K, V = self.streams, self.model.n_vocab
        frame_rx, byte = r.frame_rx, r.byte
        with m.State("PROMPT"):
            m.d.comb += [frame_rx.o.ready.eq(1), self.activity.eq(1)]
            with m.If(frame_rx.o.valid):
                m.d.sync += r.count.eq(r.count + 1)
                with m.If(r.prompt_left == 0):              # a length: the next prompt
                    with m.If((byte == 0) | (r.prompts == K)):
                        m.d.sync += r.bad_length.eq(1)
                    with m.Else():
                        m.d.sync += [r.prompt_left.eq(byte), r.prompts.eq(r.prompts + 1)]
                        for s in range(K):
                            with m.If(r.prompts == s):
                                m.d.sync += [r.first[s].eq(r.ptr),
                                             r.last[s].eq(r.ptr + byte - 1)]
                with m.Else():
                    m.d.comb += r.wr.en.eq(1)
                    m.d.sync += [r.ptr.eq(r.ptr + 1), r.prompt_left.eq(r.prompt_left - 1)]
                    with m.If(byte >= V):
                        m.d.sync += r.bad_token.eq(1)
                with m.If(r.count == r.hdr_last):
                    m.next = "CHECK"

        with self._check_state(m, r, [(~mode_ok, ErrorCode.MODE),
                                      (r.p_n > self.max_chars, ErrorCode.TOO_LONG),
                                      (r.bad_length | (r.prompt_left != 0), ErrorCode.LENGTH),
                                      (r.bad_token, ErrorCode.BAD_TOKEN)]):
            m.d.sync += [r.plen_last.eq(r.ptr - 1), r.n.eq(r.p_n), r.nbytes.eq(0),
                         r.made.eq(0), r.fed.eq(0), r.prime_cycles.eq(0),
                         r.gen_cycles.eq(0)]
            for s in range(K):
                m.d.sync += [r.rp[s].eq(r.first[s]), r.active[s].eq(r.prompts > s),
                             r.wp[s].eq(self.max_prompt + s * r.p_n)]
                with m.If(r.prompts == s + 1):
                    m.d.sync += [r.total_last.eq((s + 1) * r.p_n - 1),
                                 r.text_last.eq(self.max_prompt + (s + 1) * r.p_n - 1)]
            m.next = "RUN"

    def _run_state(self, m, r):
        """RUN: every clock, the next prompt id of the stream whose turn comes in 2 clocks
        (the buffer read, the feed register) while it primes; every generated character
        into its stream's part of the buffer. Then TALLY."""
        K, core, rd, wr = self.streams, r.core, r.rd, r.wr
        ahead, rp, last = r.ahead, r.rp_ahead, r.last_ahead
        with m.State("RUN"):
            m.d.comb += [self.activity.eq(1), rd.addr.eq(rp)]
            with m.If(r.active.bit_select(ahead, 1)):
                m.d.sync += [r.rd_valid.eq(1), r.rd_last.eq(rp == last),
                             r.rd_stream.eq(ahead)]
                for s in range(K):
                    with m.If(ahead == s):
                        m.d.sync += r.rp[s].eq(rp + 1)
                        with m.If(rp == last):
                            m.d.sync += r.active[s].eq(0)

            out = core.o.payload
            m.d.comb += [r.rom.addr.eq(out.char), wr.data.eq(out.char),
                         wr.en.eq(core.o.valid)]
            for s in range(K):
                with m.If(out.stream == s):
                    m.d.comb += wr.addr.eq(r.wp[s])
                    with m.If(core.o.valid):
                        m.d.sync += r.wp[s].eq(r.wp[s] + 1)
            with m.If(core.o.valid):
                done = r.made == r.total_last
                m.d.sync += [r.made.eq(r.made + 1), r.tally.eq(1), r.in_gen.eq(~done),
                             self.last_char.eq(out.char)]
                with m.If(done):
                    m.next = "TALLY"
            with m.If((r.n == 0) & (r.active == 0) & ~r.rd_valid & ~r.feed_valid &
                      (core.busy == 0)):
                m.next = "TALLY"

        with m.State("TALLY"):                  # the last character's byte count
            m.d.comb += self.activity.eq(1)
            self._answer(m, r, FrameType.TEXT, TextReply.HEADER,
                         Cat(r.prime_cycles, Const(0, 8), r.gen_cycles, Const(0, 8)))


class RecurrentBoardTop(BoardShell):
    """A :class:`RecurrentDeviceCore` on a board: PLL to ``freq``, UART pins, LEDs.

    The LEDs show the low bits of the last generated character id, and activity.

    Parameters
    ----------
    board : Board
        From :mod:`clockprop.boards.registry`.
    model, vocab, shift, seed, max_prompt, max_chars :
        As :class:`RecurrentDeviceCore`.
    freq : float
        Requested clock in Hz (the PLL gets as close as it can: ``self.freq`` after
        elaboration).
    baud : int
    """

    leds = "last_char"

    def __init__(self, board, model, vocab, *, freq, baud=115200, shift=None, seed=0xACE1,
                 max_prompt=MAX_PROMPT, max_chars=MAX_CHARS, streams=1):
        super().__init__(board, freq=freq, baud=baud)
        self.model = model
        self.vocab = vocab
        self.shift = shift
        self.seed = seed
        self.max_prompt = max_prompt
        self.max_chars = max_chars
        self.streams = streams

    def clock_domain(self, m, platform):
        return (divided_clock_domain(m, self.board, platform, self.requested_freq) or
                super().clock_domain(m, platform))

    def make_core(self, divisor):
        return RecurrentDeviceCore(self.model, self.vocab, divisor=divisor, shift=self.shift,
                                   seed=self.seed, max_prompt=self.max_prompt,
                                   max_chars=self.max_chars, streams=self.streams)


def divided_clock_domain(m, board, platform, f_out):
    """The ``sync`` domain at ``f_out`` = the board's clock divided by an integer ``k >= 2``
    in the fabric, for clocks below what the PLL makes (the iCE40 PLL stops at about 8.3 MHz
    from 12 MHz). Returns the frequency, or ``None`` (use the PLL) when ``f_out`` is not
    within 1% of ``clock_hz / k`` or the PLL can make it."""
    from amaranth.hdl import ClockDomain, Const, Instance
    from amaranth.lib import io
    from amaranth.lib.cdc import ResetSynchronizer

    from .pll import ecp5_pll, ice40_pll
    k = round(board.clock_hz / f_out)
    if k < 2 or abs(board.clock_hz / k - f_out) > 0.01 * f_out:
        return None
    try:
        (ice40_pll if board.family == "ice40" else ecp5_pll)(board.clock_hz, f_out)
        return None
    except ClockpropError:
        pass
    m.domains.board = ClockDomain("board", reset_less=True)
    if board.clock == "SB_HFOSC":
        m.submodules.hfosc = Instance("SB_HFOSC", p_CLKHF_DIV="0b00", i_CLKHFEN=1,
                                      i_CLKHFPU=1, o_CLKHF=ClockSignal("board"))
    else:
        m.submodules.clk_buffer = buf = io.Buffer(
            "i", platform.request(board.clock, 0, dir="-"))
        m.d.comb += ClockSignal("board").eq(buf.i)
    count = Signal(range(k))
    divided = Signal()
    m.d.board += [count.eq(Mux(count == k - 1, 0, count + 1)), divided.eq(count < k // 2)]
    m.domains.sync = cd = ClockDomain("sync")
    m.d.comb += cd.clk.eq(divided)
    # A reset for the first clocks after configuration: the one-hot state machines that
    # yosys makes (boards.build) start from it, not from an initial value.
    m.submodules.reset_sync = ResetSynchronizer(Const(0), domain="sync")
    f = board.clock_hz / k
    platform.add_clock_constraint(cd.clk, f)
    return f


# -- fit and build -----------------------------------------------------------------------------

def recurrent_freq(board, shift=None, streams=1):
    """The default clock of the recurrent top on ``board`` (Hz), argmax or sampled, with
    ``streams`` streams: a measured one (:data:`RECURRENT_STREAMS_HZ`), else the one-stream
    clock (which a cut loop makes with room to spare)."""
    mode = "argmax" if shift is None else "sampled"
    return min(board.target_hz, RECURRENT_STREAMS_HZ.get((board.family, mode, streams),
                                                         RECURRENT_HZ[board.family, mode]))


def estimate_recurrent(model, capacity, *, shift=None, max_prompt=MAX_PROMPT,
                       max_chars=MAX_CHARS, streams=1):
    """LUT4/FF/EBR that the recurrent top for ``model`` needs on a device (an estimate).

    LUT4/FF: the core's own tally (``RecurrentCore.estimate``) plus
    :data:`RECURRENT_TOP_OVERHEAD` (and :data:`RECURRENT_STREAM_OVERHEAD` per stream beyond
    the first); block RAM: the frame buffer, the character buffer and the UTF-8 ROM.
    """
    from .fit import ebr_blocks
    check_core(model, max_vocab=MAX_VOCAB)
    cost = RecurrentCore(model, shift=shift, count_bits=max_chars.bit_length(),
                         streams=streams).estimate()
    id_bits = max(1, ceil_log2(model.n_vocab))
    depth = (max(max_prompt, max_chars) if streams == 1 else
             max_prompt + streams * max_chars)
    ebr = (ebr_blocks(GenerateRequest.HEADER + max_prompt, 8, capacity) +
           ebr_blocks(depth, id_bits, capacity) +
           ebr_blocks(model.n_vocab, 32, capacity))
    extra = {k: (streams - 1) * v for k, v in RECURRENT_STREAM_OVERHEAD.items()}
    return {"lut": cost.lut + RECURRENT_TOP_OVERHEAD["lut"] + extra["lut"],
            "ff": cost.ff + RECURRENT_TOP_OVERHEAD["ff"] + extra["ff"], "ebr": ebr, "dsp": 0}


def check_recurrent_fit(model, board, *, shift=None, max_prompt=MAX_PROMPT,
                        max_chars=MAX_CHARS, streams=1):
    """Raise :class:`ClockpropError` (needed vs available) unless the top fits ``board``.

    Returns ``(need, available)``.
    """
    cap = board.capacity
    where = f" on {board.name} ({cap.device})"
    check_core(model, max_vocab=MAX_VOCAB, where=where)
    need = estimate_recurrent(model, cap, shift=shift, max_prompt=max_prompt,
                              max_chars=max_chars, streams=streams)
    avail = {"lut": cap.lut, "ff": cap.ff, "ebr": cap.ebr, "dsp": cap.dsp}
    names = {"lut": "LUT4", "ff": "flip-flops", "ebr": "block RAMs"}
    short = [f"{need[k]} {label} needed, {avail[k]} available" for k, label in names.items()
             if need[k] > avail[k]]
    # An iCE40 logic cell is one LUT4 and one flip-flop. The registers that carry a stream
    # round the loop of a C-slow core are shift registers, a cell each: the sampled top with
    # 4 streams (4068 LUT4 + 1227 FF estimated) needed 5437 of the UP5K's 5280 cells.
    if board.family == "ice40" and streams > 1 and need["lut"] + need["ff"] > cap.lut:
        short.append(f"{need['lut'] + need['ff']} logic cells (LUT4 + flip-flops) needed, "
                     f"{cap.lut} available")
    if short:
        what = f" and {streams} streams" if streams > 1 else ""
        raise ClockpropError(
            f"the recurrent top for {model.n_vocab} characters and {model.n_hidden} channels"
            f"{what} does not fit {board.name} ({cap.device}): {'; '.join(short)}; use a "
            f"smaller vocabulary (a text with fewer distinct characters), fewer hidden "
            f"channels{', fewer streams' if streams > 1 else ''}, or a bigger board")
    return need, avail


def build_recurrent(model, vocab, board_name, *, shift=None, seed=0xACE1, freq=None,
                    baud=115200, out_dir=None, timeout=None, pnr_seed=1, name=None,
                    streams=None):
    """Build a bitstream of the recurrent top of ``model`` for ``board_name``; return the
    report dict (also written as ``report.json`` and ``report.md`` in ``out_dir``, default
    ``build/<name>/<board>/``). ``streams``: of the core (default
    :data:`RECURRENT_STREAMS` of the board's family and output stage); the fit is checked
    first."""
    from .build import check_toolchain, run_toolchain
    from .registry import get_board

    board = get_board(board_name)
    check_toolchain(board.family)
    streams = streams or RECURRENT_STREAMS[board.family,
                                           "argmax" if shift is None else "sampled"]
    freq = float(freq or recurrent_freq(board, shift, streams))
    name = name or "recurrent"
    out_dir = Path(out_dir or Path("build") / name / board.name)
    need, avail = check_recurrent_fit(model, board, shift=shift, streams=streams)
    mode = "argmax" if shift is None else f"sampled (shift {shift}, seed {seed:#06x})"
    _log(f"bitstream: {name} ({mode}, {streams} stream{'s' * (streams > 1)}) on "
         f"{board.name}: estimate {need['lut']} LUT4 / {avail['lut']}, {need['ff']} FF, "
         f"{need['ebr']} EBR / {avail['ebr']}")
    top = RecurrentBoardTop(board, model, vocab, freq=freq, baud=baud, shift=shift, seed=seed,
                            streams=streams)
    run = run_toolchain(top, board, out_dir, freq=freq, seed=pnr_seed, timeout=timeout)
    fmax = _sync_fmax(out_dir, top.freq / 1e6) or run["fmax_mhz"]
    report = {
        "model": name, "kind": "recurrent", "board": board.name,
        "device": board.capacity.device, "family": board.family,
        "cell": type(model).__name__, "n_vocab": model.n_vocab, "n_hidden": model.n_hidden,
        "vocab": "".join(vocab.chars), "mode": "argmax" if shift is None else "sampled",
        "shift": shift, "lfsr_seed": seed if shift is not None else None,
        "max_prompt": MAX_PROMPT, "max_chars": MAX_CHARS,
        "estimate": {"need": need, "available": avail},
        "resources": run["resources"], "yosys_cells": run["yosys_cells"],
        "requested_mhz": freq / 1e6, "pll_mhz": top.freq / 1e6, "fmax_mhz": fmax,
        "timing_met": bool(fmax and fmax >= top.freq / 1e6),
        "streams": streams, "cuts": list(top.core.recurrent.cuts),
        "chars_per_clock": 1,
        "chars_per_s_at_fmax": fmax * 1e6 if fmax else None,
        "chars_per_s_at_clock": top.freq if fmax and fmax >= top.freq / 1e6 else None,
        "latency_cycles": top.core.latency, "baud": baud,
        "build_seconds": run["build_seconds"], "toolchain_seconds": run["toolchain_seconds"],
        "bitstream": run["bitstream"],
    }
    write_atomic(out_dir / "report.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_atomic(out_dir / "report.md", format_recurrent_report(report))
    if not report["timing_met"]:
        _log(f"bitstream: warning: fmax {fmax or 0:.1f} MHz is below the "
             f"{top.freq / 1e6:g} MHz clock; rebuild with --freq {int(fmax or 0)}")
    _log(f"bitstream: {run['bitstream']} in {report['build_seconds']} s: "
         f"{run['resources']['lut']['used']} LUT4, {run['resources']['ff']['used']} FF, "
         f"{run['resources']['ebr']['used']} EBR, fmax {fmax or 0:.1f} MHz = "
         f"{(fmax or 0):.1f} M characters/s (clock {top.freq / 1e6:g} MHz)")
    return report


def _sync_fmax(out_dir, mhz):
    """nextpnr's achieved fmax of the clock constrained nearest ``mhz`` (the ``sync`` domain:
    with a clock divider, the board's input clock is a second, faster clock)."""
    from .build import parse_nextpnr
    texts = [(out_dir / f).read_text(errors="replace") if (out_dir / f).exists() else ""
             for f in ("top.report.json", "top.tim")]
    _, fmax = parse_nextpnr(*texts)
    clocks = [v for v in fmax.values() if v.get("achieved_mhz")]
    if not clocks:
        return None
    return min(clocks, key=lambda v: abs((v.get("constraint_mhz") or 0) - mhz))["achieved_mhz"]


def format_recurrent_report(r):
    res = r["resources"]
    mode = r["mode"] if r["shift"] is None else (f"sampled, temperature shift {r['shift']}, "
                                                 f"LFSR seed {r['lfsr_seed']:#06x}")
    lines = [
        f"# {r['model']} (recurrent) on {r['board']} ({r['device']})", "",
        f"{r['cell']}, {r['n_vocab']} characters, {r['n_hidden']} channels; {mode}; one "
        f"character per clock" + (f" with all {r['streams']} streams generating (C-slow, the "
                                  f"loop cut after {', '.join(r['cuts'])}); each stream one "
                                  f"character every {r['streams']} clocks."
                                  if r.get("streams", 1) > 1 else "."), "",
        "| resource | used | available | estimate |", "|---|---|---|---|",
    ]
    for key in ("lut", "ff", "ebr", "dsp"):
        lines.append(f"| {key.upper()} | {res[key]['used']} | {res[key]['available']} | "
                     f"{r['estimate']['need'].get(key, '')} |")
    cps = r["chars_per_s_at_fmax"]
    lines += [
        "", f"- clock: requested {r['requested_mhz']:g} MHz, PLL {r['pll_mhz']:g} MHz, "
            f"achieved fmax {r['fmax_mhz']} MHz ({'met' if r['timing_met'] else 'NOT met'})",
        f"- generation: {cps / 1e6 if cps else 0:.2f} M characters/s at fmax "
        f"(1 character per clock); first character {r['latency_cycles']} clock after the "
        f"prompt",
        f"- buffers: prompt up to {r['max_prompt']} characters, up to {r['max_chars']} "
        f"generated per request",
        f"- build time: {r['build_seconds']} s (toolchain {r['toolchain_seconds']} s)",
        f"- bitstream: {r['bitstream']}", "",
    ]
    return "\n".join(lines)
