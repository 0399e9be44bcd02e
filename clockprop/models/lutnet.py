"""Learned truth-table neurons (the ``lut`` rule): the table is the weight.

Hidden neuron ``j`` reads ``k`` inputs, chosen before training and held (its fan-in, as
:meth:`~clockprop.models.rules.Rule.sparsify` chooses them), at ``act_bits`` each, and has a
table ``T_j`` with one entry per input code (``2**(k * act_bits)`` of them,
:func:`~clockprop.models.truthtable.pack_codes`). Each neuron votes for one class, ``n /
C`` neurons per class, so class ``c``'s logit is ``sum of T_j[code_j]`` over its neurons.

With ``redraw`` the weakest neurons get new inputs three times during training (at a fifth,
two fifths and three fifths of the epochs, before QAT): in each class, that fraction of its
neurons whose values vary least over the training split, with their tables emptied. Digits,
400 tables of 2 inputs (``configs/digits_lut.toml``): 96.09% on average over split seeds 0-4
with ``redraw = 0.5``, 93.60% without.

Training is the delta rule on the one-hot codes. Every entry is a weight whose input is 1 when
the sample's code selects it and 0 otherwise (the one-hot code is the layer's activated
input), so after each minibatch every entry moves at once by ``lr * sum (y_c - p_c) *
[code_j = entry]``. ``y`` is the one-hot label and ``p`` the softmax of the logits, and ``c``
is the neuron's class. Nothing is propagated. For this single trainable layer that is also
the cross-entropy gradient, so backprop on the same topology is the same rule.

The integer model holds each table as ``act_bits``-bit activations, ``v = clip(round(T * s)
+ z, 0, A)``. The scale ``s`` and zero point ``z`` are chosen on the training split (the best
accuracy over a grid). With ``qat`` the last quarter of the epochs runs the forward pass with
those integer tables (straight-through, ``s`` and ``z`` chosen when it starts). Every class
has as many neurons as the next, so ``z`` shifts every logit alike, and the output layer is a
plain sum: ``IntLayer`` weights 1, biases 0. The hardware builds the hidden layer as truth
tables (:class:`~clockprop.hw.lut.TruthTableLayer`) and the output layer as an adder tree of
unsigned terms.
"""

import time
from dataclasses import dataclass

import numpy as np

from ..core.errors import ClockpropError
from ..core.qformat import QFormat
from .intmodel import IntLayer, IntModel
from .rules import draw_fan_in
from .truthtable import MAX_LUT_BITS, pack_codes

__all__ = ["TableNet", "train_tables", "quantize_tables", "check_table_config"]

# When ``redraw`` gives the weakest neurons new inputs, as fractions of the epochs.
REDRAW_AT = (0.2, 0.4, 0.6)

# Fractions of the largest |T| that the scale search tries to map to A (outliers clipped).
SCALE_GRID = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1)


@dataclass
class TableNet:
    """The float form of a learned-table network.

    ``inputs`` [n, k] (ascending per neuron), ``tag`` [n] (each neuron's class: the
    neurons of class ``c`` are the ``c``-th of ``C`` equal blocks), ``tables``
    [n, 2**(k * act_bits)] float, ``fmt`` (the number format: input quantization and ``A``),
    ``n_in``, ``n_classes``; ``scale`` and ``zero`` (the integer mapping) once chosen.
    """

    inputs: np.ndarray
    tag: np.ndarray
    tables: np.ndarray
    fmt: QFormat
    n_in: int
    n_classes: int
    scale: float = 1.0
    zero: int = 0

    @property
    def act_bits(self):
        return self.fmt.act_bits

    @property
    def a_max(self):
        return self.fmt.a_max

    def codes(self, a):
        """Every neuron's input code [N, n] for integer activations ``a`` [N, n_in], as an
        index into the flattened tables (``j * entries + code``)."""
        entries = self.tables.shape[1]
        return np.stack([pack_codes(a, row, self.act_bits) + j * entries
                         for j, row in enumerate(self.inputs)], axis=1)

    def logits_of_codes(self, codes, tables=None):
        """Logits [N, C] of :meth:`codes` ``codes`` with ``tables`` (default: the float
        ones)."""
        tables = self.tables if tables is None else tables
        values = np.take(tables, codes)                                  # [N, n]
        return values.reshape(len(codes), self.n_classes, -1).sum(axis=2)

    def accuracy(self, x, y):
        codes = self.codes(self.fmt.quantize_input(x))
        return float(np.mean(self.logits_of_codes(codes).argmax(axis=1) == np.asarray(y)))

    def integer_tables(self, scale=None, zero=None):
        """The tables as activations in ``[0, A]`` at ``scale`` and ``zero`` (default: the
        net's own)."""
        scale = self.scale if scale is None else scale
        zero = self.zero if zero is None else zero
        q = np.floor(self.tables * scale + 0.5) + zero
        return np.clip(q, 0, self.a_max).astype(np.int64)

    def choose_mapping(self, codes, y, extra=()):
        """Set ``scale`` and ``zero`` to the pair with the best accuracy on ``codes``/``y``
        over :data:`SCALE_GRID`, every zero point, and ``extra``; among equally accurate
        pairs, the one whose dequantized logits have the least cross-entropy (the first on
        ties). The training split is often learned perfectly, so accuracy alone leaves the
        choice to the grid's order; the cross-entropy keeps the mapping nearest the float
        tables (digits, split seeds 0-4: 96.09% on average, 95.87% by accuracy alone)."""
        peak = float(np.abs(self.tables).max())
        if peak == 0:
            self.scale, self.zero = 1.0, 0
            return
        candidates = [(self.a_max / (peak * f), z) for f in SCALE_GRID
                      for z in range(self.a_max + 1)] + list(extra)
        y = np.asarray(y)
        rows = np.arange(len(y))

        def fidelity(candidate):
            logits = self.logits_of_codes(codes, self.integer_tables(*candidate))
            z = (logits - logits.max(axis=1, keepdims=True)) / candidate[0]
            cross_entropy = np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, y])
            return np.mean(logits.argmax(axis=1) == y), -cross_entropy

        scale, zero = max(candidates, key=fidelity)
        self.scale, self.zero = float(scale), int(zero)

    def dequantized(self):
        """The integer tables back in float units (``(v - z) / s``): QAT's forward pass."""
        return (self.integer_tables() - self.zero) / self.scale


def check_table_config(cfg, n_inputs, n_classes):
    """Raise :class:`ClockpropError` unless ``cfg`` (a ``TrainConfig`` of rule ``lut``)
    describes a learned-table network over ``n_inputs`` inputs and ``n_classes`` classes."""
    if len(cfg.hidden) != 1:
        raise ClockpropError(f"train: rule lut has one hidden layer (its tables), got hidden "
                             f"= {list(cfg.hidden)}")
    n, k = cfg.hidden[0], cfg.fan_in[0]
    if n % n_classes:
        raise ClockpropError(f"train: rule lut gives every class as many neurons: hidden "
                             f"{n} is not a multiple of the {n_classes} classes")
    if not 1 <= k <= n_inputs:
        raise ClockpropError(f"train: rule lut needs fan_in = [k, {n // n_classes}] with k "
                             f"the inputs per table, 1 <= k <= {n_inputs}; got "
                             f"{list(cfg.fan_in)}")
    if cfg.fan_in[1] not in (0, n // n_classes):
        raise ClockpropError(f"train: with rule lut each class reads its own {n // n_classes} "
                             f"neurons (hidden {n} / {n_classes} classes): give fan_in = "
                             f"[{k}, {n // n_classes}], got {list(cfg.fan_in)}")
    if cfg.fan_in_select == "magnitude":
        raise ClockpropError("train: rule lut chooses its inputs before training: "
                             "fan_in_select must be 'random' or 'variance'")
    if cfg.device != "numpy":
        raise ClockpropError(f"train: rule lut trains with numpy only (device = 'numpy'), "
                             f"got {cfg.device!r}")


def _init_net(cfg, data, fmt, rng):
    n, k = cfg.hidden[0], cfg.fan_in[0]
    bits = k * fmt.act_bits
    if bits > MAX_LUT_BITS:
        raise ClockpropError(f"train: tables of {k} inputs x {fmt.act_bits} bits "
                             f"= {bits} input bits; the most is {MAX_LUT_BITS}: lower "
                             f"fan_in or act_bits")
    inputs = np.array([_draw_inputs(cfg, data, rng) for _ in range(n)])
    tag = np.repeat(np.arange(data.n_classes), n // data.n_classes)
    return TableNet(inputs, tag, np.zeros((n, 1 << bits)), fmt, data.n_inputs,
                    data.n_classes)


def _draw_inputs(cfg, data, rng):
    """One neuron's ``fan_in[0]`` inputs, ascending, as ``fan_in_select`` draws them."""
    std = data.x_train.std(axis=0) if cfg.fan_in_select == "variance" else None
    return np.sort(draw_fan_in(rng, np.arange(data.n_inputs), cfg.fan_in[0], std))


def _redraw(net, cfg, data, codes, rng):
    """Give the ``redraw`` fraction of each class's neurons whose values vary least over
    the training split (``codes``) new inputs and empty tables."""
    spread = np.take(net.tables, codes).std(axis=0)
    per = len(net.tag) // net.n_classes
    for c in range(net.n_classes):
        block = np.arange(c * per, (c + 1) * per)
        for j in block[np.argsort(spread[block], kind="stable")[:int(cfg.redraw * per)]]:
            net.inputs[j] = _draw_inputs(cfg, data, rng)
            net.tables[j] = 0.0


def _step(net, codes, targets, lr, weight_decay, tables):
    """One minibatch of the delta rule; gives back its summed cross-entropy."""
    z = net.logits_of_codes(codes, tables)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(np.maximum((p * targets).sum(axis=1), 1e-300)).sum()
    err = (targets - p)[:, net.tag]                                   # [B, n]
    if weight_decay:
        net.tables *= 1.0 - lr * weight_decay
    np.add.at(net.tables.reshape(-1), codes, lr * err)
    return loss


def train_tables(cfg, data, fmt, progress=None):
    """Train the learned-table network of ``cfg`` (rule ``lut``) on ``data``.

    Returns ``(net, history, seconds, samples_per_s)``: the :class:`TableNet` with its
    integer mapping chosen, and the learning curve as for the other rules (with the integer
    accuracies of every epoch); :func:`~clockprop.models.train.train` wraps them.
    """
    check_table_config(cfg, data.n_inputs, data.n_classes)
    rng = np.random.default_rng(cfg.seed)
    net = _init_net(cfg, data, fmt, rng)
    a, a_test = fmt.quantize_input(data.x_train), fmt.quantize_input(data.x_test)
    codes, test_codes = net.codes(a), net.codes(a_test)
    redraws = {int(cfg.epochs * r) for r in REDRAW_AT} - {0} if cfg.redraw else set()
    y, y_test = np.asarray(data.y_train), np.asarray(data.y_test)
    targets = np.eye(data.n_classes)[y]
    qat_from = cfg.epochs - max(cfg.epochs // 4, 1) if cfg.qat else cfg.epochs
    history, train_time = [], 0.0
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        if epoch in redraws and epoch < qat_from:
            _redraw(net, cfg, data, codes, rng)
            codes, test_codes = net.codes(a), net.codes(a_test)
        if epoch == qat_from:
            net.choose_mapping(codes, y)
        lr = cfg.lr * cfg.lr_decay ** epoch
        order = rng.permutation(len(codes))
        loss = 0.0
        for i in range(0, len(order), cfg.batch):
            b = order[i:i + cfg.batch]
            tables = net.dequantized() if epoch >= qat_from else None
            loss += _step(net, codes[b], targets[b], lr, cfg.weight_decay, tables)
        train_time += time.perf_counter() - t0
        if not np.isfinite(loss):
            raise ClockpropError(f"train: the loss diverged in epoch {epoch + 1}; "
                                 f"lower lr (now {cfg.lr:g})")
        kept = (net.scale, net.zero)
        net.choose_mapping(codes, y, extra=[kept] if epoch >= qat_from else ())
        row = {"epoch": epoch + 1, "loss": loss / len(codes)}
        for name, c, labels in (("train", codes, y), ("test", test_codes, y_test)):
            row[f"{name}_acc"] = float(np.mean(
                net.logits_of_codes(c).argmax(axis=1) == labels))
            row[f"int_{name}_acc"] = float(np.mean(
                net.logits_of_codes(c, net.integer_tables()).argmax(axis=1) == labels))
        if epoch + 1 < cfg.epochs and epoch >= qat_from:
            net.scale, net.zero = kept          # QAT keeps the mapping it started with
        history.append(row)
        if progress is not None:
            progress(epoch + 1, cfg.epochs, row)
    return (net, history, time.perf_counter() - start,
            cfg.epochs * len(codes) / max(train_time, 1e-9))


def quantize_tables(net, fmt, meta=None):
    """The :class:`IntModel` of ``net``: a table layer (0/1 weights: the inputs each neuron
    reads; its integer tables) and an output layer that sums each class's neurons."""
    if net.act_bits != fmt.act_bits:
        raise ClockpropError(f"the tables were trained with {net.act_bits}-bit activations, "
                             f"the format has {fmt.act_bits}")
    n = len(net.tag)
    mask = np.zeros((n, net.n_in), dtype=np.int64)
    np.put_along_axis(mask, net.inputs, 1, axis=1)
    votes = np.zeros((net.n_classes, n), dtype=np.int64)
    votes[net.tag, np.arange(n)] = 1
    frac = 1                                  # the format's least; the activation undoes it
    layers = (IntLayer(mask, np.zeros(n, dtype=np.int64), frac, table=net.integer_tables()),
              IntLayer(votes, np.zeros(net.n_classes, dtype=np.int64), frac))
    return IntModel(fmt, layers, dict(meta or {}))
