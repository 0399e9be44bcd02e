"""The integer trainer: the golden model of on-chip learning (``hw.update.TrainableNet``).

Everything is integer and per sample (batch 1), in the order the gateware does it, so the
gateware's weights equal :func:`train_steps`'s after any number of steps.

Network (``shape = [n_0, ..., n_L]``, ``A = 2**act_bits - 1``). Layer ``l`` keeps one signed
stored weight matrix ``V_l`` of shape ``[n_{l+1}, n_l + 1]`` (``weight_bits`` wide); its last
column is the bias, a weight on a constant input ``A`` (so the bias learns with the same
update as every other weight). Only its top ``weight_bits - drop_l`` bits enter the forward
pass, ``F_l = V_l >> drop_l`` (``drop = 0``: ``F = V``); ``F_l`` lies in ``[-Wf_l, Wf_l]``,
``Wf_l = 2**(weight_bits - drop_l - 1) - 1``, because ``V_l`` is clamped to
``[-(Wf_l << drop_l), (Wf_l << drop_l) + 2**drop_l - 1]``::

    a_0 = x                                               (unsigned, act_bits)
    h_l = F_l[:, :n_l] @ a_l + A * F_l[:, n_l] + rnd_l     rnd_l = 2**(frac_l - 1) if l < L-1
    a_{l+1} = clip(h_l >> frac_l, 0, A)                     (hidden layers)
    logits = h_{L-1}

This is exactly :class:`models.intmodel.IntModel` with ``weight = F[:, :-1]`` and ``bias = A *
F[:, -1] + rnd`` (:meth:`IntTrainer.model`; its format has ``weight_bits - min(drop)`` weight
bits). With ``fan_in_l > 0`` neuron ``j`` of layer ``l`` has a fixed random set of
``fan_in_l`` inputs (mask ``M_l``, bias always present); absent weights are 0 and never move.

Error, quantized to a few bits (``T = A << frac_{L-1}`` stands for the float target 1.0)::

    t_c = T if c == label else 0
    e_c = clamp((t_c - logits_c) >> e_shift, -E, E)          (``>>`` floors)

With ``rival`` only two classes keep their error, the label and its rival, the strongest
other class (``argmax`` of the logits with the label's left out, the first one on a tie); the
others' ``e_c`` is 0. That is a multiclass hinge (Crammer and Singer): a sample moves the
class it is and the one it is most confused with, not the eight that are already far below.

Deltas: the output layer's delta is ``e``; hidden neuron ``j`` of layer ``l`` has a class tag
``c_j`` and a fixed sign ``s_j`` (+1/-1) and::

    delta_j = s_j * e[c_j] * g_j        g_j = [-m < q_j < A + m]        (a comparator)

where ``q_j = h_{l, j} >> frac_l`` is the neuron's unclipped output (``a_{l+1, j} = clip(q_j,
0, A)``) and ``m`` is ``gate_margin``: ``m = 0`` is the active window ``0 < a < A``; a margin
keeps a neuron that has drifted just out of the window learning, so it can come back (with
``m = 0`` a neuron that is 0 or ``A`` for every sample never changes again).

Rule ``csb`` (class-sign broadcast): shared hidden layers, ``c_j = j mod C``, ``s_j`` drawn at
random (``signs = "random"``) or alternating over a class's neurons (``signs = "alternate"``:
``s_j = +1`` for even ``j // C``, else ``-1``, so a class with two or more neurons has both
signs). Rule ``ed`` (Kaneko's error diffusion, :class:`models.rules.ED` in integers): one network
per class, ``hidden`` is the width of each (the folded layer has ``C * H`` neurons, class
``c`` owning rows ``c H .. c H + H - 1``, so ``c_j = j // H``); hidden neurons alternate types
``s_j = +1, -1, ...`` within their class, the output neuron has type +1; layers after the
first are block-diagonal (a class's neurons see only their own class's inputs; the other
weights are absent, see ``fan_in``). The first layer takes the inputs twice, a ``+`` copy
(type +1, columns ``0 .. n_0 - 1``) and a ``-`` copy (type -1, columns ``n_0 .. 2 n_0 - 1``),
both fed the same ``a_0``, so ``V_0`` is ``[C H_1, 2 n_0 + 1]`` and the forward pass adds the
two copies, ``F_0[:, i] + F_0[:, n_0 + i]`` (that sum is the weight of :meth:`IntTrainer.model`).
Every weight keeps the sign ``t_post * t_pre`` of its neuron types (the sign constraint): it is
clamped to ``[0, v_hi]`` (excitatory) or ``[-v_lo, 0]`` (inhibitory) instead of ``[-v_lo,
v_hi]``, so an update that would cross zero stops at zero; biases are free. ``init`` draws
magnitudes ``uniform(0, 2 init / sqrt(fan_in))`` with the constrained signs, as the float rule.
A neuron's weights in the general update below use these per-weight bounds ``lo``, ``hi``.

Update of every weight of every layer at once (``ahat = [a_l, A]`` with the bias input, the
input of each column: ``ahat = [a_0, a_0, A]`` in the first layer of ``ed``;
``s`` in ``0..anneal`` is the sample's extra learning-rate shift, sent with it, by default
:func:`lr_schedule` ``s = (anneal + 1) * epoch // epochs``; ``k = k_l + s``)::

    V_l[j, i] = clamp(V_l[j, i] + M_l[j, i] * ((delta_j * ahat_i + r_{l,i}) >> k),
                      lo_l[j, i], hi_l[j, i])

with ``[lo, hi] = [-(Wf_l << drop_l), (Wf_l << drop_l) + 2**drop_l - 1]`` (``csb``; ``ed``'s
sign constraint narrows it to one side of zero).

When ``e_max * A <= 2**k_l`` every update is -1, 0 or +1 and the gateware makes each weight
an up/down counter that stops at the bounds (bit-identical to the clamp).

Rounding ``r`` (``rounding``): ``"lfsr"`` (stochastic rounding), ``"half"`` (the constant
``2**(k - 1)``) or ``"floor"`` (0). With ``"lfsr"`` a 16-bit Galois LFSR
(:class:`core.lfsr.Lfsr16`, poly 0xB400, seeded with ``lfsr_seed``) is drawn once per
training sample (16 steps); column ``i`` of layer ``l`` takes the ``k`` bits
of the state starting at bit ``(7 i + 5 l) mod 16`` (cyclically), so ``r_{l,i}`` is uniform in
``[0, 2**k)``. All rows of a column share ``r``: the rounding is unbiased for every weight
and costs no logic (wiring only); neighbouring columns see different bits (7 is coprime
with 16). The same ``r`` for a whole column lets the gateware form ``u_i(d) = (d * ahat_i +
r_i) >> k`` once per column and value ``d`` of the delta; a weight only selects one.

Schedule (the gateware's): one training sample every ``L + 1`` clocks (``L * act_bits + 1``
with the bit-serial forward pass), fully sequential: the forward pass uses the weights left
by the previous sample's update. The trainer below is that
schedule, one sample after the other, with no batching.
"""

import time
from dataclasses import dataclass, field, fields

import numpy as np

from ..core.errors import ClockpropError
from .intmodel import IntLayer, IntModel
from ..core.qformat import QFormat, signed_width
from ..core.lfsr import Lfsr16

__all__ = ["IntTrainConfig", "IntTrainer", "IntTrainResult", "train_int", "lfsr_offsets",
           "lr_schedule", "sample_order", "ROUNDINGS", "INT_RULES", "ONCHIP_DIGITS",
           "ONCHIP_ECP5", "ONCHIP_UP5K", "ONCHIP_FOLD", "onchip_config", "onchip_fold"]

ROUNDINGS = ("lfsr", "half", "floor")
INT_RULES = ("csb", "ed")
LFSR_BITS = 16


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _per_layer(name, value, n_layers, lo, hi):
    values = (value,) * n_layers if _is_int(value) else value
    if (not isinstance(values, (tuple, list)) or len(values) != n_layers or
            not all(_is_int(v) and lo <= v <= hi for v in values)):
        raise ClockpropError(f"integer training: {name} must be an integer in [{lo}, {hi}] or "
                             f"one per layer ({n_layers}), got {value!r}")
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class IntTrainConfig:
    """The integer learning rule and its number format; validated on construction.

    Parameters
    ----------
    rule : str
        ``"csb"`` (class-sign broadcast) or ``"ed"`` (error diffusion, sign-constrained; see
        the module docs).
    hidden : tuple of int
        Hidden layer widths (``()``: a single layer); with ``ed`` the width of each class's
        network (the folded layer has ``n_classes`` times as many neurons).
    act_bits, weight_bits : int
        Activation and weight widths (:class:`QFormat`).
    frac : int or tuple
        Weight fraction bits per layer (the next activation is ``acc >> frac``).
    shift : int or tuple
        The learning-rate shift ``k_l`` per layer, ``0..16``.
    e_shift, e_max : int
        Error quantization: ``e = clamp((t - y) >> e_shift, -e_max, e_max)``.
    rounding : str
        ``"lfsr"``, ``"half"`` or ``"floor"`` (see the module docs).
    lfsr_seed : int
        Seed of the 16-bit LFSR, ``1..65535``.
    init : float
        Initial forward weights ``round(normal(0, init / sqrt(n_in)) * 2**frac)`` (``ed``:
        magnitudes ``uniform(0, 2 init / sqrt(n_in))`` with the constrained signs), stored
        ``<< drop``, clamped; biases 0.
    epochs : int
        Passes over the training split (a fresh random order each, from ``seed``).
    seed : int
        Seed of the one ``numpy`` generator (initial weights, hidden signs, masks, order).
    drop : int or tuple
        Per layer, ``0..weight_bits - 2``: only the top ``weight_bits - drop`` bits of a
        stored weight enter the forward pass, ``F = V >> drop`` (the low bits only
        accumulate updates). ``frac`` is the forward weights' fraction.
    fan_in : int or tuple
        Per layer: ``0`` dense, else every neuron keeps ``fan_in`` inputs chosen at random
        (from ``seed``) plus its bias; absent weights are 0 forever and cost no logic. With
        ``ed`` the choice is among the neuron's own class's columns (both input copies in
        the first layer).
    anneal : int
        ``0..8``: the learning-rate shift of every layer grows by ``lr`` during training,
        ``lr = (anneal + 1) * epoch // epochs`` (:func:`lr_schedule`); the host sends ``lr``
        with each sample.
    gate_margin : int
        ``0..255``: the hidden gate is open for ``-m < q < A + m`` (module docs).
    signs : str
        ``csb``'s hidden signs: ``"random"`` or ``"alternate"`` (module docs).
    rival : bool
        Only the label's and its rival's (the strongest other class's) output errors are
        non-zero (module docs).
    """

    rule: str = "csb"
    hidden: tuple = (16,)
    act_bits: int = 4
    weight_bits: int = 8
    frac: tuple = 5
    shift: tuple = 8
    e_shift: int = 6
    e_max: int = 3
    rounding: str = "lfsr"
    lfsr_seed: int = 0xACE1
    init: float = 1.0
    epochs: int = 10
    seed: int = 0
    drop: tuple = 0
    fan_in: tuple = 0
    anneal: int = 0
    gate_margin: int = 0
    signs: str = "random"
    rival: bool = False

    def __post_init__(self):
        if self.rule not in INT_RULES:
            raise ClockpropError(f"integer training: rule must be one of {', '.join(INT_RULES)}"
                                 f", got {self.rule!r}")
        hidden = (self.hidden,) if _is_int(self.hidden) else self.hidden
        if (not isinstance(hidden, (tuple, list)) or
                not all(_is_int(h) and 1 <= h <= 4096 for h in hidden)):
            raise ClockpropError(f"integer training: hidden must be a list of layer widths in "
                                 f"[1, 4096], got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        QFormat(act_bits=self.act_bits, weight_bits=self.weight_bits)     # validates widths
        n_layers = len(self.hidden) + 1
        object.__setattr__(self, "frac", _per_layer("frac", self.frac, n_layers, 1, 16))
        object.__setattr__(self, "shift", _per_layer("shift", self.shift, n_layers, 0,
                                                     LFSR_BITS))
        object.__setattr__(self, "drop", _per_layer("drop", self.drop, n_layers, 0,
                                                    self.weight_bits - 2))
        object.__setattr__(self, "fan_in", _per_layer("fan_in", self.fan_in, n_layers, 0,
                                                      4096))
        for name, lo, hi in (("e_shift", 0, 40), ("e_max", 1, 127), ("epochs", 1, 100_000),
                             ("seed", 0, (1 << 63) - 1), ("lfsr_seed", 1, 0xFFFF),
                             ("anneal", 0, 8), ("gate_margin", 0, 255)):
            value = getattr(self, name)
            if not _is_int(value) or not lo <= value <= hi:
                raise ClockpropError(f"integer training: {name} must be an integer in "
                                     f"[{lo}, {hi}], got {value!r}")
        if self.signs not in ("random", "alternate"):
            raise ClockpropError(f"integer training: signs must be \"random\" or "
                                 f"\"alternate\", got {self.signs!r}")
        if not isinstance(self.rival, (bool, np.bool_)):
            raise ClockpropError(f"integer training: rival must be true or false, "
                                 f"got {self.rival!r}")
        object.__setattr__(self, "rival", bool(self.rival))
        if self.rounding not in ROUNDINGS:
            raise ClockpropError(f"integer training: rounding must be one of "
                                 f"{', '.join(ROUNDINGS)}, got {self.rounding!r}")
        if (not isinstance(self.init, (int, float)) or isinstance(self.init, bool) or
                not 0 <= self.init <= 100):
            raise ClockpropError(f"integer training: init must be a number in [0, 100], "
                                 f"got {self.init!r}")
        fmt = self.fmt
        if max(self.shift) + self.anneal > LFSR_BITS:
            raise ClockpropError(f"integer training: shift + anneal must be at most "
                                 f"{LFSR_BITS}, got {max(self.shift)} + {self.anneal}")
        for l, k in enumerate(self.shift):
            biggest = (self.e_max * fmt.a_max + self.r_max(l)) >> k
            if biggest > self.v_lo(l):
                raise ClockpropError(
                    f"integer training: shift[{l}] = {k} would overflow: one update can move "
                    f"a weight by {biggest} > {self.v_lo(l)}; raise the shift or weight_bits")
            lowest = (-self.e_max * fmt.a_max + self.r_min(l)) >> k
            if biggest == 0 and lowest == 0:
                raise ClockpropError(
                    f"integer training: shift[{l}] = {k} is so large that no update is ever "
                    f"non-zero; lower it (at most {(self.e_max * fmt.a_max).bit_length()})")

    @property
    def fmt(self):
        """The number format of the stored weights ``V``; ``bias_bits`` holds
        ``A * W + 2**(frac - 1)``."""
        return self._format(self.weight_bits)

    @property
    def model_fmt(self):
        """The number format of the forward pass (:meth:`IntTrainer.model`): the forward
        weights ``F = V >> drop`` have ``weight_bits - min(drop)`` bits."""
        drop = self.drop if isinstance(self.drop, tuple) else (self.drop,)
        return self._format(self.weight_bits - min(drop))

    def _format(self, weight_bits):
        a, w = (1 << self.act_bits) - 1, (1 << (weight_bits - 1)) - 1
        frac = self.frac if isinstance(self.frac, tuple) else (self.frac,)
        bias_bits = signed_width(-a * w, a * w + (1 << (max(frac) - 1)))
        return QFormat(act_bits=self.act_bits, weight_bits=weight_bits,
                       bias_bits=max(2, bias_bits))

    def f_max(self, l):
        """Largest forward weight of layer ``l``: ``2**(weight_bits - drop - 1) - 1``."""
        return (1 << (self.weight_bits - self.drop[l] - 1)) - 1

    def v_lo(self, l):
        """Stored weights of layer ``l`` are clamped to ``[-v_lo, v_hi]``: ``v_lo = f_max <<
        drop``, so that ``V >> drop`` stays in ``[-f_max, f_max]``."""
        return self.f_max(l) << self.drop[l]

    def v_hi(self, l):
        """``v_lo + 2**drop - 1`` (equal to ``v_lo`` when ``drop`` is 0)."""
        return self.v_lo(l) + (1 << self.drop[l]) - 1

    def r_max(self, l, lr=0):
        """Largest rounding value of layer ``l`` (at learning-rate shift ``lr``)."""
        k = self.shift[l] + lr
        return {"lfsr": (1 << k) - 1, "half": (1 << k) >> 1, "floor": 0}[self.rounding]

    def r_min(self, l, lr=0):
        """Smallest rounding value of layer ``l``."""
        return 0 if self.rounding == "lfsr" else self.r_const(l, lr)

    def r_const(self, l, lr=0):
        """The constant rounding value of layer ``l`` (``rounding`` ``"half"``/``"floor"``)."""
        return (1 << (self.shift[l] + lr)) >> 1 if self.rounding == "half" else 0

    def target(self):
        """``T``, the integer logit that stands for the float target 1.0."""
        return ((1 << self.act_bits) - 1) << self.frac[-1]

    def to_dict(self):
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("hidden", "frac", "shift", "drop", "fan_in"):
            d[name] = list(d[name])
        return d


# The on-chip defaults (``clockprop train-onchip``, ``bench/onchip.py``). ONCHIP_DIGITS:
# digits 64 -> 30 -> 10 with class-sign broadcast, three hidden neurons per class with
# alternating signs, 10-bit stored weights of which the top 7 enter the forward pass (the
# low 3 accumulate stochastically rounded +-1 steps), a ternary error (every update is an
# up/down count), a gate margin of 4 against dead neurons, 40 epochs with the learning rate
# halved for the second half; built bit-serial with fold 2 (ONCHIP_FOLD). Its training top
# does not fit the ECP5-85F (about 129% of its LUTs); with 20 hidden neurons it packs into
# 86% and reaches 95% too, but does not route. ONCHIP_ECP5 is one dense layer (64 -> 10)
# whose training top routes on the ECP5-85F: the top 8 of 9 bits in the forward pass, the
# error of the label and its rival only (a multiclass hinge; with every class's error one
# dense layer stays below 94.3%), a wide dead zone (e_shift 9 against T = 15 << 6) and 120
# epochs; 95.1 to 95.8% over seeds 0-4. ONCHIP_UP5K: one sparse layer (4 inputs per class),
# small enough for an iCE40 UP5K.
ONCHIP_DIGITS = IntTrainConfig(rule="csb", hidden=(30,), weight_bits=10, drop=3, frac=(5, 5),
                               shift=(4, 4), e_shift=7, e_max=1, gate_margin=4, epochs=40,
                               anneal=1, signs="alternate")
ONCHIP_ECP5 = IntTrainConfig(rule="csb", hidden=(), weight_bits=9, drop=1, frac=6, shift=5,
                             e_shift=9, e_max=1, epochs=120, anneal=1, rival=True)
ONCHIP_UP5K = IntTrainConfig(rule="csb", hidden=(), weight_bits=6, drop=1, frac=4, shift=4,
                             e_shift=6, e_max=1, fan_in=4, epochs=20)
ONCHIP_FOLD = 2


def onchip_config(family=None):
    """The on-chip default config for an FPGA family, one whose training top fits it:
    ``"ice40"`` gets :data:`ONCHIP_UP5K`, ``"ecp5"`` :data:`ONCHIP_ECP5`, and no family (the
    simulator) :data:`ONCHIP_DIGITS`."""
    return {"ice40": ONCHIP_UP5K, "ecp5": ONCHIP_ECP5}.get(family, ONCHIP_DIGITS)


def onchip_fold(family=None):
    """The bit-serial fold of the on-chip default for an FPGA family: 1 on iCE40, where the
    held input of a fold takes logic cells that :data:`ONCHIP_UP5K`'s top does not have
    (fold 2 needs 5284 of the UP5K's 5280), else :data:`ONCHIP_FOLD`."""
    return 1 if family == "ice40" else ONCHIP_FOLD


def lfsr_offsets(n_in, l):
    """Bit offset into the LFSR state of the rounding value of each column of layer ``l``
    (``n_in`` inputs plus the bias column)."""
    return [(7 * i + 5 * l) % LFSR_BITS for i in range(n_in + 1)]


def _rotr16(s, offset):
    return ((s >> offset) | (s << (LFSR_BITS - offset))) & 0xFFFF


@dataclass
class IntTrainResult:
    """What :func:`train_int` gives back: the trained model and its learning curve.

    ``history`` has one row per evaluation point: ``step`` (training samples so far),
    ``train_acc`` and ``test_acc`` of the integer model at that point.
    """

    model: IntModel
    trainer: "IntTrainer"
    history: list = field(default_factory=list)
    seconds: float = 0.0
    samples_per_s: float = 0.0


class IntTrainer:
    """The integer network and its learning rule (see the module docs).

    Parameters
    ----------
    cfg : IntTrainConfig
    n_in, n_classes : int
    weights : list of int arrays, optional
        Initial ``V_l`` (``[n_out, n_in + 1]``, bias last); default: drawn from ``cfg``.
    """

    def __init__(self, cfg, n_in, n_classes, weights=None):
        if not _is_int(n_in) or n_in < 1 or not _is_int(n_classes) or n_classes < 2:
            raise ClockpropError(f"integer training: need >= 1 input and >= 2 classes, got "
                                 f"{n_in!r} inputs, {n_classes!r} classes")
        self.cfg = cfg
        self.fmt = cfg.fmt
        C = self.n_classes = int(n_classes)
        ed = cfg.rule == "ed"
        widths = [C * h for h in cfg.hidden] if ed else list(cfg.hidden)
        self.shape = [int(n_in)] + widths + [C]
        rng = np.random.default_rng(cfg.seed)
        L = len(self.shape) - 1
        # the input that each column of V_l reads (ed: the + and - copies of a_0)
        self.col_src = [np.tile(np.arange(self.shape[0]), 2) if ed and l == 0
                        else np.arange(self.shape[l]) for l in range(L)]
        self.n_cols = [len(c) for c in self.col_src]
        self.v_lo = [cfg.v_lo(l) for l in range(L)]
        self.v_hi = [cfg.v_hi(l) for l in range(L)]
        if ed:
            types = [np.concatenate([np.ones(n_in), -np.ones(n_in)]).astype(np.int64)]
            types += [np.tile(np.where(np.arange(h) % 2 == 0, 1, -1), C).astype(np.int64)
                      for h in cfg.hidden]
            types += [np.ones(C, np.int64)]
            # the fixed sign of every weight (0: a bias, free)
            self.sign = [np.concatenate([np.outer(types[l + 1], types[l]),
                                         np.zeros((self.shape[l + 1], 1), np.int64)], axis=1)
                         for l in range(L)]
            self.tags = [np.arange(C * h) // h for h in cfg.hidden]
            self.signs = types[1:-1]
        else:
            self.sign = [np.zeros((self.shape[l + 1], self.n_cols[l] + 1), np.int64)
                         for l in range(L)]
        # per-weight clamp bounds: [-v_lo, v_hi], one side of zero for a constrained sign
        self.lo = [np.where(sg > 0, 0, -self.v_lo[l]).astype(np.int64)
                   for l, sg in enumerate(self.sign)]
        self.hi = [np.where(sg < 0, 0, self.v_hi[l]).astype(np.int64)
                   for l, sg in enumerate(self.sign)]
        if weights is None:
            weights = []
            for l in range(L):
                n_i, n_o, n_c = self.shape[l], self.shape[l + 1], self.n_cols[l]
                scale = cfg.init / np.sqrt(n_i if ed and l == 0 else
                                           (cfg.hidden[l - 1] if ed else n_i))
                if ed:
                    w = rng.uniform(0.0, 2.0 * scale, size=(n_o, n_c)) * (1 << cfg.frac[l])
                    w = self.sign[l][:, :-1] * np.round(w)
                else:
                    w = np.round(rng.normal(0.0, scale, size=(n_o, n_c)) * (1 << cfg.frac[l]))
                w = np.clip(w, -cfg.f_max(l), cfg.f_max(l)).astype(np.int64)
                w <<= cfg.drop[l]
                weights.append(np.concatenate([w, np.zeros((n_o, 1), np.int64)], axis=1))
        self.v = [np.array(w, dtype=np.int64) for w in weights]
        if not ed:
            self.tags = [np.arange(h) % C for h in cfg.hidden]
            if cfg.signs == "alternate":
                self.signs = [np.where((np.arange(h) // C) % 2 == 0, 1, -1).astype(np.int64)
                              for h in cfg.hidden]
            else:
                self.signs = [np.where(rng.integers(0, 2, size=h) == 1, 1, -1)
                              .astype(np.int64) for h in cfg.hidden]
        # connectivity masks [n_out, n_cols + 1] (bias always present): ed's block structure,
        # then a random fan_in of the allowed columns
        self.masks = []
        for l in range(L):
            n_o, n_c, k = self.shape[l + 1], self.n_cols[l], cfg.fan_in[l]
            allowed = np.ones((n_o, n_c), dtype=bool)
            if ed and l > 0:
                rows, cols = n_o // C, self.shape[l] // C
                allowed = (np.arange(n_o)[:, None] // rows) == (np.arange(n_c)[None, :] // cols)
            mask = np.concatenate([allowed, np.ones((n_o, 1), bool)], axis=1)
            if k > 0:
                for j in range(n_o):
                    choices = np.flatnonzero(allowed[j])
                    if k < len(choices):
                        mask[j, :n_c] = False
                        mask[j, rng.choice(choices, size=k, replace=False)] = True
            self.masks.append(mask)
        for l, w in enumerate(self.v):
            want = (self.shape[l + 1], self.n_cols[l] + 1)
            if w.shape != want:
                raise ClockpropError(f"integer training: layer {l} weights have shape "
                                     f"{w.shape}, want {want} (bias column last)")
            if w.size and ((w < self.lo[l]) | (w > self.hi[l])).any():
                raise ClockpropError(f"integer training: layer {l} has a weight outside "
                                     f"[-{self.v_lo[l]}, {self.v_hi[l]}]"
                                     + (" or of the wrong sign" if ed else ""))
            w[~self.masks[l]] = 0
        self.rng = rng
        self.lfsr = Lfsr16(cfg.lfsr_seed)
        self.steps = 0
        self._offsets = [np.array(lfsr_offsets(self.n_cols[l], l)) for l in range(L)]
        self._rnd = [(1 << (cfg.frac[l] - 1)) if l < L - 1 else 0 for l in range(L)]

    @property
    def n_layers(self):
        return len(self.v)

    @property
    def forward_weights(self):
        """``F_l = V_l >> drop_l``, the weights that the forward pass uses."""
        return [v >> d for v, d in zip(self.v, self.cfg.drop)]

    def folded_weights(self):
        """Per layer ``(W, b)``: the forward weights per input ``[n_out, n_in]`` (``ed``'s two
        input copies added) and the bias weight ``[n_out]``."""
        out = []
        for l, f in enumerate(self.forward_weights):
            w, n = f[:, :-1], self.shape[l]
            if w.shape[1] != n:
                w = w[:, :n] + w[:, n:]
            out.append((w, f[:, -1]))
        return out

    # -- the arithmetic ------------------------------------------------------------------

    def forward_all(self, a, gates=None):
        """Activations ``[a_0, ..., a_{L-1}]`` and the logits for inputs ``a`` [N, n_in].

        ``gates``: a list that receives each hidden layer's gate ``[-m < q < A + m]``.
        """
        A, m = self.fmt.a_max, self.cfg.gate_margin
        acts = [np.asarray(a, dtype=np.int64)]
        for l, (w, b) in enumerate(self.folded_weights()):
            h = acts[-1] @ w.T + A * b + self._rnd[l]
            if l == self.n_layers - 1:
                return acts, h
            q = h >> self.cfg.frac[l]
            if gates is not None:
                gates.append((q > -m) & (q < A + m))
            acts.append(np.clip(q, 0, A))

    def error(self, logits, labels):
        """The quantized error ``e`` [N, C] (module docs)."""
        cfg = self.cfg
        t = np.zeros_like(logits)
        rows = np.arange(len(labels))
        t[rows, labels] = cfg.target()
        e = np.clip((t - logits) >> cfg.e_shift, -cfg.e_max, cfg.e_max)
        if cfg.rival:
            others = logits.astype(float)
            others[rows, labels] = -np.inf
            keep = np.zeros(e.shape, dtype=bool)
            keep[rows, labels] = True
            keep[rows, np.argmax(others, axis=1)] = True
            e = np.where(keep, e, 0)
        return e

    def deltas(self, gates, e):
        """Per-layer deltas [N, n_out]: ``s_j * e[c_j] * g_j`` in hidden layers (``gates``
        from :meth:`forward_all`), ``e`` last."""
        return [s * e[:, c] * g for s, c, g in zip(self.signs, self.tags, gates)] + [e]

    def rounding(self, l, s, lr=0):
        """``r_{l,i}`` for every column of layer ``l`` from the LFSR state ``s`` (or const)."""
        if self.cfg.rounding != "lfsr":
            return np.full(self.n_cols[l] + 1, self.cfg.r_const(l, lr), dtype=np.int64)
        k = self.cfg.shift[l] + lr
        rot = np.array([_rotr16(s, o) for o in range(LFSR_BITS)], dtype=np.int64)
        return rot[self._offsets[l]] & ((1 << k) - 1)

    def step(self, x, label, lr=0):
        """Train on one sample: integer activations ``x`` [n_in], its class, and the extra
        learning-rate shift ``lr`` (``0..anneal``)."""
        x = np.asarray(x, dtype=np.int64).reshape(1, -1)
        self._check(x, np.asarray([label]))
        if not _is_int(lr) or not 0 <= lr <= self.cfg.anneal:
            raise ClockpropError(f"integer training: lr must be an integer in "
                                 f"[0, {self.cfg.anneal}] (anneal), got {lr!r}")
        A = self.fmt.a_max
        gates = []
        acts, logits = self.forward_all(x, gates)
        e = self.error(logits, np.asarray([label]))
        deltas = self.deltas(gates, e)
        s = self.lfsr.draw() if self.cfg.rounding == "lfsr" else 0
        for l, (v, d) in enumerate(zip(self.v, deltas)):
            ahat = np.append(acts[l][0][self.col_src[l]], A)
            u = (d[0][:, None] * ahat[None, :] + self.rounding(l, s, lr)[None, :]) >> \
                (self.cfg.shift[l] + lr)
            np.clip(v + u * self.masks[l], self.lo[l], self.hi[l], out=v)
        self.steps += 1
        return int(np.argmax(logits[0]))

    def _check(self, x, labels):
        if x.ndim != 2 or x.shape[1] != self.shape[0]:
            raise ClockpropError(f"integer training: inputs have shape {x.shape}; the net takes "
                                 f"{self.shape[0]} features")
        if x.size and (x.min() < 0 or x.max() > self.fmt.a_max):
            raise ClockpropError(f"integer training: input activations must be in "
                                 f"[0, {self.fmt.a_max}]")
        if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                            or labels.max() >= self.n_classes):
            raise ClockpropError(f"integer training: labels must be integers in "
                                 f"[0, {self.n_classes - 1}], got {labels.min()!r}.."
                                 f"{labels.max()!r}")

    def train_steps(self, x, labels, lr=0):
        """:meth:`step` over every row of ``x`` in order (``lr``: one per row, or one for
        all); the predictions made on the way."""
        x = np.asarray(x, dtype=np.int64)
        labels = np.asarray(labels)
        self._check(x, labels)
        lr = np.broadcast_to(np.asarray(lr, dtype=np.int64), labels.shape)
        return np.array([self.step(xi, int(li), int(ri)) for xi, li, ri in zip(x, labels, lr)],
                        dtype=np.int64)

    # -- results -------------------------------------------------------------------------

    def model(self, meta=None):
        """The current weights as an :class:`IntModel` (inference form)."""
        A = self.fmt.a_max
        layers = tuple(IntLayer(weight=w.copy(), bias=A * b + self._rnd[l],
                                frac=self.cfg.frac[l])
                       for l, (w, b) in enumerate(self.folded_weights()))
        return IntModel(self.cfg.model_fmt, layers, dict(meta or {}))

    def flat_weights(self):
        """The weights that exist (``masks``), layer by layer, row-major: the order in which a
        training top reads them back (``READ_WEIGHTS``)."""
        return np.concatenate([v[mask] for v, mask in zip(self.v, self.masks)])

    def predict(self, a):
        return np.argmax(self.forward_all(np.asarray(a, dtype=np.int64))[1], axis=1)

    def accuracy(self, a, y):
        return float(np.mean(self.predict(a) == np.asarray(y)))


def sample_order(cfg, n, rng=None):
    """The training sequence: ``epochs`` fresh permutations of ``range(n)``, concatenated."""
    rng = np.random.default_rng([cfg.seed, 1]) if rng is None else rng
    return np.concatenate([rng.permutation(n) for _ in range(cfg.epochs)])


def lr_schedule(cfg, n):
    """The extra learning-rate shift of every sample of :func:`sample_order` (``n`` samples
    an epoch): ``(anneal + 1) * epoch // epochs``."""
    epoch = np.arange(n * cfg.epochs) // n
    return ((cfg.anneal + 1) * epoch // cfg.epochs).astype(np.int64)


def train_int(cfg, data, eval_every=0, progress=None):
    """Train ``cfg`` on a :class:`models.datasets.Dataset`; the model and the learning curve.

    The inputs are quantized with the config's format; the samples go in the order of
    :func:`sample_order`. The curve gets a point every ``eval_every`` steps (default: every
    epoch) and at the end.
    """
    trainer = IntTrainer(cfg, data.n_inputs, data.n_classes)
    fmt = trainer.fmt
    a_train, a_test = fmt.quantize_input(data.x_train), fmt.quantize_input(data.x_test)
    order = sample_order(cfg, len(a_train))
    lrs = lr_schedule(cfg, len(a_train))
    every = eval_every or len(a_train)
    history = [_point(trainer, 0, a_train, data.y_train, a_test, data.y_test)]
    seconds = 0.0
    for start in range(0, len(order), every):
        idx = order[start:start + every]
        t0 = time.perf_counter()
        trainer.train_steps(a_train[idx], data.y_train[idx], lrs[start:start + every])
        seconds += time.perf_counter() - t0
        history.append(_point(trainer, trainer.steps, a_train, data.y_train, a_test,
                              data.y_test))
        if progress is not None:
            progress(trainer.steps, len(order), history[-1])
    model = trainer.model({"rule": cfg.rule, "int_train": cfg.to_dict(), "history": history})
    return IntTrainResult(model=model, trainer=trainer, history=history, seconds=seconds,
                          samples_per_s=len(order) / max(seconds, 1e-9))


def _point(trainer, step, a_train, y_train, a_test, y_test):
    return {"step": int(step), "train_acc": trainer.accuracy(a_train, y_train),
            "test_acc": trainer.accuracy(a_test, y_test)}
