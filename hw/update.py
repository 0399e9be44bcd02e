"""A network that learns in the fabric: forward pass, error, and every weight updated at once.

The arithmetic is :mod:`clockprop.sw.inttrain`'s, bit for bit: after any number of training
samples the weight registers equal :class:`IntTrainer`'s weights.
"""

from amaranth.hdl import Array, Cat, Const, Fragment, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..sw.inttrain import LFSR_BITS, lfsr_offsets
from ..sw.qformat import signed_width
from ..sw.recurrent import LFSR_TAPS
from .arith import AdderTree, Cost

__all__ = ["TrainableNet", "sample_layout", "result_layout"]


def sample_layout(n_in, n_classes, act_bits):
    """Payload of a sample: inputs, label, and whether to train on it."""
    return data.StructLayout({
        "x": data.ArrayLayout(unsigned(act_bits), n_in),
        "label": unsigned(max(1, ceil_log2(n_classes))),
        "train": unsigned(1),
    })


def result_layout(logit_width, n_classes):
    """Payload of a result: the predicted class and the logits (before the sample's update)."""
    return data.StructLayout({
        "cls": unsigned(max(1, ceil_log2(n_classes))),
        "logits": data.ArrayLayout(signed(logit_width), n_classes),
    })


def _lfsr_draw(state):
    """The LFSR state after 16 Galois steps (:meth:`Lfsr16.draw`), as comb logic."""
    bits = [state[b] for b in range(LFSR_BITS)]
    for _ in range(LFSR_BITS):
        out = bits[0]
        bits = bits[1:] + [Const(0, 1)]
        bits = [b ^ out if (LFSR_TAPS >> n) & 1 else b for n, b in enumerate(bits)]
    return bits


class TrainableNet(wiring.Component):
    """The integer network of an :class:`sw.inttrain.IntTrainer`, with its learning rule.

    Weights live in registers (initialized to the trainer's current weights, the LFSR to its
    current state), so every weight of every layer can change in the same clock.

    Schedule: a sample is taken in clock 0; clock ``l + 1`` registers layer ``l``'s output
    (``L`` layers); in clock ``L + 1`` the result is offered on ``o`` and, in the clock it is
    taken, every weight is updated (if the sample has ``train`` set) while the next sample is
    taken. One sample every ``L + 1`` clocks, ``self.interval``; the forward pass of a sample
    always sees the weights left by the previous sample, exactly like
    :meth:`IntTrainer.step` called in order.

    Parameters
    ----------
    trainer : IntTrainer
        Shape, rule config, hidden signs/tags, initial weights and LFSR state.

    Members
    -------
    i : ``In(stream.Signature(sample_layout(...)))``
        ``x`` (activations), ``label``, ``train`` (0: inference only, no update).
    o : ``Out(stream.Signature(result_layout(...)))``
        One result per sample: ``cls`` and ``logits`` of the forward pass.
    weights : ``Out(ArrayLayout(signed(weight_bits), n_weights))``
        Every weight, layer by layer, each ``V_l`` row-major with the bias column last
        (``np.concatenate([v.ravel() for v in trainer.v])``). A read-back path for a board
        top (a serializer) and for the simulator.
    lfsr : ``Out(16)``
        The rounding LFSR's state.
    error : ``Out(1)``
        Sticky: a training sample came with a label ``>= n_classes`` (it was not trained on).
    """

    def __init__(self, trainer):
        self.trainer = trainer
        self.cfg = cfg = trainer.cfg
        self.fmt = fmt = trainer.fmt
        self.shape = list(trainer.shape)
        self.n_layers = L = len(self.shape) - 1
        self.n_classes = self.shape[-1]
        self.interval = L + 1
        self.latency = L + 1
        self.n_weights = sum(v.size for v in trainer.v)
        a, w = fmt.a_max, fmt.w_max
        n_last = self.shape[-2] + 1
        self.logit_width = signed_width(-a * w * n_last, a * w * n_last)
        self.cost = Cost()
        super().__init__({
            "i": In(stream.Signature(sample_layout(self.shape[0], self.n_classes,
                                                   fmt.act_bits))),
            "o": Out(stream.Signature(result_layout(self.logit_width, self.n_classes))),
            "weights": Out(data.ArrayLayout(signed(fmt.weight_bits), self.n_weights)),
            "lfsr": Out(LFSR_BITS, init=trainer.lfsr.state),
            "error": Out(1),
        })

    def estimate(self):
        """LUT4/FF tally of the whole unit (forward, error, update), from an elaboration."""
        Fragment.get(self, None)
        return self.cost

    def elaborate(self, platform):
        m = Module()
        self.cost = cost = Cost()
        cfg, fmt, tr, L = self.cfg, self.fmt, self.trainer, self.n_layers
        A, W, wb, ab = fmt.a_max, fmt.w_max, fmt.weight_bits, fmt.act_bits
        C = self.n_classes

        # -- state: weights, activations, control ---------------------------------------
        weights, flat = [], []
        for l, v in enumerate(tr.v):
            rows = [[Signal(signed(wb), name=f"w{l}_{j}_{i}", init=int(v[j, i]))
                     for i in range(v.shape[1])] for j in range(v.shape[0])]
            weights.append(rows)
            flat += [w for row in rows for w in row]
        m.d.comb += [self.weights[n].eq(w) for n, w in enumerate(flat)]
        cost.ff += wb * len(flat)
        acts = [Signal(data.ArrayLayout(unsigned(ab), n), name=f"a{l}")
                for l, n in enumerate(self.shape[:-1])]
        logits = Signal(data.ArrayLayout(signed(self.logit_width), C))
        label = Signal(self.i.payload.label.shape())
        train = Signal()
        phase = Signal(range(L + 2))
        cost.ff += sum(len(s.as_value()) for s in acts) + len(logits.as_value())
        cost.ff += len(label) + 1 + len(phase) + LFSR_BITS + 1

        out_valid = Signal()
        taken = Signal()
        m.d.comb += [out_valid.eq(phase == L + 1), taken.eq(out_valid & self.o.ready),
                     self.o.valid.eq(out_valid), self.i.ready.eq((phase == 0) | taken)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [acts[0].eq(self.i.payload.x), label.eq(self.i.payload.label),
                         train.eq(self.i.payload.train), phase.eq(1)]
        with m.Elif(taken):
            m.d.sync += phase.eq(0)
        with m.Elif((phase != 0) & (phase != L + 1)):
            m.d.sync += phase.eq(phase + 1)

        # -- forward: layer l is registered in clock l + 1 -------------------------------
        tree = AdderTree(m, None, 0, cost)
        for l in range(L):
            rows = weights[l]
            n_in = self.shape[l]
            hidden = l < L - 1
            rnd = (1 << (cfg.frac[l] - 1)) if hidden else 0
            for j, row in enumerate(rows):
                leaves = []
                for i in range(n_in):
                    for bit in range(ab):
                        leaves.append((Mux(acts[l][i][bit], row[i] << bit, 0), +1))
                        cost.lut += wb + bit
                leaves.append(((row[n_in] << ab) - row[n_in], +1))      # A * bias weight
                cost.lut += wb + ab
                h = tree.sum(leaves, rnd, f"h{l}_{j}", 0)
                if hidden:
                    shifted = h >> cfg.frac[l]
                    value = Mux(shifted < 0, 0, Mux(shifted > A, A, shifted))
                    cost.lut += ab + 2
                    with m.If(phase == l + 1):
                        m.d.sync += acts[l + 1][j].eq(value)
                else:
                    with m.If(phase == l + 1):
                        m.d.sync += logits[j].eq(h)

        # -- result: argmax of the logits (first maximum, as np.argmax) ------------------
        best, best_idx = logits[0], Const(0, self.o.payload.cls.shape())
        for c in range(1, C):
            better = logits[c] > best
            best = Mux(better, logits[c], best)
            best_idx = Mux(better, c, best_idx)
            cost.lut += 2 * self.logit_width + len(best_idx)
        m.d.comb += [self.o.payload.logits.eq(logits), self.o.payload.cls.eq(best_idx)]

        # -- error and deltas ------------------------------------------------------------
        emax = cfg.e_max
        e_shape = signed(signed_width(-emax, emax))
        target = cfg.target()
        err = []
        for c in range(C):
            diff = Mux(label == c, target, 0) - logits[c]
            q = diff >> cfg.e_shift
            e = Signal(e_shape, name=f"e{c}")
            m.d.comb += e.eq(Mux(q > emax, emax, Mux(q < -emax, -emax, q)))
            cost.lut += 2 * self.logit_width + len(e)
            err.append(e)
        deltas = []
        for l in range(L - 1):
            row = []
            for j in range(self.shape[l + 1]):
                a = acts[l + 1][j]
                gate = (a != 0) & (a != A)
                e = err[int(tr.tags[l][j])]
                d = Signal(e_shape, name=f"d{l}_{j}")
                m.d.comb += d.eq(Mux(gate, e if tr.signs[l][j] > 0 else -e, 0))
                cost.lut += 2 * len(e)
                row.append(d)
            deltas.append(row)
        deltas.append(err)

        # -- rounding: one LFSR draw per training sample ---------------------------------
        state = self.lfsr
        drawn = _lfsr_draw(state)
        label_ok = label < C
        update = Signal()
        m.d.comb += update.eq(taken & train & label_ok)
        with m.If(taken & train & ~label_ok):
            m.d.sync += self.error.eq(1)
        if cfg.rounding == "lfsr":
            with m.If(update):
                m.d.sync += [state[b].eq(drawn[b]) for b in range(LFSR_BITS)]
            cost.lut += LFSR_BITS

        # -- the update: every weight in the same clock ----------------------------------
        for l in range(L):
            n_in = self.shape[l]
            k = cfg.shift[l]
            offsets = lfsr_offsets(n_in, l)
            u_lo = (-emax * A) >> k
            u_hi = (emax * A + cfg.r_max(l)) >> k
            u_shape = signed(signed_width(u_lo, u_hi))
            columns = []
            for i in range(n_in + 1):
                ahat = acts[l][i] if i < n_in else Const(A, ab)
                if cfg.rounding == "lfsr":
                    r = [drawn[(offsets[i] + b) % LFSR_BITS] for b in range(k)]
                    r = Cat(*r) if r else Const(0, 1)
                else:
                    r = Const(cfg.r_const(l), max(1, k + 1))
                us = []
                for d in range(-emax, emax + 1):
                    u = Signal(u_shape, name=f"u{l}_{i}_{d + emax}")
                    m.d.comb += u.eq((ahat * d + r) >> k)
                    cost.lut += 0 if d == 0 else (ab + 2 + k)
                    us.append(u)
                columns.append(Array(us))
            for j, row in enumerate(weights[l]):
                sel = Signal(range(2 * emax + 1), name=f"sel{l}_{j}")
                m.d.comb += sel.eq(deltas[l][j] + emax)
                for i, w in enumerate(row):
                    s = w + columns[i][sel]
                    new = Mux(s > W, W, Mux(s < -W, -W, s))
                    # select u by the row's delta (AND-OR, two pairs per LUT4), add,
                    # clamp (compare + 2:1 mux)
                    cost.lut += emax * u_shape.width + (wb + 1) + wb + wb // 2
                    with m.If(update):
                        m.d.sync += w.eq(new)
        return m

