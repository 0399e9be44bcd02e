"""The recurrent core: a character-level network that generates one character per clock.

The whole step of :class:`clockprop.models.recurrent.IntElman` (reservoir included) or
:class:`~clockprop.models.recurrent.IntSioConv`, and the choice of the next character, is one
combinational path from the state register back to itself::

    char -> hidden layer (+ state) -> activations -> logits -> argmax / sample -> char
              ^                        |
              +------- state ----------+

* The input is one-hot, so ``W_in @ (A * onehot(x))`` is column ``x`` of ``A * W_in``: a
  multiplexer of constants per channel (with the bias folded in), not an adder tree.
* The context and readout products are constant shift-adds (``hw.arith`` canonical signed
  digits in balanced adder trees), as in :class:`hw.dense.DenseLayer`.
* SioConv's decay ``c * (1 - 2**-k)`` is the subtraction ``c - (c >> k)``.
* The output stage is an argmax tree (ties to the lowest index), or a sampler: the 16 LFSR
  steps of one draw unrolled into XORs, the base-2 softmax weights ``(1 << 15) >> d_i``
  as shifts, a parallel-prefix sum, one ``16 x n`` multiplication and a priority encoder.

With ``streams=K > 1`` the loop is cut by ``K - 1`` pipeline registers (C-slow retiming) and
``K`` independent sessions (streams) take turns through it, one per clock: each stream
advances one character every ``K`` clocks, the core as a whole still one character per
clock, and the longest path between registers is about ``1/K`` of the loop::

    stream s, clock t:      char, state (ring position 0) -> section 0 -> register
    clock t + 1:            (ring position 1)             -> section 1 -> register
    ...
    clock t + K - 1:        (ring position K - 1)  -> section K - 1 -> char, state of s

Every register of the ring holds one stream's step in flight, with that stream's character,
state, LFSR and counters beside it (:data:`CUT_SITES` names where the loop can be cut).

Everything here is exactly :func:`clockprop.models.recurrent.generate`, bit for bit (with
``K`` streams: :func:`~clockprop.models.recurrent.generate_streams`).
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Fragment, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..core.errors import ClockpropError
from ..core.qformat import signed_width
from ..core.lfsr import LFSR_TAPS
from ..models.recurrent import SAMPLE_PRECISION, IntElman, IntSioConv
from .arith import AdderTree, Cost, csd_digits
from .dense import activation

__all__ = ["RecurrentCore", "MAX_VOCAB", "CUT_SITES", "DEFAULT_CUTS", "prompt_layout",
           "output_layout", "lfsr_draw_masks", "check_core"]

MAX_VOCAB = 256             # character ids are at most 8 bits (one byte on a link)

# Where the loop of a C-slow core (``streams > 1``) can take a register, in the order of the
# path: the middle of the hidden layer's adder trees (SioConv: after the decay and the input
# columns), after the activations, the middle of the readout's adder trees, after the logits,
# and (sampling only) after the sampler's prefix sums, before its multiplication.
CUT_SITES = ("hidden", "act", "readout", "logit", "sample")
# The cuts of ``K`` streams, argmax and sampled: the hidden layer and the readout first (the
# longest parts of the argmax loop), the sampler's multiplication next. Chosen by the path,
# not by measuring other cut sets; bench/recurrent.py --streams measured these
# (reports/bench/recurrent.md).
DEFAULT_CUTS = {
    "argmax": {1: (), 2: ("act",), 3: ("act", "logit"), 4: ("hidden", "act", "logit"),
               5: ("hidden", "act", "readout", "logit")},
    "sampled": {1: (), 2: ("logit",), 3: ("act", "logit"), 4: ("act", "logit", "sample"),
                5: ("hidden", "act", "logit", "sample"),
                6: ("hidden", "act", "readout", "logit", "sample")},
}


def prompt_layout(n_vocab, count_bits, streams=1):
    """Payload of the prompt stream: a character, the end-of-prompt flag, the length (and,
    with ``streams > 1``, the stream that the character belongs to)."""
    fields = {
        "char": unsigned(max(1, ceil_log2(n_vocab))),
        "last": unsigned(1),
        "count": unsigned(count_bits),
    }
    if streams > 1:
        fields["stream"] = unsigned(ceil_log2(streams))
    return data.StructLayout(fields)


def output_layout(n_vocab, streams):
    """Payload of the generated characters of a core with ``streams > 1``: id and stream."""
    return data.StructLayout({"char": unsigned(max(1, ceil_log2(n_vocab))),
                              "stream": unsigned(ceil_log2(streams))})


def lfsr_draw_masks(steps=16):
    """One draw of :class:`~clockprop.core.lfsr.Lfsr16` as a linear map over GF(2).

    Returns 16 masks: bit ``b`` of the state after ``steps`` steps is the XOR of the bits of
    the state before that are set in ``masks[b]``.
    """
    bits = [1 << b for b in range(16)]      # bit b of the state, as a mask of initial bits
    for _ in range(steps):
        out = bits[0]
        bits = bits[1:] + [0]
        for b in range(16):
            if (LFSR_TAPS >> b) & 1:
                bits[b] ^= out
    return bits


def check_core(model, *, max_vocab=MAX_VOCAB, lut_budget=None, cost=None, where=""):
    """Raise :class:`ClockpropError` unless ``model`` can become a core within the limits.

    ``cost`` is the core's :class:`Cost` estimate, compared with ``lut_budget`` (a board's
    LUT count) when both are given; ``where`` names the board in the message.
    """
    if not isinstance(model, (IntElman, IntSioConv)):
        raise ClockpropError(f"the recurrent core takes an integer recurrent model "
                             f"(IntElman or IntSioConv), got {type(model).__name__}")
    V = model.n_vocab
    if V > max_vocab:
        raise ClockpropError(f"the vocabulary has {V} characters; the recurrent core{where} "
                             f"takes at most {max_vocab}: train on a text with fewer "
                             f"distinct characters")
    if lut_budget is not None and cost is not None and cost.lut > lut_budget:
        raise ClockpropError(f"the recurrent core for {V} characters and {model.n_hidden} "
                             f"channels needs about {cost.lut} LUTs; {where.strip() or 'the'} "
                             f"board has {lut_budget}: use a smaller vocabulary (text), "
                             f"fewer hidden channels, or a larger board")


class RecurrentCore(wiring.Component):
    """Generate text one character per clock from an integer recurrent model.

    A *session* is a prompt followed by the characters generated from it. Prompt characters
    arrive on ``i``, one per clock at most; the one with ``last`` set ends the prompt and
    carries ``count``, the number of characters to generate. The core then emits ``count``
    characters on ``o``, each chosen from the logits of the step before and fed back as the
    next input. The state (and the LFSR, reseeded with ``seed``) is cleared at the end of
    every session, so each session equals one call of
    ``clockprop.models.recurrent.generate(model, vocab, prompt, count, shift, seed)``.

    With ``streams=K > 1`` the core runs ``K`` such sessions at once, one per *stream*,
    interleaved through a loop cut by ``K - 1`` registers (C-slow): stream ``s`` has its own
    state, LFSR (seeded with ``seed[s]``) and counters, and takes its turn every ``K``
    clocks, when ``turn == s``; each stream equals
    ``generate_streams(model, vocab, prompts, counts, shift, seeds)[s]``.

    Parameters
    ----------
    model : IntElman or IntSioConv
        The integer golden model (weights become constants of the gateware).
    shift : int or None
        ``None``: the next character is the argmax of the logits (lowest index on ties).
        An integer ``T``: sample with temperature shift ``T`` (``models.recurrent.sample_index``).
    seed : int, or a sequence of ``streams`` ints
        LFSR seed in ``[1, 65535]`` (sampling only); one int seeds every stream alike.
    count_bits : int
        Width of ``count``: at most ``2**count_bits - 1`` characters per session.
    max_vocab : int
        Largest vocabulary accepted (a board may ask for less).
    streams : int
        ``K``, the number of interleaved streams (1: the one-clock loop).
    cuts : tuple of str or None
        The ``K - 1`` places of :data:`CUT_SITES` that take the loop's registers, in path
        order (``None``: :data:`DEFAULT_CUTS`; ``"sample"`` only when sampling).

    Members
    -------
    i : ``In(stream.Signature(prompt_layout(V, count_bits, K)))``
        Prompt characters ``char`` (ids ``0 .. V-1``); ``last`` marks the final one and
        ``count`` (read with it) says how many characters to generate (0: none). With
        ``K > 1``, ``stream`` says whose character it is: ``i.ready`` is high only on that
        stream's turn (``turn == stream``) while the stream is not generating.
    o : ``Out(stream.Signature(unsigned(ceil_log2(V))))``, with ``K > 1``
        ``Out(stream.Signature(output_layout(V, K)))``
        Generated character ids (and, with ``K > 1``, the stream of each: ``turn``).
    busy : ``Out(K)``
        Bit ``s`` is high from stream ``s``'s first prompt character until its session's
        last character is taken.
    predict : ``Out(unsigned(ceil_log2(V)))``
        The choice the core makes from the character now on its input (combinational): for
        a prompt character, the model's prediction of the next character (argmax, or a
        sample with the pending LFSR draw, which only advances when a character is emitted).
        Reading it at every prompt character scores the gateware on a text. With ``K > 1``:
        the choice of the step that ends this clock, of the character taken ``K - 1``
        clocks before.
    turn : ``Out(range(K))``, only with ``K > 1``
        The stream whose character ``i`` can take, and ``o`` offers, this clock; it counts
        ``0, 1, .., K - 1, 0, ..`` from reset, one step per clock.

    Latency and throughput: one prompt character per clock while ``o`` is idle (``i.ready``
    is low while the core generates); the first generated character is valid the clock after
    the last prompt character is accepted, then one character per clock while ``o.ready``
    is high (backpressure holds the state). The step from the state register back to it is
    combinational (hidden layer, readout and output stage in one clock), so this is also
    the critical path that sets fmax. With ``K > 1`` every stream takes one character (prompt
    or generated) every ``K`` clocks, on its turn: its first generated character comes
    ``K`` clocks after its last prompt character, and the core emits one character per clock
    while every stream generates; the loop's longest path is about ``1/K`` as long. A turn
    whose character is not offered, or not taken (``o.ready`` low), holds that stream's
    state and lets the others go on. ``self.latency`` and ``self.interval`` are ``K``.
    ``self.cost`` holds the LUT/FF tally after elaboration (:meth:`estimate`).
    """

    def __init__(self, model, *, shift=None, seed=0xACE1, count_bits=16,
                 max_vocab=MAX_VOCAB, streams=1, cuts=None):
        try:
            cuts, seeds = self._check(model, shift, seed, count_bits, max_vocab, streams, cuts)
        except ClockpropError:
            self._MustUse__silence = True      # never elaborated: no "unused" warning
            raise
        self.model = model
        self.shift = shift
        self.seed = seed
        self.seeds = seeds
        self.count_bits = count_bits
        self.streams = streams
        self.cuts = cuts
        self.n_vocab = model.n_vocab
        self.id_bits = max(1, ceil_log2(model.n_vocab))
        self.sio = isinstance(model, IntSioConv)
        self.logit_width = model.widths()["logit"]
        self.latency = streams      # last prompt character accepted -> first character out
        self.interval = streams     # clocks per generated character of one stream
        self.cost = Cost()
        self._stage = 0             # ring position of the logic being built (streams > 1)
        ports = {
            "i": In(stream.Signature(prompt_layout(model.n_vocab, count_bits, streams))),
            "o": Out(stream.Signature(unsigned(self.id_bits) if streams == 1 else
                                      output_layout(model.n_vocab, streams))),
            "busy": Out(streams),
            "predict": Out(unsigned(self.id_bits)),
        }
        if streams > 1:
            ports["turn"] = Out(range(streams))
        super().__init__(ports)

    @staticmethod
    def _check(model, shift, seed, count_bits, max_vocab, streams, cuts):
        """The parameters checked; returns ``(cuts, seeds)``."""
        check_core(model, max_vocab=max_vocab)
        if shift is not None and (not isinstance(shift, int) or isinstance(shift, bool)
                                  or not 0 <= shift <= 62):
            raise ClockpropError(f"the temperature shift must be an integer in [0, 62], "
                                 f"got {shift!r}")
        mode = "argmax" if shift is None else "sampled"
        limit = max(DEFAULT_CUTS[mode])
        if not isinstance(streams, int) or isinstance(streams, bool) or \
                not 1 <= streams <= limit:
            raise ClockpropError(f"streams must be an integer in [1, {limit}] ({mode}: the "
                                 f"loop has {limit - 1} places for a register), got "
                                 f"{streams!r}")
        seeds = (seed,) * streams if isinstance(seed, int) else tuple(seed)
        if len(seeds) != streams or not all(isinstance(x, int) and 1 <= x <= 0xFFFF
                                            for x in seeds):
            raise ClockpropError(f"the LFSR seed must be an integer in [1, 65535] (or one "
                                 f"per stream, {streams}), got {seed!r} (0 would lock the "
                                 f"LFSR)")
        if not isinstance(count_bits, int) or not 1 <= count_bits <= 32:
            raise ClockpropError(f"count_bits must be in [1, 32], got {count_bits!r}")
        cuts = DEFAULT_CUTS[mode][streams] if cuts is None else tuple(cuts)
        sites = [c for c in CUT_SITES if c != "sample" or shift is not None]
        if len(cuts) != streams - 1 or not all(c in sites for c in cuts) or \
                list(cuts) != sorted(set(cuts), key=sites.index):
            raise ClockpropError(f"{streams} streams need {streams - 1} of the cuts "
                                 f"{', '.join(sites)} (distinct, in that order); got "
                                 f"{cuts!r}")
        return cuts, seeds

    def estimate(self):
        """LUT/FF tally of the elaborated design (see :class:`hw.arith.Cost`)."""
        Fragment.get(self, None)
        return self.cost

    # -- elaboration ------------------------------------------------------------------------

    def elaborate(self, platform):
        if self.streams > 1:
            return self._elaborate_ring()
        m = Module()
        self.cost = cost = Cost()
        self._stage = 0

        gen = Signal()                                  # emitting characters
        started = Signal()                              # prompt under way
        remaining = Signal(self.count_bits)
        char = Signal(self.id_bits)                     # the character on o, fed back
        lfsr = Signal(16, init=self.seeds[0])
        cost.ff += 2 + self.count_bits + self.id_bits + (16 if self.shift is not None else 0)

        feed = Signal(self.id_bits)
        step = Signal()
        m.d.comb += [
            self.i.ready.eq(~gen),
            self.o.valid.eq(gen),
            self.o.payload.eq(char),
            self.busy.eq(gen | started),
            feed.eq(Mux(gen, char, self.i.payload.char)),
            step.eq(Mux(gen, self.o.ready, self.i.valid)),
        ]
        cost.lut += self.id_bits + 2

        if self.sio:
            state, new_state, acts = self._sioconv(m, feed)
        else:
            state, new_state, acts = self._elman(m, feed)
        logits = self._readout(m, acts)
        if self.shift is None:
            pick = self._argmax(m, logits)[1]
            draw, reseed = [], []
        else:
            u = self._draw(m, lfsr)
            pick = self._sample(m, logits, u)
            draw, reseed = [lfsr.eq(u)], [lfsr.eq(self.seeds[0])]

        m.d.comb += self.predict.eq(pick)

        last = self.i.payload.last
        count = self.i.payload.count
        ending = Mux(gen, remaining == 1, last & (count == 0))
        with m.If(step):
            with m.If(ending):
                # The session is over: clear the state and reseed the LFSR for the next one.
                m.d.sync += [gen.eq(0), started.eq(0), *reseed]
                if state is not None:
                    m.d.sync += state.eq(0)
            with m.Else():
                if state is not None:
                    m.d.sync += state.eq(new_state)
                with m.If(gen | last):
                    m.d.sync += [char.eq(pick), *draw]
                with m.If(gen):
                    m.d.sync += remaining.eq(remaining - 1)
                with m.Elif(last):
                    m.d.sync += [gen.eq(1), remaining.eq(count)]
                with m.Else():
                    m.d.sync += started.eq(1)
        cost.lut += self.count_bits + 4
        return m

    # -- the C-slow ring (streams > 1) -------------------------------------------------------

    def _cut(self, m, site, values, name):
        """``values`` (a list) registered into the next ring position if ``site`` is one of
        the core's cuts, else ``values`` themselves."""
        if site not in self.cuts:
            return values
        self._stage += 1
        return self._register(m, values, name)

    def _register(self, m, values, name):
        """``values`` (a list) registered, without reset (data of a ring position)."""
        regs = []
        for k, v in enumerate(values):
            reg = Signal.like(v, name=f"{name}{k}_r", reset_less=True)
            m.d.sync += reg.eq(v)
            self.cost.ff += len(reg)
            regs.append(reg)
        return regs

    def _delay(self, m, value, stages, name):
        """``value`` delayed by ``stages`` ring registers."""
        for k in range(stages):
            reg = Signal.like(value, name=f"{name}_d{k}", reset_less=True)
            m.d.sync += reg.eq(value)
            self.cost.ff += len(reg)
            value = reg
        return value

    def _elaborate_ring(self):
        """``K`` streams through a loop of ``K`` registers: ring position 0 holds the stream
        whose turn it is (``turn``), and every clock each position moves on by one. The
        character, state, LFSR and counters of the stream at position ``p`` ride along; the
        counters are updated as a step leaves position 0, the character, state and LFSR as
        it leaves position ``K - 1`` (the step's result) for position 0 again."""
        m = Module()
        self.cost = Cost()
        self._stage = 0
        r = self._ring_signals()
        self._ring_turn(m, r)
        self._ring_port(m, r)
        self._ring_step(m, r)
        self._ring_counters(m, r)
        self._ring_pass(m, r)
        self._ring_result(m, r)
        if r.state is not None:
            self._ring_state(m, r)
        self._ring_busy(m, r)
        return m

    def _ring_signals(self):
        """The ring's signals, shared by the parts below: ``turn``, the stream context at
        every ring position, and position 0's ``feed``, ``step`` and ``mine``."""
        K, sampled = self.streams, self.shift is not None
        r = SimpleNamespace(K=K, sampled=sampled, turn=Signal(range(K), name="turn"))

        # The stream context at every ring position p (the stream turn - p mod K).
        def context(p):
            return SimpleNamespace(
                gen=Signal(name=f"gen_p{p}"), started=Signal(name=f"started_p{p}"),
                remaining=Signal(self.count_bits, name=f"remaining_p{p}"),
                char=Signal(self.id_bits, name=f"char_p{p}"),
                lfsr=Signal(16, init=self.seeds[-p % K], name=f"lfsr_p{p}") if sampled
                else None,
                commit=Signal(name=f"commit_p{p}"), clear=Signal(name=f"clear_p{p}"),
                take=Signal(name=f"take_p{p}"))
        r.ring = [context(p) for p in range(K)]
        per = 2 + self.count_bits + self.id_bits + 16 * sampled
        self.cost.ff += K * per + 3 * (K - 1) + len(r.turn)
        r.head, r.tail = r.ring[0], r.ring[-1]
        r.feed = Signal(self.id_bits, name="feed")
        r.step = Signal(name="step")
        r.mine = Signal(name="mine")
        return r

    def _ring_turn(self, m, r):
        """``turn``: the stream at ring position 0, counting ``0 .. K - 1`` round."""
        m.d.sync += r.turn.eq(Mux(r.turn == r.K - 1, 0, r.turn + 1))
        m.d.comb += self.turn.eq(r.turn)

    def _ring_port(self, m, r):
        """Position 0: this stream's character in (prompt) or out (generated): ``i.ready``,
        ``o``, and the step's input ``feed`` and its ``step``."""
        i, o, head = self.i, self.o, r.head
        m.d.comb += [
            r.mine.eq(i.payload.stream == r.turn),
            i.ready.eq(~head.gen & r.mine),
            o.valid.eq(head.gen),
            o.payload.char.eq(head.char),
            o.payload.stream.eq(r.turn),
            r.feed.eq(Mux(head.gen, head.char, i.payload.char)),
            r.step.eq(Mux(head.gen, o.ready, i.valid & r.mine)),
        ]
        self.cost.lut += self.id_bits + 4 + len(r.turn)

    def _ring_step(self, m, r):
        """The step, cut by the ring's registers: hidden layer, readout and the choice of
        the next character (``predict``); adds ``state``, ``new_state`` (at ring position
        ``new_state_stage``), ``pick`` and the LFSR draw ``u`` to ``r``."""
        if self.sio:
            r.state, r.new_state, acts = self._sioconv(m, r.feed)
        else:
            r.state, r.new_state, acts = self._elman(m, r.feed)
        r.new_state_stage = self._new_state_stage
        acts = self._cut(m, "act", acts, "act")
        logits = self._readout(m, acts)
        logits = self._cut(m, "logit", logits, "logit")
        if self.shift is None:
            r.pick, r.u = self._argmax(m, logits)[1], None
        else:
            r.u = self._draw(m, r.tail.lfsr)
            r.pick = self._sample(m, logits, r.u)
        assert self._stage == r.K - 1
        m.d.comb += self.predict.eq(r.pick)

    def _ring_counters(self, m, r):
        """Position 1: the counters of the stream leaving position 0, as K = 1 updates them,
        and the step's ``commit``, ``clear`` and ``take``."""
        head, nxt, step = r.head, r.ring[1], r.step
        last, count = self.i.payload.last, self.i.payload.count
        ending = Mux(head.gen, head.remaining == 1, last & (count == 0))
        m.d.sync += [nxt.gen.eq(head.gen), nxt.started.eq(head.started),
                     nxt.remaining.eq(head.remaining), nxt.char.eq(head.char),
                     nxt.commit.eq(step), nxt.clear.eq(step & ending),
                     nxt.take.eq(step & ~ending & (head.gen | last))]
        with m.If(step):
            with m.If(ending):
                m.d.sync += [nxt.gen.eq(0), nxt.started.eq(0)]
            with m.Elif(head.gen):
                m.d.sync += nxt.remaining.eq(head.remaining - 1)
            with m.Elif(last):
                m.d.sync += [nxt.gen.eq(1), nxt.remaining.eq(count)]
            with m.Else():
                m.d.sync += nxt.started.eq(1)
        self.cost.lut += self.count_bits + 6
        if r.sampled:
            m.d.sync += nxt.lfsr.eq(head.lfsr)

    def _ring_pass(self, m, r):
        """Positions 2 .. K - 1: positions 1 .. K - 2 pass everything on."""
        for a, b in zip(r.ring[1:-1], r.ring[2:]):
            m.d.sync += [b.gen.eq(a.gen), b.started.eq(a.started),
                         b.remaining.eq(a.remaining), b.char.eq(a.char),
                         b.commit.eq(a.commit), b.clear.eq(a.clear), b.take.eq(a.take)]
            if r.sampled:
                m.d.sync += b.lfsr.eq(a.lfsr)

    def _ring_result(self, m, r):
        """Position K - 1 -> 0: the step's result (character and LFSR), or (no step) the
        stream as it was."""
        head, tail = r.head, r.tail
        m.d.sync += [head.gen.eq(tail.gen), head.started.eq(tail.started),
                     head.remaining.eq(tail.remaining),
                     head.char.eq(Mux(tail.take, r.pick, tail.char))]
        self.cost.lut += self.id_bits
        if r.sampled:
            # The seed of the stream at position K - 1: turn + 1 (mod K).
            seed = Signal(16, name="tail_seed")
            with m.Switch(r.turn):
                for s in range(r.K):
                    with m.Case(s):
                        m.d.comb += seed.eq(self.seeds[(s + 1) % r.K])
            m.d.sync += head.lfsr.eq(Mux(tail.clear, seed, Mux(tail.take, r.u, tail.lfsr)))
            self.cost.lut += 2 * 16

    def _ring_state(self, m, r):
        """The recurrent state register, written as a step leaves position ``K - 1``: zero
        at the end of a session, the new state of a step that commits, else the old state."""
        K, state = r.K, r.state
        # The old state rides along with the step, for a step that does not happen.
        states = [state]
        for p in range(1, K):
            s = Signal.like(state, name=f"state_p{p}")
            m.d.sync += s.eq(states[-1])
            states.append(s)
        self.cost.ff += (K - 1) * len(state)
        new_state = self._delay(m, r.new_state, K - 1 - r.new_state_stage, "new_state")
        with m.If(r.tail.clear):
            m.d.sync += state.eq(0)
        with m.Elif(r.tail.commit):
            m.d.sync += state.eq(new_state)
        with m.Else():
            m.d.sync += state.eq(states[-1])
        self.cost.lut += len(state)

    def _ring_busy(self, m, r):
        """``busy``: stream ``s`` is at position ``(turn - s) mod K``."""
        for s in range(r.K):
            at = [(r.turn == (s + p) % r.K) & (c.gen | c.started) for p, c in enumerate(r.ring)]
            m.d.comb += self.busy[s].eq(Cat(*at).any())
        self.cost.lut += r.K

    def _tree(self, m, site, n_terms):
        """An :class:`AdderTree` for sums of up to ``n_terms`` terms, and its register levels:
        with ``site`` a cut, one register level halfway up the deepest tree."""
        if site not in self.cuts:
            return AdderTree(m, None, 0, self.cost), 0
        self._stage += 1
        depth = max(n_terms - 1, 0).bit_length()
        return AdderTree(m, Const(1), max(1, -(-depth // 2)), self.cost), 1

    def _const_mux(self, m, sel, consts, name):
        """A signal that is ``consts[sel]``: a ROM of ``len(consts)`` constants, in LUTs."""
        width = signed_width(min(consts), max(consts))
        sig = Signal(signed(width), name=name)
        with m.Switch(sel):
            for v, c in enumerate(consts):
                with m.Case(v):
                    m.d.comb += sig.eq(c)
        # Only the bits that differ between characters cost LUTs: one LUT4 per such bit and
        # every (about) 12 characters.
        mask = (1 << width) - 1
        varying = 0
        for c in consts:
            varying |= (c & mask) ^ (consts[0] & mask)
        self.cost.lut += bin(varying).count("1") * max(1, -(-len(consts) // 12))
        return sig

    def _elman(self, m, feed):
        model, fmt = self.model, self.model.fmt
        V, H, A = model.n_vocab, model.n_hidden, fmt.a_max
        w_in, w_ctx = model.w[:, :V], model.w[:, V:]
        state = None
        if model.context:
            state = Signal(data.ArrayLayout(unsigned(fmt.act_bits), H), name="context")
            self.cost.ff += fmt.act_bits * H
        terms = [1 + (sum(len(csd_digits(w)) for w in w_ctx[j]) if state is not None else 0)
                 for j in range(H)]
        tree, levels = self._tree(m, "hidden", max(terms))
        self._new_state_stage = levels
        acc_width = model.widths()["acc"]
        acts = []
        for j in range(H):
            base = self._const_mux(m, feed, [A * int(w_in[j, v]) + int(model.b[j])
                                             for v in range(V)], f"in{j}")
            leaves = []
            if state is not None:
                leaves = [(state[i] << shift, sign) for i in range(H)
                          for shift, sign in csd_digits(w_ctx[j, i])]
            h = tree.sum(leaves + [(base, +1)], 0, f"h{j}", levels)
            acc = Signal(signed(acc_width), name=f"acc{j}")
            m.d.comb += acc.eq(h)
            acts.append(activation(m, acc, model.frac, fmt, self.cost, f"act{j}"))
        new_state = Cat(*acts) if state is not None else None
        return state, new_state, acts

    def _sioconv(self, m, feed):
        model, fmt = self.model, self.model.fmt
        V, H, A, s = model.n_vocab, model.n_hidden, fmt.a_max, model.state_frac
        widths = model.widths()
        sw, sum_w = widths["state"], widths["sum"]
        cut = "hidden" in self.cuts         # after the decay and the input columns
        state = None
        if model.context:
            state = Signal(data.ArrayLayout(signed(sw), H), name="state")
            self.cost.ff += sw * H
        news, acts = [], []
        for j in range(H):
            z = [(A * int(model.w_in[j, v])) << s for v in range(V)]
            bias = int(model.b[j]) << s
            zs = self._const_mux(m, feed, z, f"z{j}")
            zbs = self._const_mux(m, feed, [c + bias for c in z], f"zb{j}")
            c_new = Signal(signed(sw), name=f"c{j}")
            total = Signal(signed(sum_w), name=f"sum{j}")
            if state is not None:
                c = state[j]
                decayed = Signal(signed(sw), name=f"decay{j}")
                k = int(model.shifts[j])
                # |C| stays within the state width for any input (IntSioConv.state_bound), so
                # neither the decay nor the new state needs saturation logic.
                m.d.comb += decayed.eq(c - (c >> k))
                if cut:
                    decayed, zs, zbs = self._register(m, [decayed, zs, zbs], f"hidden{j}_")
                m.d.comb += [
                    c_new.eq(decayed + zs),
                    total.eq(decayed + zbs),
                ]
                self.cost.lut += 3 * sw
            else:
                if cut:
                    zs, zbs = self._register(m, [zs, zbs], f"hidden{j}_")
                m.d.comb += [c_new.eq(zs), total.eq(zbs)]
            news.append(c_new)
            acts.append(activation(m, total, model.frac + s, fmt, self.cost, f"act{j}"))
        self._stage += cut
        self._new_state_stage = int(cut)
        new_state = Cat(*news) if state is not None else None
        return state, new_state, acts

    def _readout(self, m, acts):
        model = self.model
        terms = [sum(len(csd_digits(w)) for w in model.w_out[k]) + int(model.b_out[k] != 0)
                 for k in range(model.n_vocab)]
        tree, levels = self._tree(m, "readout", max(terms))
        logits = []
        for k in range(model.n_vocab):
            leaves = [(acts[j] << shift, sign) for j in range(model.n_hidden)
                      for shift, sign in csd_digits(model.w_out[k, j])]
            value = tree.sum(leaves, int(model.b_out[k]), f"logit{k}", levels)
            logit = Signal(signed(self.logit_width), name=f"logit{k}")
            m.d.comb += logit.eq(value)
            logits.append(logit)
        return logits

    def _argmax(self, m, logits):
        """``(max, index)`` of ``logits``; the first maximum, as ``np.argmax``."""
        nodes = [(v, Const(k, unsigned(self.id_bits))) for k, v in enumerate(logits)]
        while len(nodes) > 1:
            paired = []
            for k in range(0, len(nodes) - 1, 2):
                (va, ia), (vb, ib) = nodes[k], nodes[k + 1]
                take_b = vb > va        # the left node holds lower indices: ties go left
                paired.append((Mux(take_b, vb, va), Mux(take_b, ib, ia)))
                self.cost.lut += 2 * len(va) + self.id_bits
            if len(nodes) % 2:
                paired.append(nodes[-1])
            nodes = paired
        best = Signal(signed(self.logit_width), name="best")
        index = Signal(unsigned(self.id_bits), name="best_index")
        m.d.comb += [best.eq(nodes[0][0]), index.eq(nodes[0][1])]
        return best, index

    def _draw(self, m, lfsr):
        """The LFSR state after 16 steps (one draw), as XORs of the current state's bits."""
        u = Signal(16, name="draw")
        for b, mask in enumerate(lfsr_draw_masks()):
            taps = [lfsr[i] for i in range(16) if (mask >> i) & 1]
            m.d.comb += u[b].eq(Cat(*taps).xor())
            self.cost.lut += max(1, -(-(len(taps) - 1) // 3))
        return u

    def _sample(self, m, logits, u):
        """``models.recurrent.sample_index``: weights, prefix sums, ``r = (u * S) >> 16``, pick."""
        V, P = self.n_vocab, SAMPLE_PRECISION
        best, _ = self._argmax(m, logits)
        cum_w = P + 1 + ceil_log2(V)            # the prefix sums are at most V << P
        weights = []
        for i, logit in enumerate(logits):
            diff = Signal(unsigned(self.logit_width + 1), name=f"gap{i}")
            d = Signal(unsigned(max(1, self.logit_width + 1 - self.shift)), name=f"d{i}")
            w = Signal(unsigned(P + 1), name=f"w{i}")
            m.d.comb += [
                diff.eq(best - logit),
                d.eq(diff >> self.shift),
                w.eq(Const(1 << P, unsigned(P + 1)) >> d),     # 0 once d > P
            ]
            self.cost.lut += len(diff) + 2 * (P + 1)
            weights.append(w)
        # Sklansky parallel prefix: ceil(log2 V) levels of adders.
        cum = list(weights)
        span = 1
        while span < V:
            nxt = list(cum)
            for i in range(V):
                if (i // span) % 2:
                    total = Signal(unsigned(cum_w), name=f"cum{span}_{i}")
                    m.d.comb += total.eq(cum[(i // span) * span - 1] + cum[i])
                    self.cost.lut += cum_w
                    nxt[i] = total
            cum = nxt
            span *= 2
        cum = self._cut(m, "sample", cum, "cum")
        product = Signal(unsigned(16 + cum_w), name="u_times_s")
        r = Signal(unsigned(cum_w), name="r")
        m.d.comb += [product.eq(u * cum[-1]), r.eq(product >> 16)]
        self.cost.lut += 16 * cum_w                     # an array multiplier, in LUTs
        pick = Signal(unsigned(self.id_bits), name="pick")
        m.d.comb += pick.eq(V - 1)
        for i in reversed(range(V)):                    # the last assignment wins: lowest i
            with m.If(cum[i] > r):
                m.d.comb += pick.eq(i)
            self.cost.lut += cum_w + self.id_bits
        return pick
