"""A network that learns in the fabric: forward pass, error, and every weight updated at once.

The arithmetic is :mod:`clockprop.models.inttrain`'s, bit for bit: after any number of training
samples the weight registers equal :class:`IntTrainer`'s weights.
"""

import numpy as np
from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Fragment, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..core.errors import ClockpropError
from ..models.inttrain import LFSR_BITS, lfsr_offsets
from ..core.qformat import signed_width
from ..core.lfsr import LFSR_TAPS
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


def _times(value, k):
    """``value * k`` for a constant ``k`` as shifted copies of ``value`` added: yosys maps a
    constant product onto a DSP multiplier (64 MULT18X18D in the ECP5's single-layer digits
    training top), away from the weights it feeds; shifted copies are a few LUTs beside them."""
    terms = [value << b for b in range(abs(k).bit_length()) if abs(k) >> b & 1]
    total = sum(terms[1:], terms[0]) if terms else Const(0, 1)
    return -total if k < 0 else total


def _lfsr_draw(state):
    """The LFSR state after 16 Galois steps (:meth:`Lfsr16.draw`), as comb logic."""
    bits = [state[b] for b in range(LFSR_BITS)]
    for _ in range(LFSR_BITS):
        out = bits[0]
        bits = bits[1:] + [Const(0, 1)]
        bits = [b ^ out if (LFSR_TAPS >> n) & 1 else b for n, b in enumerate(bits)]
    return bits


class TrainableNet(wiring.Component):
    """The integer network of an :class:`models.inttrain.IntTrainer`, with its learning rule.

    Weights live in registers (initialized to the trainer's current weights, the LFSR to its
    current state), so every weight of every layer can change in the same clock. Absent
    weights of a sparse layer (config ``fan_in``) are the constant 0: no register, no logic.
    The forward pass reads ``F = V >> drop``, the top bits of each register (wiring only).

    Schedule: a sample is taken in clock 0; layer ``l`` takes ``Q`` clocks, ``l Q + 1 ..
    (l + 1) Q``, and its last one registers the layer's output (``L`` layers); clock ``L Q +
    1`` registers the error, and the class comes out of a comparator tree registered at every
    level, ``T = ceil(log2 C)`` clocks (``self.levels``); in clock ``L Q + T + 1`` the result
    is offered on ``o`` and, in the clock it is taken, every weight is updated (if the sample
    has ``train`` set) while the next sample is taken. One sample every ``L Q + T + 1``
    clocks, ``self.interval``; the forward pass of a sample always sees the
    weights left by the previous sample, exactly like :meth:`IntTrainer.step` called in order.

    ``Q = 1`` (``serial=False``): each product ``a * F`` is ``act_bits`` gated copies of ``F``
    in one adder tree per neuron. ``Q = act_bits + 1`` (``serial=True``): bit-serial
    activations, MSB first; clock ``t`` of a layer adds one bit plane, ``acc = 2 acc + sum_i
    a_i[b] F_i + F_bias`` (every bit of ``A`` is 1), so each weight costs one gated copy and
    one adder instead of ``act_bits`` of each; the same integer sum; a last clock rounds,
    clips and gates it (off the adder tree's path). ``fold = G`` (serial only) splits each
    bit plane over ``G`` clocks, ``Q = act_bits G + 1``: clock ``g`` of a plane adds the
    inputs ``i = G k + g``, one leaf per group of ``G`` inputs (a ``G``:1 multiplexer of the
    group's weights, gated by the bit), so the adder tree has ``1/G`` of the leaves; the bias
    is added in the plane's first clock. The same integer sum again.

    Error: registered in clock ``L Q + 1``; with config ``rival`` a second comparator tree of
    the same depth, beside the class's, finds the label's rival (the label's logit forced
    below every logit), and in the update clock only the label's and the rival's errors are
    kept: the same schedule.

    Update: per layer, when every update is -1, 0 or +1 (``e_max * A <= 2**shift``;
    ``self.step_form``), each weight is an up/down counter with a stop at either clamp bound
    (an increment/decrement, two constant compares, an enable); otherwise the general form
    ``clamp(w + u)`` with ``u`` selected by the row's delta. The sample's ``lr`` (config
    ``anneal``) selects the column values ``u_i(d)`` computed at each shift ``k + lr``. The
    clamp bounds are constants per weight (``trainer.lo``, ``trainer.hi``): rule ``ed``'s
    sign constraint is a bound at 0, no extra logic.

    Rule ``ed`` (error diffusion): its first layer holds two registers per input, the ``+``
    and ``-`` copies (opposite fixed signs), both updated from the same input; the forward
    pass adds them (one adder per pair) and then treats the sum like a single weight. The
    deltas are ``csb``'s with other tags and signs (the class of the neuron's network, its
    type): a multiplexer and a sign flip per hidden neuron either way.

    Parameters
    ----------
    trainer : IntTrainer
        Shape, rule config, hidden signs/tags, masks, clamp bounds, initial weights and
        LFSR state.
    serial : bool
        Bit-serial forward pass (see above).
    fold : int
        With ``serial``: clocks per bit plane, ``1/fold`` of the forward adders (see above).

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
        top (a serializer) and for the simulator. The weight registers have no reset: they
        start from ``trainer``'s weights (their initial values) and a reset of the domain
        leaves them as trained.
    lfsr : ``Out(16)``
        The rounding LFSR's state.
    error : ``Out(1)``
        Sticky: a training sample came with a label ``>= n_classes`` or an ``lr > anneal``
        (it was not trained on).
    """

    def __init__(self, trainer, *, serial=False, fold=1):
        if not isinstance(fold, int) or not 1 <= fold <= 16 or (fold > 1 and not serial):
            self._MustUse__silence = True           # never elaborated: no "unused" warning
            raise ClockpropError(f"TrainableNet: fold must be an integer in [1, 16], and "
                                 f"above 1 only with serial=True; got {fold!r}")
        self.trainer = trainer
        self.cfg = cfg = trainer.cfg
        self.fmt = fmt = trainer.fmt
        self.serial = bool(serial)
        self.fold = fold
        self.shape = list(trainer.shape)
        self.n_layers = L = len(self.shape) - 1
        self.n_classes = self.shape[-1]
        self.planes = fmt.act_bits * fold if self.serial else 1
        # bit-serial: the planes, then one clock that rounds, clips and gates the sum
        self.layer_clocks = self.planes + 1 if self.serial else 1
        self.levels = max(1, ceil_log2(self.n_classes))   # argmax tree, one level a clock
        self.interval = L * self.layer_clocks + self.levels + 1
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

    def _argmax(self, m, values, cls_shape, name):
        """The index of the first maximum of ``values`` (as ``np.argmax``): a comparator tree
        with a register after every level, ``self.levels`` clocks."""
        width = max(len(v) for v in values)
        nodes = [(v, Const(c, cls_shape)) for c, v in enumerate(values)]
        level = 0
        while len(nodes) > 1:
            paired = []
            for k in range(0, len(nodes), 2):
                v = Signal(signed(width), name=f"{name}best{level}_{k // 2}")
                i = Signal(cls_shape, name=f"{name}cls{level}_{k // 2}")
                if k + 1 < len(nodes):
                    (va, ia), (vb, ib) = nodes[k], nodes[k + 1]
                    better = vb > va                # ties keep the lower class
                    m.d.sync += [v.eq(Mux(better, vb, va)), i.eq(Mux(better, ib, ia))]
                    self.cost.lut += 2 * width + len(ia)
                else:                               # an odd one out waits a clock
                    m.d.sync += [v.eq(nodes[k][0]), i.eq(nodes[k][1])]
                self.cost.ff += width + len(i)
                paired.append((v, i))
            nodes = paired
            level += 1
        return nodes[0][1]

    # -- elaboration: state, forward pass, result, error and deltas, rounding, update; the
    # -- steps share one namespace ``r`` ------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        self.cost = Cost()
        r = SimpleNamespace()
        self._state(m, r)
        self._forward(m, r)
        self._result(m, r)
        self._error(m, r)
        self._rounding(m, r)
        for l in range(self.n_layers):
            self._update_layer(m, r, l)
        return m

    def _state(self, m, r):
        """Weights (absent ones are the constant 0), activations, logits and control."""
        cost, tr, fmt = self.cost, self.trainer, self.fmt
        wb, ab, C = fmt.weight_bits, fmt.act_bits, self.n_classes
        weights, flat = [], []
        for l, v in enumerate(tr.v):
            mask = tr.masks[l]
            # no reset: trained weights outlive a reset of the domain (a PLL that relocks),
            # and the reset net does not reach every weight flip-flop
            rows = [[Signal(signed(wb), name=f"w{l}_{j}_{i}", init=int(v[j, i]),
                            reset_less=True)
                     if mask[j, i] else None
                     for i in range(v.shape[1])] for j in range(v.shape[0])]
            weights.append(rows)
            flat += [w for row in rows for w in row]
        m.d.comb += [self.weights[n].eq(w) for n, w in enumerate(flat) if w is not None]
        cost.ff += wb * sum(w is not None for w in flat)
        acts = [Signal(data.ArrayLayout(unsigned(ab), n), name=f"a{l}")
                for l, n in enumerate(self.shape[:-1])]
        logits = Signal(data.ArrayLayout(signed(self.logit_width), C), name="logits")
        label = Signal(self.i.payload.label.shape(), name="label")
        lr = Signal(max(1, self.lr_bits), name="lr")
        train = Signal(name="train")
        phase = Signal(range(self.interval + 1), name="phase")
        cost.ff += sum(len(s.as_value()) for s in acts) + len(logits.as_value())
        cost.ff += len(label) + 1 + len(phase) + LFSR_BITS + 1 + self.lr_bits

        out_valid = Signal(name="out_valid")
        taken = Signal(name="taken")
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
        r.__dict__.update(weights=weights, acts=acts, logits=logits, label=label, lr=lr,
                          train=train, phase=phase, taken=taken)

    def _forward(self, m, r):
        """Layer ``l`` is computed in clocks ``l * P + 1 .. (l + 1) * P``."""
        cfg, fmt, L = self.cfg, self.fmt, self.n_layers
        ab, G, P, Q = fmt.act_bits, self.fold, self.planes, self.layer_clocks
        r.tree = AdderTree(m, None, 0, self.cost)
        r.gates = [[] for _ in range(L - 1)]
        for l in range(L):
            n_in = self.shape[l]
            first = l * Q + 1                   # the layer's first clock
            bits = None
            if P > 1:
                # bit-serial: the activation bit plane of this clock, MSB first, and (fold G)
                # the group of inputs ``i = G k + grp`` it adds (shared by a layer)
                plane = Signal(range(ab), name=f"plane{l}")
                grp = Signal(range(max(2, G)), name=f"grp{l}")
                with m.Switch(r.phase):
                    for t in range(P):
                        with m.Case(first + t):
                            m.d.comb += [plane.eq(ab - 1 - t // G), grp.eq(t % G)]
                bits = [r.acts[l][i].bit_select(plane, 1) for i in range(n_in)]
                self.cost.lut += n_in * (ab - 1)
                if G > 1:
                    n_groups = -(-n_in // G)
                    padded = bits + [Const(0, 1)] * (n_groups * G - n_in)
                    bits = [Array(padded[k * G:(k + 1) * G])[grp] for k in range(n_groups)]
                    self.cost.lut += n_groups * (G - 1)
                r.grp = grp
            for j, row in enumerate(r.weights[l]):
                self._neuron(m, r, l, j, row, bits)

    def _folded_weights(self, m, l, j, row):
        """The neuron's forward weights ``F = V >> d``; with ``ed`` the + and - copies of an
        input added (opposite signs: ``fb`` bits hold it)."""
        d, n_in, src = self.cfg.drop[l], self.shape[l], self.trainer.col_src[l]
        fb = self.fmt.weight_bits - d
        fw = [None if w is None else w[d:].as_signed() for w in row]
        if len(src) == n_in:
            return fw
        pairs = []
        for i in range(n_in):
            cols = [fw[c] for c in np.flatnonzero(src == i) if fw[c] is not None]
            if len(cols) < 2:
                pairs.append(cols[0] if cols else None)
                continue
            p = Signal(signed(fb), name=f"p{l}_{j}_{i}")
            m.d.comb += p.eq(cols[0] + cols[1])
            self.cost.lut += fb
            pairs.append(p)
        return pairs + [fw[-1]]

    def _neuron(self, m, r, l, j, row, bits):
        """Neuron ``j`` of layer ``l``: its sum, then its activation and gate (hidden) or
        its logit, registered at the layer's output clock."""
        cfg, cost, fmt, L = self.cfg, self.cost, self.fmt, self.n_layers
        A, ab, G, P, Q = fmt.a_max, fmt.act_bits, self.fold, self.planes, self.layer_clocks
        n_in = self.shape[l]
        fb = fmt.weight_bits - cfg.drop[l]
        hidden = l < L - 1
        rnd = (1 << (cfg.frac[l] - 1)) if hidden else 0
        first, final = l * Q + 1, (l + 1) * Q   # the layer's first and output clocks
        fw = self._folded_weights(m, l, j, row)
        leaves = []
        if P > 1 and G == 1:
            for i in range(n_in):
                if fw[i] is not None:
                    leaves.append((Mux(bits[i], fw[i], 0), +1))
                    cost.lut += fb
            leaves.append((fw[n_in], +1))           # bias: every bit of A is 1
        elif P > 1:
            # fold: one leaf per group of G inputs, the weight of input G k + grp
            zero = Const(0, signed(fb))
            for k, bit in enumerate(bits):
                group = fw[k * G:min((k + 1) * G, n_in)]
                if all(w is None for w in group):
                    continue
                group = [zero if w is None else w for w in group]
                group += [zero] * (G - len(group))
                leaves.append((Mux(bit, Array(group)[r.grp], 0), +1))
                cost.lut += fb * (G - 1)
            leaves.append((Mux(r.grp == 0, fw[n_in], 0), +1))     # bias once a plane
            cost.lut += fb
        if P > 1:
            s_b = r.tree.sum(leaves, 0, f"s{l}_{j}", 0)
            big = A * cfg.f_max(l) * (n_in + 1)
            acc = Signal(signed(signed_width(-big, big)), name=f"acc{l}_{j}")
            cost.ff += len(acc)
            # acc = 2 acc + s at a new plane (grp 0), acc + s within a plane
            prev = (acc << 1) if G == 1 else Mux(r.grp == 0, acc << 1, acc)
            with m.If(r.phase == first):
                m.d.sync += acc.eq(s_b)
            with m.Elif((r.phase > first) & (r.phase < final)):
                m.d.sync += acc.eq(prev + s_b)
            cost.lut += len(acc) * (1 if G == 1 else 2)
            h = acc + rnd                       # the output clock
            cost.lut += len(acc) if rnd else 0
        else:
            for i in range(n_in):
                if fw[i] is None:
                    continue
                for bit in range(ab):
                    leaves.append((Mux(r.acts[l][i][bit], fw[i] << bit, 0), +1))
                    cost.lut += fb + bit
            leaves.append(((fw[n_in] << ab) - fw[n_in], +1))      # A * bias weight
            cost.lut += fb + ab
            h = r.tree.sum(leaves, rnd, f"h{l}_{j}", 0)
        if hidden:
            mg = cfg.gate_margin
            shifted = h >> cfg.frac[l]
            value = Mux(shifted < 0, 0, Mux(shifted > A, A, shifted))
            # the gate [-m < q < A + m], registered with the activation
            gate = Signal(name=f"g{l}_{j}")
            r.gates[l].append(gate)
            cost.lut += ab + 2 + 2 * -(-len(shifted) // 3)
            cost.ff += 1
            with m.If(r.phase == final):
                m.d.sync += [r.acts[l + 1][j].eq(value),
                             gate.eq((shifted > -mg) & (shifted < A + mg))]
        else:
            with m.If(r.phase == final):
                m.d.sync += r.logits[j].eq(h)

    def _result(self, m, r):
        """The argmax of the logits (first maximum, as np.argmax): a comparator tree with a
        register after every level, so neither it nor the error is on the path into the
        update; with ``rival`` the label's rival from a second tree."""
        C, logits, label = self.n_classes, r.logits, r.label
        cls_shape = self.o.payload.cls.shape()
        cls = self._argmax(m, [logits[c] for c in range(C)], cls_shape, "")
        r.rival = None
        if self.cfg.rival:
            # the label's rival: the same tree beside it, the label's logit below every logit
            floor = -(1 << self.logit_width)
            r.rival = self._argmax(m, [Mux(label == c, floor, logits[c]) for c in range(C)],
                                   cls_shape, "rival_")
        # one tree level a clock, every clock: the class is right from clock L Q + levels
        # (the logits hold still from L Q + 1 until the next sample's last layer)
        m.d.comb += [self.o.payload.logits.eq(logits), self.o.payload.cls.eq(cls)]

    def _error(self, m, r):
        """The registered, clamped error of each class, and every neuron's delta."""
        cfg, cost, tr, C = self.cfg, self.cost, self.trainer, self.n_classes
        settle = r.phase == self.n_layers * self.layer_clocks + 1   # logits in: register
        emax = cfg.e_max
        e_shape = signed(signed_width(-emax, emax))
        target = cfg.target()
        err = []
        for c in range(C):
            diff = Mux(r.label == c, target, 0) - r.logits[c]
            q = diff >> cfg.e_shift
            e = Signal(e_shape, name=f"e{c}")
            with m.If(settle):
                m.d.sync += e.eq(Mux(q > emax, emax, Mux(q < -emax, -emax, q)))
            cost.lut += 2 * self.logit_width + len(e)
            cost.ff += len(e)
            if cfg.rival:
                # only the label's and the rival's errors (the rival is in at the update)
                kept = Signal(e_shape, name=f"ek{c}")
                m.d.comb += kept.eq(Mux((r.label == c) | (r.rival == c), e, 0))
                cost.lut += len(e)
                e = kept
            err.append(e)
        deltas = []
        for l in range(self.n_layers - 1):
            row = []
            for j in range(self.shape[l + 1]):
                e = err[int(tr.tags[l][j])]
                d = Signal(e_shape, name=f"d{l}_{j}")
                m.d.comb += d.eq(Mux(r.gates[l][j], e if tr.signs[l][j] > 0 else -e, 0))
                cost.lut += 2 * len(e)
                row.append(d)
            deltas.append(row)
        deltas.append(err)
        r.deltas = deltas

    def _rounding(self, m, r):
        """One LFSR draw per training sample, and the ``update`` strobe."""
        cfg = self.cfg
        state = self.lfsr
        r.drawn = _lfsr_draw(state)
        label_ok = (r.label < self.n_classes) & (r.lr <= cfg.anneal)
        r.update = Signal(name="update")
        m.d.comb += r.update.eq(r.taken & r.train & label_ok)
        with m.If(r.taken & r.train & ~label_ok):
            m.d.sync += self.error.eq(1)
        if cfg.rounding == "lfsr":
            with m.If(r.update):
                m.d.sync += [state[b].eq(r.drawn[b]) for b in range(LFSR_BITS)]
            self.cost.lut += LFSR_BITS

    def _update_columns(self, m, r, l):
        """Per input column of layer ``l``: the step ``u`` for every delta value (at each
        learning-rate shift), shared by the column's weights; None where no weight reads
        it."""
        cfg, cost, tr, fmt = self.cfg, self.cost, self.trainer, self.fmt
        A, ab, emax = fmt.a_max, fmt.act_bits, cfg.e_max
        n_cols, k = tr.n_cols[l], cfg.shift[l]
        offsets = lfsr_offsets(n_cols, l)
        u_lo = (-emax * A) >> k
        u_hi = (emax * A + cfg.r_max(l)) >> k
        u_shape = signed(signed_width(u_lo, u_hi))
        step = self.step_form[l]
        columns = []
        for i in range(n_cols + 1):
            if not tr.masks[l][:, i].any():
                columns.append(None)                    # no weight reads this column
                continue
            ahat = r.acts[l][int(tr.col_src[l][i])] if i < n_cols else Const(A, ab)
            per_lr = []
            for s in range(cfg.anneal + 1):             # u at each learning-rate shift
                ks = k + s
                if cfg.rounding == "lfsr":
                    bits = [r.drawn[(offsets[i] + b) % LFSR_BITS] for b in range(ks)]
                    rnd = Cat(*bits) if bits else Const(0, 1)
                else:
                    rnd = Const(cfg.r_const(l, s), max(1, ks + 1))
                per_lr.append([(_times(ahat, d) + rnd) >> ks for d in range(-emax, emax + 1)])
                # a constant multiple of ahat plus r per non-zero delta value (with |u|
                # <= 1 only the carry out of ``|d| ahat + r`` matters: a comparator)
                cost.lut += 2 * emax * ((ks + 1) if step else (ab + 2 + ks))
            if cfg.anneal:
                cost.lut += 2 * emax * (1 if step else u_shape.width) * cfg.anneal
            us = []
            for d in range(-emax, emax + 1):
                u = Signal(u_shape, name=f"u{l}_{i}_{d + emax}")
                choices = [p[d + emax] for p in per_lr]
                m.d.comb += u.eq(Array(choices)[r.lr] if cfg.anneal else choices[0])
                us.append(u)
            if step:
                # u is -1, 0 or +1: one bit per delta value says "move"
                columns.append(Cat(*[u != 0 for u in us]))
            else:
                columns.append(Array(us))
        return columns, u_shape

    def _update_layer(self, m, r, l):
        """The update of layer ``l``: every weight in the same clock."""
        cost, tr, emax, wb = self.cost, self.trainer, self.cfg.e_max, self.fmt.weight_bits
        lo, hi = tr.lo[l], tr.hi[l]             # per-weight clamp bounds (ed: signs)
        step = self.step_form[l]
        columns, u_shape = self._update_columns(m, r, l)
        for j, row in enumerate(r.weights[l]):
            dj = r.deltas[l][j]
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
                    stop = Mux(down, w == int(lo[j, i]), w == int(hi[j, i]))
                    with m.If(r.update & move & ~stop):
                        m.d.sync += w.eq(w + Mux(down, -1, 1))
                    # select (AND-OR of 2 E pairs), +-1 adder, two constant compares,
                    # the enable
                    cost.lut += 2 * emax + wb + 2 * -(-(wb - 1) // 3) + 1
                else:
                    s = w + columns[i][sel]
                    w_lo, w_hi = int(lo[j, i]), int(hi[j, i])
                    new = Mux(s > w_hi, w_hi, Mux(s < w_lo, w_lo, s))
                    # select u by the row's delta (AND-OR, two pairs per LUT4), add,
                    # clamp (compare + 2:1 mux)
                    cost.lut += emax * u_shape.width + (wb + 1) + wb + wb // 2
                    with m.If(r.update):
                        m.d.sync += w.eq(new)
