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

Everything here is exactly :func:`clockprop.models.recurrent.generate`, bit for bit.
"""

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

__all__ = ["RecurrentCore", "MAX_VOCAB", "prompt_layout", "lfsr_draw_masks", "check_core"]

MAX_VOCAB = 256             # character ids are at most 8 bits (one byte on a link)


def prompt_layout(n_vocab, count_bits):
    """Payload of the prompt stream: a character, the end-of-prompt flag, the length."""
    return data.StructLayout({
        "char": unsigned(max(1, ceil_log2(n_vocab))),
        "last": unsigned(1),
        "count": unsigned(count_bits),
    })


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

    Parameters
    ----------
    model : IntElman or IntSioConv
        The integer golden model (weights become constants of the gateware).
    shift : int or None
        ``None``: the next character is the argmax of the logits (lowest index on ties).
        An integer ``T``: sample with temperature shift ``T`` (``models.recurrent.sample_index``).
    seed : int
        LFSR seed in ``[1, 65535]`` (sampling only).
    count_bits : int
        Width of ``count``: at most ``2**count_bits - 1`` characters per session.
    max_vocab : int
        Largest vocabulary accepted (a board may ask for less).

    Members
    -------
    i : ``In(stream.Signature(prompt_layout(V, count_bits)))``
        Prompt characters ``char`` (ids ``0 .. V-1``); ``last`` marks the final one and
        ``count`` (read with it) says how many characters to generate (0: none).
    o : ``Out(stream.Signature(unsigned(ceil_log2(V))))``
        Generated character ids.
    busy : ``Out(1)``
        High from the first prompt character until the session's last character is taken.
    predict : ``Out(unsigned(ceil_log2(V)))``
        The choice the core makes from the character now on its input (combinational): for
        a prompt character, the model's prediction of the next character (argmax, or a
        sample with the pending LFSR draw, which only advances when a character is emitted).
        Reading it at every prompt character scores the gateware on a text.

    Latency and throughput: one prompt character per clock while ``o`` is idle (``i.ready``
    is low while the core generates); the first generated character is valid the clock after
    the last prompt character is accepted, then one character per clock while ``o.ready``
    is high (backpressure holds the state). The step from the state register back to it is
    combinational (hidden layer, readout and output stage in one clock), so this is also
    the critical path that sets fmax. ``self.cost`` holds the LUT/FF tally after
    elaboration (:meth:`estimate`).
    """

    def __init__(self, model, *, shift=None, seed=0xACE1, count_bits=16,
                 max_vocab=MAX_VOCAB):
        check_core(model, max_vocab=max_vocab)
        if shift is not None and (not isinstance(shift, int) or isinstance(shift, bool)
                                  or not 0 <= shift <= 62):
            raise ClockpropError(f"the temperature shift must be an integer in [0, 62], "
                                 f"got {shift!r}")
        if not isinstance(seed, int) or not 1 <= seed <= 0xFFFF:
            raise ClockpropError(f"the LFSR seed must be an integer in [1, 65535], got "
                                 f"{seed!r} (0 would lock the LFSR)")
        if not isinstance(count_bits, int) or not 1 <= count_bits <= 32:
            raise ClockpropError(f"count_bits must be in [1, 32], got {count_bits!r}")
        self.model = model
        self.shift = shift
        self.seed = seed
        self.count_bits = count_bits
        self.n_vocab = model.n_vocab
        self.id_bits = max(1, ceil_log2(model.n_vocab))
        self.sio = isinstance(model, IntSioConv)
        self.logit_width = model.widths()["logit"]
        self.latency = 1            # last prompt character accepted -> first character out
        self.interval = 1           # clocks per generated character
        self.cost = Cost()
        super().__init__({
            "i": In(stream.Signature(prompt_layout(model.n_vocab, count_bits))),
            "o": Out(stream.Signature(unsigned(self.id_bits))),
            "busy": Out(1),
            "predict": Out(unsigned(self.id_bits)),
        })

    def estimate(self):
        """LUT/FF tally of the elaborated design (see :class:`hw.arith.Cost`)."""
        Fragment.get(self, None)
        return self.cost

    # -- elaboration ------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        self.cost = cost = Cost()

        gen = Signal()                                  # emitting characters
        started = Signal()                              # prompt under way
        remaining = Signal(self.count_bits)
        char = Signal(self.id_bits)                     # the character on o, fed back
        lfsr = Signal(16, init=self.seed)
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
            draw, reseed = [lfsr.eq(u)], [lfsr.eq(self.seed)]

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
        tree = AdderTree(m, None, 0, self.cost)
        acc_width = model.widths()["acc"]
        acts = []
        for j in range(H):
            base = self._const_mux(m, feed, [A * int(w_in[j, v]) + int(model.b[j])
                                             for v in range(V)], f"in{j}")
            leaves = []
            if state is not None:
                leaves = [(state[i] << shift, sign) for i in range(H)
                          for shift, sign in csd_digits(w_ctx[j, i])]
            h = tree.sum(leaves + [(base, +1)], 0, f"h{j}", 0)
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
                m.d.comb += [
                    decayed.eq(c - (c >> k)),
                    c_new.eq(decayed + zs),
                    total.eq(decayed + zbs),
                ]
                self.cost.lut += 3 * sw
            else:
                m.d.comb += [c_new.eq(zs), total.eq(zbs)]
            news.append(c_new)
            acts.append(activation(m, total, model.frac + s, fmt, self.cost, f"act{j}"))
        new_state = Cat(*news) if state is not None else None
        return state, new_state, acts

    def _readout(self, m, acts):
        model = self.model
        tree = AdderTree(m, None, 0, self.cost)
        logits = []
        for k in range(model.n_vocab):
            leaves = [(acts[j] << shift, sign) for j in range(model.n_hidden)
                      for shift, sign in csd_digits(model.w_out[k, j])]
            value = tree.sum(leaves, int(model.b_out[k]), f"logit{k}", 0)
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
