"""Recurrent character models trained with the layer-local rule, and their integer golden models.

Three cells, each with a float model (trained here) and an integer model (what the gateware
computes, bit for bit). ``x_t`` is the one-hot input character, ``f(h) = clip(h, 0, 1)``,
``V`` the vocabulary size, ``H`` the number of hidden channels.

``elman``
    ``h_t = W_in x_t + W_ctx f(h_{t-1}) + b``, ``logits_t = W_out f(h_t) + b_out``.
    The context ``f(h_{t-1})`` is an input of step ``t`` like the character; both are
    trained with the class-sign broadcast rule of DESIGN.md (no backpropagation through time).
``reservoir``
    The Elman cell with ``W_in``, ``W_ctx`` and ``b`` fixed at random; only the readout learns.
``sioconv``
    A linear per-channel state (the SioConv recurrence without gates):
    ``c_t = a * c_{t-1} + W_in x_t`` with ``a_j = 1 - 2**-k_j``, ``h_t = c_t + b``,
    ``logits_t = W_out f(h_t) + b_out``. The hardware multiplies by ``a`` with a shift and a
    subtraction: ``c - (c >> k)``.

``context=False`` (the ablation) forces the fed-back context to zero: Elman and reservoir see
``f(h_{t-1}) = 0``, SioConv keeps no state (``a = 0``).

Learning rule (float, every weight updated in parallel, step by step, no derivative of ``f``)::

    p = softmax(logits_t);  e = onehot(x_{t+1}) - p
    W_out += lr_out * e f(h_t)^T;  b_out += lr_out * e                  (delta rule)
    delta_j = s_j * e[j mod V] * [0 < h_j < 1]                           (class-sign broadcast)
    W += lr * delta u^T;  b += lr * delta

``u`` is the input of the hidden layer: ``[x_t ; f(h_{t-1})]`` for Elman; for SioConv it is the
input trace ``xbar_t = a * xbar_{t-1} + x_t`` (one per decay group), because ``c_t`` sums the
decayed inputs. ``s_j = +1`` for even ``j // V`` and ``-1`` for odd.

Integer arithmetic (int64 in numpy; every ``>>`` floors; ``A = fmt.a_max``)
---------------------------------------------------------------------------

The input character is the activation vector ``xa = A * onehot(x_t)``; the state starts at 0.

Elman / reservoir (:class:`IntElman`), one dense layer over ``u = [xa ; a_{t-1}]``::

    acc_t = W @ u + b                  W = [W_in | W_ctx] int [H, V+H], b with 1 << (frac-1)
    a_t = clip(acc_t >> frac, 0, A)    (the next context; a_{-1} = 0, or always 0 if no context)
    logits_t = W_out @ a_t + b_out     (frac_out: logits stand for logits_t / (A * 2**frac_out))

SioConv (:class:`IntSioConv`), state ``C`` signed, ``state_width`` bits, in units of
``2**-(frac + s)`` accumulator LSBs (``s = state_frac``; float ``c = C / (A * 2**(frac + s))``)::

    z_t = W_in @ xa                    (= A * W_in[:, x_t]; at most A * max|W_in| in magnitude)
    C_t = sat(C_{t-1} - (C_{t-1} >> k_j) + (z_t << s))       (sat never binds: width is exact)
    a_t = clip((C_t + (b << s)) >> (frac + s), 0, A)          (b has 1 << (frac-1) folded in)
    logits_t = W_out @ a_t + b_out

Without context ``C_t = sat(z_t << s)``.

Generation (:func:`generate`): feed the prompt one character per step, then feed back each
chosen character. Argmax takes the lowest index among equal logits. Sampling is integer
(:func:`sample_index`) with the 16-bit Galois LFSR of :class:`Lfsr16`.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ClockpropError
from ..core.lfsr import Lfsr16
from ..core.qformat import QFormat, signed_width

__all__ = [
    "CELLS", "RecurrentConfig", "ElmanNet", "SioConvNet", "IntElman", "IntSioConv",
    "TrainResult", "train_recurrent", "quantize_recurrent", "bits_per_char", "accuracy",
    "SAMPLE_PRECISION", "sample_index", "temperature_shift",
    "generate", "generate_streams", "prompt_ids", "class_tags", "decay_shifts_per_channel",
]

CELLS = ("elman", "reservoir", "sioconv")


def activation(h):
    """``f``: the clamp to ``[0, 1]``; the integer model's ``clip(., 0, A)``."""
    return np.clip(h, 0.0, 1.0)


@dataclass(frozen=True)
class RecurrentConfig:
    """Everything that fixes a training run (with ``seed``, the run is reproducible).

    Parameters
    ----------
    cell : ``"elman"``, ``"reservoir"`` or ``"sioconv"``
    hidden : number of hidden channels ``H``
    context : ``False`` forces the fed-back context to zero (the ablation)
    epochs : passes over the text
    lr, lr_out : learning rates of the hidden layer (broadcast rule) and of the readout
    streams : the text is cut into this many contiguous pieces, stepped in parallel
    init : half-range of the uniform initial hidden weights
    decay_shifts : SioConv decay exponents ``k`` (``a = 1 - 2**-k``), one per channel group
    radius : reservoir: spectral radius of the fixed recurrent weights
    seed : seed of ``np.random.default_rng``
    """

    cell: str = "elman"
    hidden: int = 24
    context: bool = True
    epochs: int = 30
    lr: float = 0.05
    lr_out: float = 0.1
    streams: int = 8
    init: float = 0.5
    decay_shifts: tuple = (1, 2, 3, 4)
    radius: float = 0.9
    seed: int = 0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ClockpropError(f"unknown recurrent cell {self.cell!r}; choose one of "
                                 f"{', '.join(CELLS)}")
        for name in ("hidden", "epochs", "streams"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ClockpropError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "lr_out", "init", "radius"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ClockpropError(f"{name} must be a finite number >= 0, got {value!r}")
        shifts = tuple(self.decay_shifts)
        if not shifts or any(not isinstance(k, int) or not 1 <= k <= 16 for k in shifts):
            raise ClockpropError(f"decay_shifts must be integers in [1, 16], got "
                                 f"{self.decay_shifts!r}")
        object.__setattr__(self, "decay_shifts", shifts)


def class_tags(n_hidden, n_vocab):
    """Class tag ``c_j = j mod V`` and sign ``s_j`` (+1 for even ``j // V``) of each channel."""
    j = np.arange(n_hidden)
    return j % n_vocab, np.where((j // n_vocab) % 2 == 0, 1.0, -1.0)


def decay_shifts_per_channel(n_hidden, shifts):
    """Channel ``j`` gets ``shifts[j * G // H]`` (``G`` groups of consecutive channels)."""
    shifts = np.asarray(shifts, dtype=np.int64)
    return shifts[np.arange(n_hidden) * len(shifts) // n_hidden]


def _one_hot(ids, n):
    out = np.zeros((len(ids), n))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def _check_ids(ids, n_vocab, what="sequence"):
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ClockpropError(f"the {what} must be a 1-D array of character indices")
    if ids.size and (ids.min() < 0 or ids.max() >= n_vocab):
        raise ClockpropError(f"the {what} has character indices outside [0, {n_vocab - 1}]")
    return ids.astype(np.int64)


# -- float models ---------------------------------------------------------------------------


class _Recurrent:
    """Shared driver: ``init_state``/``step`` are defined by each model (``w_in`` [H, V])."""

    integer = False

    @property
    def n_vocab(self):
        return self.w_in.shape[1]

    @property
    def n_hidden(self):
        return self.w_in.shape[0]

    def run(self, ids):
        """Logits of every step for one stream of character indices, from the zero state."""
        ids = _check_ids(ids, self.n_vocab)
        state = self.init_state(1)
        out = []
        for t in range(len(ids)):
            state, logits = self.step(state, ids[t:t + 1])
            out.append(logits[0])
        dtype = np.int64 if self.integer else np.float64
        return np.array(out, dtype=dtype).reshape(len(ids), self.n_vocab)

    def float_logits(self, logits):
        return np.asarray(logits, dtype=np.float64) / self.logit_scale


@dataclass
class ElmanNet(_Recurrent):
    """Float Elman (and reservoir) model; the state is the context ``f(h_{t-1})``."""

    w_in: np.ndarray        # [H, V]
    w_ctx: np.ndarray       # [H, H]
    b: np.ndarray           # [H]
    w_out: np.ndarray       # [V, H]
    b_out: np.ndarray       # [V]
    context: bool = True
    cell: str = "elman"
    logit_scale = 1.0

    def init_state(self, n):
        return np.zeros((n, self.n_hidden))

    def hidden(self, ctx, ids):
        """Pre-activation ``h_t`` for context ``f(h_{t-1})`` [N, H] and characters [N]."""
        h = self.w_in[:, ids].T + self.b
        if self.context:
            h = h + ctx @ self.w_ctx.T
        return h

    def step(self, state, ids):
        a = activation(self.hidden(state, ids))
        return a, a @ self.w_out.T + self.b_out


@dataclass
class SioConvNet(_Recurrent):
    """Float SioConv-style model; the state is ``c_t`` (before the bias)."""

    w_in: np.ndarray        # [H, V]
    b: np.ndarray           # [H]
    shifts: np.ndarray      # [H] int, decay a_j = 1 - 2**-shifts[j]
    w_out: np.ndarray       # [V, H]
    b_out: np.ndarray       # [V]
    context: bool = True
    cell: str = "sioconv"
    logit_scale = 1.0

    @property
    def decay(self):
        return 1.0 - np.exp2(-np.asarray(self.shifts, dtype=np.float64))

    def init_state(self, n):
        return np.zeros((n, self.n_hidden))

    def state_update(self, c, ids):
        z = self.w_in[:, ids].T
        return self.decay * c + z if self.context else z

    def step(self, state, ids):
        c = self.state_update(state, ids)
        a = activation(c + self.b)
        return c, a @ self.w_out.T + self.b_out


# -- training --------------------------------------------------------------------------------


@dataclass
class TrainResult:
    net: object
    curve: list             # training loss (bits per character) of every epoch
    seconds: float
    config: RecurrentConfig = field(default=None)


def _init_net(cfg, n_vocab, rng):
    H, V = cfg.hidden, n_vocab
    w_out, b_out = np.zeros((V, H)), np.zeros(V)
    if cfg.cell == "sioconv":
        shifts = decay_shifts_per_channel(H, cfg.decay_shifts)
        w_in = rng.uniform(-cfg.init, cfg.init, (H, V)) * np.exp2(-shifts)[:, None]
        return SioConvNet(w_in, rng.uniform(0.25, 0.75, H), shifts, w_out, b_out,
                          cfg.context, "sioconv")
    if cfg.cell == "reservoir":
        w_in = rng.uniform(-1.0, 1.0, (H, V))
        w_ctx = rng.uniform(-1.0, 1.0, (H, H))
        w_ctx *= cfg.radius / max(np.max(np.abs(np.linalg.eigvals(w_ctx))), 1e-12)
        return ElmanNet(w_in, w_ctx, rng.uniform(0.0, 1.0, H), w_out, b_out,
                        cfg.context, "reservoir")
    w_in = rng.uniform(-cfg.init, cfg.init, (H, V))
    w_ctx = rng.uniform(-cfg.init, cfg.init, (H, H)) / np.sqrt(H)
    return ElmanNet(w_in, w_ctx, rng.uniform(0.25, 0.75, H), w_out, b_out,
                    cfg.context, "elman")


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def train_recurrent(ids, n_vocab, cfg=RecurrentConfig(), progress=None):
    """Train a float model on one text (character indices ``ids``) with the local rule.

    The text is cut into ``cfg.streams`` contiguous pieces that are stepped in parallel;
    each epoch moves the cuts by a random offset (up to a quarter piece) and starts every
    piece from the zero state; every step updates all weights once with the mean update
    over the pieces. ``curve`` holds each epoch's loss measured before each step's update.
    ``progress(epoch, loss_bits)`` is called per epoch.
    """
    ids = _check_ids(ids, n_vocab, "training text")
    if not isinstance(n_vocab, int) or n_vocab < 2:
        raise ClockpropError(f"the vocabulary needs at least 2 characters, got {n_vocab!r}")
    if len(ids) < 2:
        raise ClockpropError("the training text is too short: give at least two characters")
    B = min(cfg.streams, max(1, (len(ids) - 1) // 2))
    slack = (len(ids) - 1) // (4 * B)                   # the pieces move by up to this
    L = (len(ids) - 1 - slack) // B
    rng = np.random.default_rng(cfg.seed)
    net = _init_net(cfg, n_vocab, rng)
    H, V = cfg.hidden, n_vocab
    tags, signs = class_tags(H, V)
    eye = np.eye(V)
    train_hidden = cfg.cell != "reservoir"
    sio = cfg.cell == "sioconv"
    if sio:
        group = np.arange(H) * len(cfg.decay_shifts) // H
        group_decay = 1.0 - np.exp2(-np.asarray(cfg.decay_shifts, dtype=np.float64))
    curve = []
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        starts = np.arange(B) * L + rng.integers(0, slack + 1)
        xs = ids[starts[:, None] + np.arange(L)]        # [B, L] inputs
        ys = ids[starts[:, None] + np.arange(L) + 1]    # [B, L] targets
        state = net.init_state(B)
        if sio:
            trace = np.zeros((B, len(cfg.decay_shifts), V))
        loss = 0.0
        for t in range(L):
            x, y = xs[:, t], ys[:, t]
            if sio:
                c = net.state_update(state, x)
                h = c + net.b
            else:
                h = net.hidden(state, x)
            a = activation(h)
            logits = a @ net.w_out.T + net.b_out
            p = _softmax(logits)
            loss -= np.log2(p[np.arange(B), y]).sum()
            e = eye[y] - p                                          # [B, V]
            if train_hidden:
                delta = signs * e[:, tags] * ((h > 0) & (h < 1))    # [B, H]
                if sio:
                    trace = (trace * group_decay[:, None] if cfg.context else 0.0 * trace)
                    trace += eye[x][:, None, :]
                    u = trace[:, group, :]                          # [B, H, V]
                    net.w_in += cfg.lr / B * np.einsum("bj,bjv->jv", delta, u)
                else:
                    net.w_in += cfg.lr / B * delta.T @ eye[x]
                    if cfg.context:
                        net.w_ctx += cfg.lr / B * delta.T @ state
                net.b += cfg.lr * delta.mean(axis=0)
            net.w_out += cfg.lr_out / B * e.T @ a
            net.b_out += cfg.lr_out * e.mean(axis=0)
            state = c if sio else a
        curve.append(float(loss / (B * L)))
        if not np.isfinite(curve[-1]):
            raise ClockpropError("training diverged (loss is not finite); lower the learning "
                                 "rates")
        if progress is not None:
            progress(epoch, curve[-1])
    return TrainResult(net, curve, time.perf_counter() - t0, cfg)


# -- integer golden models -------------------------------------------------------------------


@dataclass(frozen=True)
class IntElman(_Recurrent):
    """Integer Elman/reservoir model: see the module docstring for the exact arithmetic."""

    fmt: QFormat
    w: np.ndarray           # int64 [H, V+H] = [W_in | W_ctx]
    b: np.ndarray           # int64 [H], accumulator units, rounding 1 << (frac-1) folded in
    frac: int
    w_out: np.ndarray       # int64 [V, H]
    b_out: np.ndarray       # int64 [V]
    frac_out: int
    context: bool = True
    integer = True

    def __post_init__(self):
        H = self.b.shape[0]
        if self.w.ndim != 2 or self.w.shape[0] != H or self.w.shape[1] <= H:
            raise ClockpropError(f"Elman weights {self.w.shape} do not match {H} channels")
        self.fmt.check_layer(self.w, self.b, self.frac)
        self.fmt.check_layer(self.w_out, self.b_out, self.frac_out)
        if self.w_out.shape[1] != H or self.w_out.shape[0] != self.n_vocab:
            raise ClockpropError(f"readout weights {self.w_out.shape} do not match "
                                 f"{self.n_vocab} characters and {H} channels")

    @property
    def n_hidden(self):
        return self.b.shape[0]

    @property
    def n_vocab(self):
        return self.w.shape[1] - self.n_hidden

    @property
    def logit_scale(self):
        return self.fmt.a_max * (1 << self.frac_out)

    def widths(self):
        """Register widths: hidden accumulator, logit accumulator (exact, cannot overflow)."""
        return {"acc": self.fmt.acc_width(self.w, self.b),
                "logit": self.fmt.acc_width(self.w_out, self.b_out),
                "act": self.fmt.act_bits}

    def init_state(self, n):
        return np.zeros((n, self.n_hidden), dtype=np.int64)

    def step(self, state, ids):
        A = self.fmt.a_max
        xa = np.zeros((len(ids), self.n_vocab), dtype=np.int64)
        xa[np.arange(len(ids)), ids] = A
        ctx = state if self.context else np.zeros_like(state)
        acc = np.concatenate([xa, ctx], axis=1) @ self.w.T + self.b
        a = np.clip(acc >> self.frac, 0, A)
        return a, a @ self.w_out.T + self.b_out


@dataclass(frozen=True)
class IntSioConv(_Recurrent):
    """Integer SioConv-style model: see the module docstring for the exact arithmetic."""

    fmt: QFormat
    w_in: np.ndarray        # int64 [H, V]
    b: np.ndarray           # int64 [H], accumulator units, rounding folded in
    frac: int
    shifts: np.ndarray      # int64 [H], decay C - (C >> k)
    state_frac: int         # s: extra fraction bits of the state
    w_out: np.ndarray       # int64 [V, H]
    b_out: np.ndarray       # int64 [V]
    frac_out: int
    context: bool = True
    integer = True

    def __post_init__(self):
        self.fmt.check_layer(self.w_in, self.b, self.frac)
        self.fmt.check_layer(self.w_out, self.b_out, self.frac_out)
        if self.shifts.shape != self.b.shape or self.shifts.min() < 1:
            raise ClockpropError("SioConv decay shifts must be one integer >= 1 per channel")
        if not isinstance(self.state_frac, int) or not 0 <= self.state_frac <= 16:
            raise ClockpropError(f"state_frac must be in [0, 16], got {self.state_frac!r}")

    @property
    def n_hidden(self):
        return self.b.shape[0]

    @property
    def n_vocab(self):
        return self.w_in.shape[1]

    @property
    def logit_scale(self):
        return self.fmt.a_max * (1 << self.frac_out)

    def state_bound(self):
        """``M`` with ``|C| <= M`` always: ``(max|z << s| + 1) << max k`` (floor decay)."""
        z_max = self.fmt.a_max * int(np.abs(self.w_in).max(initial=0)) << self.state_frac
        return (z_max + 1) << int(self.shifts.max())

    @property
    def state_width(self):
        m = self.state_bound()
        return signed_width(-m, m)

    def widths(self):
        bias_s = self.b << self.state_frac
        m = self.state_bound()
        return {"state": self.state_width,
                "sum": signed_width(-m + int(bias_s.min()), m + int(bias_s.max())),
                "logit": self.fmt.acc_width(self.w_out, self.b_out),
                "act": self.fmt.act_bits}

    def init_state(self, n):
        return np.zeros((n, self.n_hidden), dtype=np.int64)

    def step(self, state, ids):
        A, s = self.fmt.a_max, self.state_frac
        z = self.w_in[:, ids].T * A
        c = state - (state >> self.shifts) + (z << s) if self.context else z << s
        lim = 1 << (self.state_width - 1)
        c = np.clip(c, -lim, lim - 1)
        a = np.clip((c + (self.b << s)) >> (self.frac + s), 0, A)
        return c, a @ self.w_out.T + self.b_out


def quantize_recurrent(net, fmt=QFormat(), state_frac=None):
    """Post-training quantization of a float model into its integer golden model.

    Per-layer power-of-two weight scales chosen by ``fmt.choose_frac``; the hidden layer
    folds the rounding half into its bias, the readout does not. SioConv's ``state_frac``
    defaults to the largest decay shift (floor error of the decay below one accumulator LSB).
    """
    if isinstance(net, SioConvNet):
        frac = fmt.choose_frac(net.w_in, net.b)
        w_out, b_out, frac_out = _quantize_layer(fmt, net.w_out, net.b_out, False)
        s = int(np.max(net.shifts)) if state_frac is None else state_frac
        return IntSioConv(fmt, fmt.quantize_weight(net.w_in, frac).astype(np.int64),
                          fmt.quantize_bias(net.b, frac, True).astype(np.int64), frac,
                          np.asarray(net.shifts, dtype=np.int64), s, w_out, b_out, frac_out,
                          net.context)
    if isinstance(net, ElmanNet):
        w, b, frac = _quantize_layer(fmt, np.concatenate([net.w_in, net.w_ctx], axis=1),
                                     net.b, True)
        w_out, b_out, frac_out = _quantize_layer(fmt, net.w_out, net.b_out, False)
        return IntElman(fmt, w, b, frac, w_out, b_out, frac_out, net.context)
    raise ClockpropError(f"cannot quantize a {type(net).__name__}; expected a float "
                         f"recurrent model")


def _quantize_layer(fmt, w, b, rounding):
    frac = fmt.choose_frac(w, b)
    return (fmt.quantize_weight(w, frac).astype(np.int64),
            fmt.quantize_bias(b, frac, rounding).astype(np.int64), frac)


# -- metrics ---------------------------------------------------------------------------------


def bits_per_char(model, ids):
    """Mean cross-entropy (bits) of predicting ``ids[t+1]`` from ``ids[:t+1]``, one stream.

    Integer models are scored by the softmax of their logits scaled back to float
    (``logits / (A * 2**frac_out)``).
    """
    ids = _check_ids(ids, model.n_vocab)
    if len(ids) < 2:
        raise ClockpropError("bits per character needs a text of at least two characters")
    z = model.float_logits(model.run(ids[:-1]))
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(ids) - 1), ids[1:]].mean() / np.log(2))


def accuracy(model, ids, mask=None):
    """Share of positions ``t`` (where ``mask[t]``) at which argmax predicts ``ids[t+1]``."""
    ids = _check_ids(ids, model.n_vocab)
    hit = np.argmax(model.run(ids[:-1]), axis=1) == ids[1:]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != hit.shape:
            raise ClockpropError(f"the position mask has {mask.size} entries; the text has "
                                 f"{hit.size} predicted positions")
        hit = hit[mask]
    return float(hit.mean()) if hit.size else float("nan")


# -- generation ------------------------------------------------------------------------------

SAMPLE_PRECISION = 15       # weight of the largest logit: 1 << 15


def sample_index(logits, shift, lfsr):
    """Draw a character from integer logits with the base-2 softmax ``p_i ~ 2**-d_i``.

    All integer::

        d_i = (max(logits) - logits_i) >> shift          (shift = temperature)
        w_i = (1 << 15) >> d_i      (0 once d_i > 15)
        S = sum(w_i);  u = lfsr.draw();  r = (u * S) >> 16      (r in [0, S))
        index = the first i with w_0 + ... + w_i > r

    ``p_i`` is ``softmax(logits_i * ln 2 / 2**shift)`` with ``d_i`` floored; see
    :func:`temperature_shift` for the float temperature.
    """
    logits = np.asarray(logits, dtype=np.int64).ravel()
    if not isinstance(shift, int) or not 0 <= shift <= 62:
        raise ClockpropError(f"the temperature shift must be an integer in [0, 62], "
                             f"got {shift!r}")
    d = (logits.max() - logits) >> shift
    w = np.where(d <= SAMPLE_PRECISION, (1 << SAMPLE_PRECISION) >> np.minimum(d, 62), 0)
    r = (lfsr.draw() * int(w.sum())) >> 16
    return int(np.argmax(np.cumsum(w) > r))


def temperature_shift(model, temperature=1.0):
    """The shift that best approximates a float softmax temperature for an integer model."""
    if not model.integer:
        raise ClockpropError("sampling runs on the integer model; quantize first")
    if not temperature > 0:
        raise ClockpropError(f"the temperature must be > 0, got {temperature!r}")
    return max(0, int(round(math.log2(temperature * model.logit_scale * math.log(2)))))


def prompt_ids(model, vocab, prompt, n):
    """The checked arguments of a generation: ``prompt`` as character ids for ``model``."""
    if len(vocab) != model.n_vocab:
        raise ClockpropError(f"the vocabulary has {len(vocab)} characters, the model "
                             f"{model.n_vocab}")
    if not isinstance(prompt, (str, bytes)) or not prompt:
        raise ClockpropError("the prompt is empty; give at least one character to start from")
    ids = vocab.encode(prompt, "prompt")
    if not isinstance(n, int) or n < 0:
        raise ClockpropError(f"the number of characters must be an integer >= 0, got {n!r}")
    return ids


def generate(model, vocab, prompt, n, shift=None, seed=0xACE1):
    """Feed ``prompt``, then generate ``n`` characters one per step, each fed back as input.

    ``shift=None`` picks the argmax (float or integer model); an integer ``shift`` samples
    with :func:`sample_index` from an :class:`Lfsr16` seeded with ``seed`` (integer model
    only). Returns the ``n`` generated characters (without the prompt).
    """
    ids = prompt_ids(model, vocab, prompt, n)
    if shift is not None and not model.integer:
        raise ClockpropError("sampling runs on the integer model; quantize first, or use "
                             "argmax (shift=None)")
    lfsr = Lfsr16(seed) if shift is not None else None
    state = model.init_state(1)
    for t in range(len(ids)):
        state, logits = model.step(state, ids[t:t + 1])
    out = []
    for _ in range(n):
        i = int(np.argmax(logits[0])) if shift is None else sample_index(logits[0], shift, lfsr)
        out.append(i)
        state, logits = model.step(state, np.array([i]))
    return vocab.decode(out)


def generate_streams(model, vocab, prompts, ns, shift=None, seeds=0xACE1):
    """:func:`generate` for ``K`` independent streams: stream ``s`` continues ``prompts[s]``
    by ``ns[s]`` characters from an LFSR seeded with ``seeds[s]`` (an int seeds them all).

    What a ``hw.recurrent.RecurrentCore(streams=K)`` emits on each stream; returns the
    ``K`` texts.
    """
    prompts, ns = list(prompts), list(ns)
    seeds = [seeds] * len(prompts) if isinstance(seeds, int) else list(seeds)
    if not prompts or not len(prompts) == len(ns) == len(seeds):
        raise ClockpropError(f"one prompt, one length and one seed per stream: got "
                             f"{len(prompts)} prompts, {len(ns)} lengths, {len(seeds)} seeds")
    return [generate(model, vocab, p, n, shift=shift, seed=seed)
            for p, n, seed in zip(prompts, ns, seeds)]
