"""The learning rules, each in its own training form, each folding into a :class:`FloatNet`.

Notation as in :mod:`clockprop.models.floatnet`: layer ``l`` computes ``h_l = W_l @ f(h_{l-1}) + b_l``
with ``f = clip(., 0, 1)`` on every layer's input, the last layer linear, and the error
``e = t - y`` for one-hot targets ``t``. Every rule works on the same two lists:

``acts``
    ``acts[l]`` is the input activation of layer ``l`` (``acts[0] = f(x)``), in the rule's
    own layout. Float training computes them with :meth:`Rule.forward`; quantization-aware
    training computes them with the integer golden model on the folded net and converts them
    with :meth:`Rule.unfold_acts` (straight-through: the float weights get the update).
``y``
    The output ``[N, C]``.

A hidden neuron's gate is the 1-bit active window ``g = [0 < a < 1]`` on its activation
``a = f(h)``; it equals ``[0 < h < 1]`` and is a comparator in hardware (``0 < a_int < A``).

Rules
-----
``ed``
    Kaneko's error diffusion, one network per class, all classes at once: weight tensors
    ``[C, n_out, n_in]``. Inputs are fed twice, a ``+`` copy (type +1) and a ``-`` copy
    (type -1); hidden neurons alternate types ``+1, -1, ...``; the output neuron has type +1.
    Every weight keeps the sign ``t_pre * t_post`` (an update that would cross zero stops at
    zero). Update: ``dW_ji = lr * e_c * t_j * g_j * f(h_i)`` (``g = 1`` at the output).
    Biases are weights from a constant input 1 that, like the data inputs, comes as a
    ``+``/``-`` pair; the pair folds into one bias with no sign constraint, so a bias is
    stored as one free number with the update ``db_j = lr * e_c * t_j * g_j``.
    Folding: the two input copies add; the per-class networks become dense layers with
    class-major neuron order (neuron ``j`` of class ``c`` is row ``c * H + j``), the layers
    after the first block-diagonal, the last ``C * H -> C``.
``csb``
    Class-sign broadcast: shared hidden layers; hidden neuron ``j`` has the class tag
    ``c_j = j mod C`` and a fixed random sign ``s_j``; ``delta_j = s_j * e[c_j] * g_j``,
    ``dW_ji = lr * delta_j * f(h_i)``; the output layer learns with the plain delta rule.
``bp``
    Backpropagation of softmax cross-entropy (``e = t - softmax(y)``), the derivative of
    ``f`` being the same gate. The float reference for reports, never an on-chip rule.

Minibatch updates are averaged over the batch.

Backends: a rule trains on numpy arrays or on torch tensors (:mod:`clockprop.models.backend`,
chosen by ``backend=``); it is built in numpy from the caller's random generator and then
moved, so every backend starts from the same numbers. :meth:`Rule.fold` and
:meth:`Rule.prune` work in numpy whatever the backend; :meth:`Rule.fold` gives numpy arrays.
"""

import numpy as np

from .backend import NUMPY
from ..core.errors import ClockpropError
from .floatnet import FloatNet, activation

__all__ = ["RULES", "FAN_IN_SELECT", "make_rule", "draw_fan_in", "Rule", "ED", "CSB", "BP", "gate"]

FAN_IN_SELECT = ("random", "variance", "magnitude")


def gate(a, xp=NUMPY):
    """The 1-bit active window ``[0 < a < 1]`` of an activation (``a = f(h)``), as 0.0/1.0."""
    return xp.to_float((a > 0.0) & (a < 1.0))


def draw_fan_in(rng, choices, k, std=None):
    """``k`` distinct entries of ``choices`` (input indices) drawn from ``rng``: uniformly, or
    with probability proportional to each input's standard deviation ``std`` (indexed by
    input) when given and at least ``k`` of the choices vary."""
    p = None
    if std is not None and (std[choices] > 0).sum() >= k:
        p = std[choices] / std[choices].sum()
    return rng.choice(choices, size=k, replace=False, p=p)


def _prune_mask(score, alive, fraction):
    """Mask keeping the entries of ``alive`` (0/1) whose ``score`` is not among the
    ``fraction`` smallest of them."""
    candidates = score[alive > 0]
    k = int(np.floor(fraction * candidates.size))
    if k == 0:
        return alive.copy()
    order = np.argsort(np.where(alive > 0, score, -np.inf), axis=None, kind="stable")
    mask = alive.copy().ravel()
    n_dead = alive.size - candidates.size
    mask[order[n_dead:n_dead + k]] = 0.0
    return mask.reshape(alive.shape)


class Rule:
    """The training form of a network under one learning rule.

    Subclasses hold ``self.w`` / ``self.b`` (lists of arrays in their own layout) and
    ``self.mask`` (pruning: 1 keeps a weight, 0 holds it at exactly zero), all arrays of the
    backend ``self.xp``.
    """

    name = ""
    xp = NUMPY
    _arrays = ("w", "b", "mask", "bias_mask")     # lists of float arrays moved to the backend

    def _place(self, backend):
        """Move the numpy-built arrays to ``backend`` (None: stay in numpy)."""
        self.xp = backend or NUMPY
        for name in self._arrays:
            setattr(self, name, [self.xp.asarray(a) for a in getattr(self, name)])

    def forward(self, x):
        """``(acts, y)`` in the training form for float inputs ``x`` [N, n_in]."""
        raise NotImplementedError

    def fold(self):
        """The inference form, a :class:`FloatNet` computing exactly :meth:`forward`'s ``y``."""
        raise NotImplementedError

    def unfold_acts(self, acts):
        """Folded-layout activations (``acts[0]`` [N, n_in], then [N, n_out] per layer) to the
        training layout."""
        return acts

    def update(self, acts, y, t, lr, weight_decay=0.0):
        """One local learning step from ``acts``, ``y`` and one-hot targets ``t`` (backend
        arrays); the loss, a 0-d backend array (``float()`` it)."""
        raise NotImplementedError

    def prune(self, fraction, x):
        """Hold the ``fraction`` least salient weights of every layer but the last at zero.

        The saliency of ``W_ji`` is ``|W_ji| * rms(a_i)`` over the inputs ``x`` (so weights
        from inputs that are always 0 go first); a hidden neuron left with no outgoing
        weight loses its incoming weights and bias too (it no longer affects the output).
        """
        xp = self.xp
        net = self.fold()
        own = [xp.to_numpy(m) for m in self.mask]
        a = activation(np.asarray(x, dtype=np.float64))
        masks = []
        for l, (w, b) in enumerate(zip(net.weights, net.biases)):
            rms = np.sqrt(np.mean(a * a, axis=0))
            alive = self._fold_mask(l, own[l])
            last = l == len(net.weights) - 1
            masks.append(alive.copy() if last else _prune_mask(np.abs(w) * rms, alive, fraction))
            a = activation(a @ w.T + b)
        for l in range(len(masks) - 1, 0, -1):
            unused = ~masks[l].any(axis=0)
            masks[l - 1][unused] = 0.0
        for l, mask in enumerate(masks):
            self.mask[l] = xp.asarray(self._unfold_mask(l, mask))
            self.w[l] = self.w[l] * self.mask[l]
            if l + 1 < len(masks):
                unused = self._unfold_units(l, ~masks[l + 1].any(axis=0))
                bias_mask = np.where(unused, 0.0, xp.to_numpy(self.bias_mask[l]))
                self.bias_mask[l] = xp.asarray(bias_mask)
                self.b[l] = self.b[l] * self.bias_mask[l]

    def sparsify(self, fan_in, rng, x=None):
        """Keep ``fan_in[l]`` inputs of every neuron of layer ``l`` (0: all), in the folded
        layout, and hold the others at zero; before training.

        A neuron chooses among the inputs it may read (with ``ed``: its own class's neurons
        after the first layer; both copies of an input count as one). In the first layer the
        choice is uniform, or, given the training inputs ``x``, drawn with probability
        proportional to each input's standard deviation. The surviving weights are scaled by
        ``sqrt(n / fan_in)`` (``n`` inputs allowed) so that a neuron starts at the same
        scale as a dense one. Raises :class:`ClockpropError` for a fan-in above the inputs
        a neuron of its layer has.
        """
        xp = self.xp
        std = None if x is None else np.asarray(x, dtype=np.float64).std(axis=0)
        for l, k in enumerate(fan_in):
            if not k:
                continue
            allowed, n_allowed = self._fan_in_choices(l, k)
            mask = np.zeros(allowed.shape)
            for j in range(len(mask)):
                choices = np.flatnonzero(allowed[j])
                mask[j, draw_fan_in(rng, choices, k, std if l == 0 else None)] = 1.0
            self.mask[l] = xp.asarray(self._unfold_mask(l, mask))
            self.w[l] = self.w[l] * self.mask[l] * float(np.sqrt(n_allowed / k))

    def keep_strongest(self, l, k, x):
        """Keep the ``k`` most salient inputs of every neuron of layer ``l`` and hold the
        others at zero (after dense training; ``fan_in_select = "magnitude"``). Saliency is
        :meth:`prune`'s, ``|W_ji| * rms(a_i)`` over the training inputs ``x``."""
        xp = self.xp
        net = self.fold()
        a = activation(np.asarray(x, dtype=np.float64))
        for w, b in zip(net.weights[:l], net.biases[:l]):
            a = activation(a @ w.T + b)
        allowed, _ = self._fan_in_choices(l, k)
        score = np.where(allowed, np.abs(net.weights[l]) * np.sqrt(np.mean(a * a, axis=0)),
                         -np.inf)
        mask = np.zeros(score.shape)
        np.put_along_axis(mask, np.argsort(-score, axis=1, kind="stable")[:, :k], 1.0, axis=1)
        self.mask[l] = xp.asarray(self._unfold_mask(l, mask * allowed))
        self.w[l] = self.w[l] * self.mask[l]

    def _fan_in_choices(self, l, k):
        """``(allowed, n)``: the inputs each neuron of layer ``l`` may read (folded layout)
        and the most any has; raises :class:`ClockpropError` if ``k`` is more."""
        allowed = self._fan_in_allowed(
            l, self._fold_mask(l, self.xp.to_numpy(self.mask[l])) > 0)
        n_allowed = int(allowed.sum(axis=1).max())
        if k > n_allowed:
            raise ClockpropError(
                f"train: fan_in {k} of layer {l} is more than the {n_allowed} inputs a "
                f"neuron of that layer has; choose at most {n_allowed} (or 0: dense)")
        return allowed, n_allowed

    def _fan_in_allowed(self, l, allowed):
        """The inputs a neuron of layer ``l`` may choose its fan-in from (folded layout)."""
        return allowed

    def _fold_mask(self, l, mask):
        """A training-layout (numpy) mask of layer ``l`` in the folded layout."""
        return mask

    def _unfold_mask(self, l, mask):
        return mask

    def _unfold_units(self, l, flags):
        return flags

    def _decay(self, lr, weight_decay):
        if weight_decay:
            for l in range(len(self.w)):
                self.w[l] *= 1.0 - lr * weight_decay


def _mse(e):
    return (e * e).sum() * (0.5 / len(e))


class ED(Rule):
    """Error diffusion, one network ``2D -> H_1 -> ... -> 1`` per class (see module docs)."""

    name = "ed"
    _arrays = Rule._arrays + ("types", "sign")

    def __init__(self, n_in, hidden, n_classes, rng, init=1.0, backend=None):
        C = n_classes
        self.n_in, self.n_classes, self.hidden = n_in, n_classes, tuple(hidden)
        sizes = [2 * n_in] + list(hidden) + [1]
        types = [np.concatenate([np.ones(n_in), -np.ones(n_in)])]
        types += [np.where(np.arange(h) % 2 == 0, 1.0, -1.0) for h in hidden] + [np.ones(1)]
        self.types = types
        self.sign = [np.outer(types[l + 1], types[l]) for l in range(len(sizes) - 1)]
        self.w, self.b, self.mask, self.bias_mask = [], [], [], []
        for l in range(len(sizes) - 1):
            fan_in = sizes[l] // 2 if l == 0 else sizes[l]
            mag = rng.uniform(0.0, 2.0 * init / np.sqrt(fan_in), size=(C, sizes[l + 1], sizes[l]))
            self.w.append(self.sign[l] * mag)
            self.b.append(np.zeros((C, sizes[l + 1])))
            self.mask.append(np.ones_like(mag))
            self.bias_mask.append(np.ones((C, sizes[l + 1])))
        self._place(backend)

    def forward(self, x):
        xp = self.xp
        a = xp.clip(xp.asarray(x), 0.0, 1.0)
        acts = [a]
        h = xp.einsum("cji,ni->ncj", self.w[0], xp.concat([a, a], axis=1)) + self.b[0]
        for w, b in zip(self.w[1:], self.b[1:]):
            a = xp.clip(h, 0.0, 1.0)
            acts.append(a)
            h = xp.einsum("cji,nci->ncj", w, a) + b
        return acts, h[:, :, 0]

    def fold(self):
        C, D = self.n_classes, self.n_in
        ws = [self.xp.to_numpy(w) for w in self.w]
        bs = [self.xp.to_numpy(b) for b in self.b]
        w0 = ws[0][:, :, :D] + ws[0][:, :, D:]
        weights = [w0.reshape(-1, D)]
        biases = [bs[0].reshape(-1)]
        for w, b in zip(ws[1:], bs[1:]):
            n_out, n_in = w.shape[1:]
            dense = np.zeros((C * n_out, C * n_in))
            for c in range(C):
                dense[c * n_out:(c + 1) * n_out, c * n_in:(c + 1) * n_in] = w[c]
            weights.append(dense)
            biases.append(b.reshape(-1))
        return FloatNet(weights=weights, biases=biases)

    def unfold_acts(self, acts):
        C = self.n_classes
        return [acts[0]] + [a.reshape(a.shape[0], C, -1) for a in acts[1:]]

    def update(self, acts, y, t, lr, weight_decay=0.0):
        xp = self.xp
        e = t - y                                               # [N, C]
        n = len(e)
        self._decay(lr, weight_decay)
        for l in range(len(self.w)):
            if l + 1 < len(self.w):                             # hidden: e_c * t_j * g_j
                delta = e[:, :, None] * self.types[l + 1] * gate(acts[l + 1], xp)
            else:                                               # output: e_c
                delta = e[:, :, None]
            if l == 0:
                dw = xp.einsum("ncj,ni->cji", delta, acts[0])
                dw = xp.concat([dw, dw], axis=2)
            else:
                dw = xp.einsum("ncj,nci->cji", delta, acts[l])
            w = self.w[l] + (lr / n) * dw
            # the sign clamp: a weight that would cross zero stops at zero
            self.w[l] = self.sign[l] * xp.maximum(self.sign[l] * w, 0.0) * self.mask[l]
            self.b[l] = (self.b[l] + (lr / n) * delta.sum(axis=0)) * self.bias_mask[l]
        return _mse(e)

    def _fold_mask(self, l, mask):
        C, D = self.n_classes, self.n_in
        if l == 0:
            return mask[:, :, :D].reshape(-1, D)
        n_out, n_in = mask.shape[1:]
        dense = np.zeros((C * n_out, C * n_in))
        for c in range(C):
            dense[c * n_out:(c + 1) * n_out, c * n_in:(c + 1) * n_in] = mask[c]
        return dense

    def _unfold_mask(self, l, mask):
        C = self.n_classes
        if l == 0:
            m = mask.reshape(C, -1, self.n_in)
            return np.concatenate([m, m], axis=2)
        n_out, n_in = self.w[l].shape[1:]
        return np.stack([mask[c * n_out:(c + 1) * n_out, c * n_in:(c + 1) * n_in]
                         for c in range(C)])

    def _unfold_units(self, l, flags):
        return flags.reshape(self.n_classes, -1)


class _Dense(Rule):
    """Shared dense layers ``n_in -> hidden... -> C`` (the training form of csb and bp)."""

    def __init__(self, n_in, hidden, n_classes, rng, init=1.0, backend=None):
        self.n_in, self.n_classes, self.hidden = n_in, n_classes, tuple(hidden)
        sizes = [n_in] + list(hidden) + [n_classes]
        self.w, self.b, self.mask, self.bias_mask = [], [], [], []
        for l in range(len(sizes) - 1):
            self.w.append(rng.normal(0.0, init / np.sqrt(sizes[l]), size=(sizes[l + 1], sizes[l])))
            self.b.append(np.zeros(sizes[l + 1]))
            self.mask.append(np.ones((sizes[l + 1], sizes[l])))
            self.bias_mask.append(np.ones(sizes[l + 1]))
        self._init_extra(hidden, rng)
        self._place(backend)

    def _fan_in_allowed(self, l, allowed):
        """A sparse output layer reads its own class's hidden neurons: class ``c`` chooses
        among the last hidden layer's neurons ``j`` with ``j mod C == c`` (csb's tag: the
        neurons whose error is ``e_c``; bp gets the same topology)."""
        if l < len(self.w) - 1 or not self.hidden:
            return allowed
        tags = np.arange(self.hidden[-1]) % self.n_classes
        return allowed & (tags[None, :] == np.arange(self.n_classes)[:, None])

    def _init_extra(self, hidden, rng):
        """Rule-specific constants, drawn after the weights (numpy, before :meth:`_place`)."""

    def forward(self, x):
        xp = self.xp
        a = xp.clip(xp.asarray(x), 0.0, 1.0)
        acts = [a]
        h = a @ self.w[0].T + self.b[0]
        for w, b in zip(self.w[1:], self.b[1:]):
            a = xp.clip(h, 0.0, 1.0)
            acts.append(a)
            h = a @ w.T + b
        return acts, h

    def fold(self):
        return FloatNet(weights=[self.xp.to_numpy(w) for w in self.w],
                        biases=[self.xp.to_numpy(b) for b in self.b])

    voting = False

    def vote(self, rng):
        """Fix the output layer to votes: class ``c``'s logit is ``v * sum_j s_j a_j`` over
        the hidden neurons it reads (``s_j = +-1``: csb's sign, a random one for bp), plus its
        bias, the only output parameter that still learns. ``v = 2**-round(log2(sqrt(k)))``
        for ``k`` inputs per class, a power of two, so every quantized output weight is one
        shifted term of the logit's adder tree."""
        xp = self.xp
        mask = xp.to_numpy(self.mask[-1])
        k = max(int(mask.sum(axis=1).max()), 1)
        signs = (xp.to_numpy(self.signs[-1]) if hasattr(self, "signs") and self.signs else
                 rng.choice([-1.0, 1.0], size=mask.shape[1]))
        v = 2.0 ** -round(np.log2(np.sqrt(k)))
        self.w[-1] = xp.asarray(mask * signs[None, :] * v)
        self.voting = True

    def _step(self, deltas, acts, lr, weight_decay):
        n = len(acts[0])
        self._decay(lr, weight_decay)
        for l, delta in enumerate(deltas):
            if self.voting and l == len(deltas) - 1:
                self.b[l] = (self.b[l] + (lr / n) * delta.sum(axis=0)) * self.bias_mask[l]
                continue
            self.w[l] = (self.w[l] + (lr / n) * delta.T @ acts[l]) * self.mask[l]
            self.b[l] = (self.b[l] + (lr / n) * delta.sum(axis=0)) * self.bias_mask[l]


class CSB(_Dense):
    """Class-sign broadcast (see module docs)."""

    name = "csb"
    _arrays = _Dense._arrays + ("signs",)

    def _init_extra(self, hidden, rng):
        self.tags = [np.arange(h) % self.n_classes for h in hidden]
        self.signs = [rng.choice([-1.0, 1.0], size=h) for h in hidden]

    def _place(self, backend):
        super()._place(backend)
        self.tags = [self.xp.index(c) for c in self.tags]

    def update(self, acts, y, t, lr, weight_decay=0.0):
        e = t - y
        deltas = [s * e[:, c] * gate(a, self.xp)
                  for s, c, a in zip(self.signs, self.tags, acts[1:])] + [e]
        self._step(deltas, acts, lr, weight_decay)
        return _mse(e)


class BP(_Dense):
    """Backpropagation of softmax cross-entropy, the float reference."""

    name = "bp"

    def update(self, acts, y, t, lr, weight_decay=0.0):
        xp = self.xp
        z = y - xp.amax(y, axis=1, keepdims=True)
        p = xp.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        delta = t - p
        deltas = [delta]
        for l in range(len(self.w) - 1, 0, -1):
            delta = (delta @ self.w[l]) * gate(acts[l], xp)
            deltas.insert(0, delta)
        self._step(deltas, acts, lr, weight_decay)
        return (t * xp.log(xp.maximum(p, 1e-300))).sum() * (-1.0 / len(t))


RULES = {"ed": ED, "csb": CSB, "bp": BP}


def make_rule(name, n_in, hidden, n_classes, rng, init=1.0, backend=None):
    """A fresh training form for rule ``name`` (one of :data:`RULES`), its arrays on
    ``backend`` (a :class:`~clockprop.models.backend.Backend`; None: numpy)."""
    return RULES[name](n_in, hidden, n_classes, rng, init, backend)
