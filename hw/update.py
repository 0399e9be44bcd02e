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


def sample_layout(n_in, n_classes, act_bits, lr_bits=0):
    """Payload of a sample: inputs, label, whether to train on it, and (``lr_bits > 0``) the
    extra learning-rate shift ``lr``."""
    fields = {
        "x": data.ArrayLayout(unsigned(act_bits), n_in),
        "label": unsigned(max(1, ceil_log2(n_classes))),
        "train": unsigned(1),
    }
    if lr_bits:
        fields["lr"] = unsigned(lr_bits)
    return data.StructLayout(fields)


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
    current state), so every weight of every layer can change in the same clock. Absent
    weights of a sparse layer (config ``fan_in``) are the constant 0: no register, no logic.
    The forward pass reads ``F = V >> drop``, the top bits of each register (wiring only).

    Schedule: a sample is taken in clock 0; layer ``l`` takes ``P`` clocks, ``l P + 1 ..
    (l + 1) P``, and its last one registers the layer's output (``L`` layers); in clock
    ``L P + 1`` the result is offered on ``o`` and, in the clock it is taken, every weight is
    updated (if the sample has ``train`` set) while the next sample is taken. One sample every
    ``L P + 1`` clocks, ``self.interval``; the forward pass of a sample always sees the
    weights left by the previous sample, exactly like :meth:`IntTrainer.step` called in order.

    ``P = 1`` (``serial=False``): each product ``a * F`` is ``act_bits`` gated copies of ``F``
    in one adder tree per neuron. ``P = act_bits`` (``serial=True``): bit-serial activations,
    MSB first; clock ``t`` of a layer adds one bit plane, ``acc = 2 acc + sum_i a_i[b] F_i +
    F_bias`` (every bit of ``A`` is 1), so each weight costs one gated copy and one adder
    instead of ``act_bits`` of each; the same integer sum.

    Update: per layer, when every update is -1, 0 or +1 (``e_max * A <= 2**shift``;
    ``self.step_form``), each weight is an up/down counter with a stop at either clamp bound
    (an increment/decrement, two constant compares, an enable); otherwise the general form
    ``clamp(w + u)`` with ``u`` selected by the row's delta. The sample's ``lr`` (config
    ``anneal``) selects the column values ``u_i(d)`` computed at each shift ``k + lr``.

    Parameters
    ----------
    trainer : IntTrainer
        Shape, rule config, hidden signs/tags, masks, initial weights and LFSR state.
    serial : bool
        Bit-serial forward pass (see above).

    Members
    -------
    i : ``In(stream.Signature(sample_layout(...)))``
        ``x`` (activations), ``label``, ``train`` (0: inference only, no update), and with
        ``anneal > 0`` ``lr``, the sample's extra learning-rate shift.
    o : ``Out(stream.Signature(result_layout(...)))``
        One result per sample: ``cls`` and ``logits`` of the forward pass.
    weights : ``Out(ArrayLayout(signed(weight_bits), n_weights))``
        Every weight, layer by layer, each ``V_l`` row-major with the bias column last
        (``np.concatenate([v.ravel() for v in trainer.v])``). A read-back path for a board
        top (a serializer) and for the simulator.
    lfsr : ``Out(16)``
        The rounding LFSR's state.
    error : ``Out(1)``
        Sticky: a training sample came with a label ``>= n_classes`` or an ``lr > anneal``
        (it was not trained on).
    """

    def __init__(self, trainer, *, serial=False):
        self.trainer = trainer
        self.cfg = cfg = trainer.cfg
        self.fmt = fmt = trainer.fmt
        self.serial = bool(serial)
        self.shape = list(trainer.shape)
        self.n_layers = L = len(self.shape) - 1
        self.n_classes = self.shape[-1]
        self.planes = fmt.act_bits if self.serial else 1
        self.interval = L * self.planes + 1
        self.latency = self.interval
        self.n_weights = sum(v.size for v in trainer.v)
        a, w = fmt.a_max, cfg.f_max(L - 1)
        n_last = self.shape[-2] + 1
        self.logit_width = signed_width(-a * w * n_last, a * w * n_last)
        A = fmt.a_max
        # per layer: every update is -1, 0 or +1 (the weight is an up/down counter)
        self.step_form = [(-cfg.e_max * A) >> k >= -1 and
                          (cfg.e_max * A + cfg.r_max(l)) >> k <= 1
                          for l, k in enumerate(cfg.shift)]
        self.cost = Cost()
        self.lr_bits = cfg.anneal.bit_length()
        super().__init__({
            "i": In(stream.Signature(sample_layout(self.shape[0], self.n_classes,
                                                   fmt.act_bits, self.lr_bits))),
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
        A, wb, ab = fmt.a_max, fmt.weight_bits, fmt.act_bits
        C = self.n_classes
        P = self.planes                         # clocks per layer (ab if serial, else 1)

        # -- state: weights (absent ones are the constant 0), activations, control ------
        weights, flat = [], []
        for l, v in enumerate(tr.v):
            mask = tr.masks[l]
            rows = [[Signal(signed(wb), name=f"w{l}_{j}_{i}", init=int(v[j, i]))
                     if mask[j, i] else None
                     for i in range(v.shape[1])] for j in range(v.shape[0])]
            weights.append(rows)
            flat += [w for row in rows for w in row]
        m.d.comb += [self.weights[n].eq(w) for n, w in enumerate(flat) if w is not None]
        cost.ff += wb * sum(w is not None for w in flat)
        acts = [Signal(data.ArrayLayout(unsigned(ab), n), name=f"a{l}")
                for l, n in enumerate(self.shape[:-1])]
        logits = Signal(data.ArrayLayout(signed(self.logit_width), C))
        label = Signal(self.i.payload.label.shape())
        lr = Signal(max(1, self.lr_bits))
        train = Signal()
        phase = Signal(range(self.interval + 1))
        cost.ff += sum(len(s.as_value()) for s in acts) + len(logits.as_value())
        cost.ff += len(label) + 1 + len(phase) + LFSR_BITS + 1 + self.lr_bits

        out_valid = Signal()
        taken = Signal()
        last = self.interval                    # the phase that offers the result
        m.d.comb += [out_valid.eq(phase == last), taken.eq(out_valid & self.o.ready),
                     self.o.valid.eq(out_valid), self.i.ready.eq((phase == 0) | taken)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [acts[0].eq(self.i.payload.x), label.eq(self.i.payload.label),
                         train.eq(self.i.payload.train), phase.eq(1)]
            if self.lr_bits:
                m.d.sync += lr.eq(self.i.payload.lr)
        with m.Elif(taken):
            m.d.sync += phase.eq(0)
        with m.Elif((phase != 0) & (phase != last)):
            m.d.sync += phase.eq(phase + 1)

        # -- forward: layer l is computed in clocks l * P + 1 .. (l + 1) * P -------------
        tree = AdderTree(m, None, 0, cost)
        for l in range(L):
            rows = weights[l]
            n_in, d = self.shape[l], cfg.drop[l]
            fb = wb - d
            hidden = l < L - 1
            rnd = (1 << (cfg.frac[l] - 1)) if hidden else 0
            first, final = l * P + 1, (l + 1) * P
            if P > 1:
                # bit-serial: the activation bit of this clock, MSB first (shared by a layer)
                plane = Signal(range(ab), name=f"plane{l}")
                m.d.comb += plane.eq(ab - 1 - (phase - first))
                bits = [acts[l][i].bit_select(plane, 1) for i in range(n_in)]
                cost.lut += n_in * (ab - 1)
            for j, row in enumerate(rows):
                fw = [None if w is None else w[d:].as_signed() for w in row]   # F = V >> d
                leaves = []
                if P > 1:
                    for i in range(n_in):
                        if fw[i] is not None:
                            leaves.append((Mux(bits[i], fw[i], 0), +1))
                            cost.lut += fb
                    leaves.append((fw[n_in], +1))           # bias: every bit of A is 1
                    s_b = tree.sum(leaves, 0, f"s{l}_{j}", 0)
                    big = A * cfg.f_max(l) * (n_in + 1)
                    acc = Signal(signed(signed_width(-big, big)), name=f"acc{l}_{j}")
                    cost.ff += len(acc)
                    with m.If(phase == first):
                        m.d.sync += acc.eq(s_b)
                    with m.Elif((phase > first) & (phase < final)):
                        m.d.sync += acc.eq((acc << 1) + s_b)
                    cost.lut += len(acc)
                    h = (acc << 1) + s_b + rnd
                    cost.lut += len(acc) + (len(acc) if rnd else 0)
                else:
                    for i in range(n_in):
                        if fw[i] is None:
                            continue
                        for bit in range(ab):
                            leaves.append((Mux(acts[l][i][bit], fw[i] << bit, 0), +1))
                            cost.lut += fb + bit
                    leaves.append(((fw[n_in] << ab) - fw[n_in], +1))      # A * bias weight
                    cost.lut += fb + ab
                    h = tree.sum(leaves, rnd, f"h{l}_{j}", 0)
                if hidden:
                    shifted = h >> cfg.frac[l]
                    value = Mux(shifted < 0, 0, Mux(shifted > A, A, shifted))
                    cost.lut += ab + 2
                    with m.If(phase == final):
                        m.d.sync += acts[l + 1][j].eq(value)
                else:
                    with m.If(phase == final):
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
        label_ok = (label < C) & (lr <= cfg.anneal)
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
            v_lo, v_hi = cfg.v_lo(l), cfg.v_hi(l)
            offsets = lfsr_offsets(n_in, l)
            u_lo = (-emax * A) >> k
            u_hi = (emax * A + cfg.r_max(l)) >> k
            u_shape = signed(signed_width(u_lo, u_hi))
            step = self.step_form[l]
            columns = []
            for i in range(n_in + 1):
                ahat = acts[l][i] if i < n_in else Const(A, ab)
                per_lr = []
                for s in range(cfg.anneal + 1):             # u at each learning-rate shift
                    ks = k + s
                    if cfg.rounding == "lfsr":
                        r = [drawn[(offsets[i] + b) % LFSR_BITS] for b in range(ks)]
                        r = Cat(*r) if r else Const(0, 1)
                    else:
                        r = Const(cfg.r_const(l, s), max(1, ks + 1))
                    per_lr.append([(ahat * d + r) >> ks for d in range(-emax, emax + 1)])
                    cost.lut += 2 * emax * (ab + 2 + ks)
                if cfg.anneal:
                    cost.lut += 2 * emax * u_shape.width * cfg.anneal      # select by lr
                us = []
                for d in range(-emax, emax + 1):
                    u = Signal(u_shape, name=f"u{l}_{i}_{d + emax}")
                    choices = [p[d + emax] for p in per_lr]
                    m.d.comb += u.eq(Array(choices)[lr] if cfg.anneal else choices[0])
                    us.append(u)
                if step:
                    # u is -1, 0 or +1: one bit per delta value says "move"
                    columns.append(Cat(*[u != 0 for u in us]))
                else:
                    columns.append(Array(us))
            for j, row in enumerate(weights[l]):
                dj = deltas[l][j]
                if step:
                    onehot = Signal(2 * emax + 1, name=f"oh{l}_{j}")
                    down = Signal(name=f"down{l}_{j}")
                    m.d.comb += [onehot.eq(Const(1, 2 * emax + 1) << (dj + emax).as_unsigned()),
                                 down.eq(dj < 0)]
                    cost.lut += 2 * emax + 1
                else:
                    sel = Signal(range(2 * emax + 1), name=f"sel{l}_{j}")
                    m.d.comb += sel.eq(dj + emax)
                for i, w in enumerate(row):
                    if w is None:
                        continue
                    if step:
                        # an up/down counter that stops at the clamp bounds: bit-identical to
                        # clamp(w + u, -v_lo, v_hi) because |u| <= 1
                        move = (onehot & columns[i]).any()
                        stop = Mux(down, w == -v_lo, w == v_hi)
                        with m.If(update & move & ~stop):
                            m.d.sync += w.eq(w + Mux(down, -1, 1))
                        # select (AND-OR of 2 E pairs), +-1 adder, two constant compares,
                        # the enable
                        cost.lut += 2 * emax + wb + 2 * -(-(wb - 1) // 3) + 1
                    else:
                        s = w + columns[i][sel]
                        new = Mux(s > v_hi, v_hi, Mux(s < -v_lo, -v_lo, s))
                        # select u by the row's delta (AND-OR, two pairs per LUT4), add,
                        # clamp (compare + 2:1 mux)
                        cost.lut += emax * u_shape.width + (wb + 1) + wb + wb // 2
                        with m.If(update):
                            m.d.sync += w.eq(new)
        return m
