"""The float trainer: a frozen config, one training loop, the inference-form result.

    cfg = TrainConfig(rule="ed", hidden=(32,), epochs=30, lr=0.05, batch=8, prune=0.85)
    result = train(cfg, load_dataset("digits", 0), QFormat(act_bits=4, weight_bits=4))
    result.net            # FloatNet; quantize(result.net, fmt) gives the IntModel

Every epoch visits the training split in a fresh random order (minibatches of ``batch``) with
the learning rate ``lr * lr_decay**epoch``. With ``qat=True`` the forward pass runs in the
integer format: each minibatch quantizes the current folded weights, runs the integer golden
model, and the rule updates its float weights from those integer activations and outputs
(straight-through). ``prune > 0`` sets that fraction of every layer's weights (the smallest)
to exactly zero after epoch ``prune_epoch`` and holds them there. Randomness comes from one
``np.random.default_rng(seed)``: the same config and data give the same weights.

``device`` picks the array backend (:mod:`clockprop.models.backend`): ``"numpy"`` (the default),
``"cpu"`` (PyTorch on the CPU) or ``"cuda"`` (PyTorch on a CUDA GPU). Initial weights and
sample orders still come from the numpy generator, so a numpy and a torch run of one config
give the same weights to float rounding; the result holds numpy arrays either way.
"""

import time
from dataclasses import dataclass, field, fields

import numpy as np

from .backend import DEVICES, get_backend
from ..core.errors import ClockpropError
from .floatnet import FloatNet, quantize
from .lutnet import TableNet, quantize_tables, train_tables
from ..core.qformat import QFormat
from .rules import FAN_IN_SELECT, RULES, make_rule

__all__ = ["TrainConfig", "TrainResult", "train", "config_from_dict", "to_int_model",
           "RULE_NAMES"]

# The float rules of models.rules, and the learned truth tables of models.lutnet.
RULE_NAMES = (*RULES, "lut")


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how; validated on construction.

    The defaults are the digits default model (split seed 0: 97.6% float, 97.3% integer with
    ``QFormat(act_bits=4, weight_bits=4)``, about 3600 nonzero signed digits).

    Parameters
    ----------
    rule : str
        ``"ed"`` (error diffusion, one net per class), ``"csb"`` (class-sign broadcast),
        ``"bp"`` (backprop, the float reference) or ``"lut"`` (learned truth tables,
        :mod:`clockprop.models.lutnet`: one hidden layer of ``hidden`` tables of
        ``fan_in[0]`` inputs each, ``hidden / classes`` voting for each class; it uses
        ``epochs``, ``lr``, ``lr_decay``, ``batch``, ``weight_decay``, ``qat``, ``fan_in``,
        ``fan_in_select`` and ``seed``, and always chooses its integer scale on the
        training split).
    hidden : tuple of int
        Hidden layer widths; for ``ed`` the width of every per-class network.
    epochs, lr, batch : int, float, int
        Passes over the training split, learning rate, minibatch size.
    lr_decay : float
        Per-epoch learning-rate factor in ``(0, 1]``.
    init : float
        Scale of the initial weights (times ``1/sqrt(fan_in)``).
    weight_decay : float
        L2 shrink per step (``w *= 1 - lr * weight_decay``), ``>= 0``.
    prune : float
        Fraction in ``[0, 1)`` of every layer's weights set to zero and held there.
    prune_epoch : int
        Pruning happens after this (0-based) epoch; ``-1`` means half way.
    qat : bool
        Quantization-aware training: the forward pass in the integer format.
    calibrate : bool
        Post-training quantization chooses each layer's fraction bits on the training split
        (:func:`~clockprop.models.floatnet.quantize`) instead of the largest weight's: often
        more accurate, but finer weights have more non-zero digits, so shift-add layers cost
        more logic (``reports/bench/quant.md``).
    fan_in : int or tuple
        Sparse fan-in, one entry per layer (an integer: every layer): ``0`` dense, else every
        neuron of that layer reads only ``fan_in`` of its inputs, chosen before training and
        held (the other weights are exact zeros, like pruned ones; its bias stays). Small
        fan-ins let the hardware map a neuron to the truth table of its input bits
        (:class:`~clockprop.hw.lut.TruthTableLayer`).
    fan_in_select : str
        How the inputs are chosen (:meth:`Rule.sparsify`): ``"random"`` (uniformly, from
        ``seed``) or ``"variance"`` (the first layer draws its inputs with probability
        proportional to their standard deviation over the training split, so inputs that
        never change are never read; deeper layers uniformly) or ``"magnitude"`` (the first
        layer trains dense for the first quarter of the epochs, then every neuron keeps its
        ``fan_in`` most salient inputs, :meth:`Rule.keep_strongest`, and the rest of the
        training adapts to them; deeper layers uniformly).
    vote : bool
        csb and bp only: the output layer is fixed to votes, ``+-v`` for each hidden neuron
        a class reads (:meth:`Rule.vote`; a power of two, so a logit is a plain sum of
        shifted activations in hardware); only the output biases learn there.
    redraw : float
        ``lut`` only: the fraction in ``[0, 1)`` of each class's neurons that get new inputs
        three times during training, the ones whose values vary least
        (:mod:`~clockprop.models.lutnet`); 0: never.
    seed : int
        Seed of the one random generator.
    device : str
        Where the trainer computes: ``"numpy"`` (default), ``"cpu"`` (PyTorch on the CPU) or
        ``"cuda"`` (PyTorch on a CUDA GPU); the last two need ``pip install torch==2.13.0``.
    """

    rule: str = "ed"
    hidden: tuple = (32,)
    epochs: int = 30
    lr: float = 0.05
    batch: int = 8
    lr_decay: float = 1.0
    init: float = 1.0
    weight_decay: float = 0.0
    prune: float = 0.85
    prune_epoch: int = -1
    qat: bool = False
    calibrate: bool = False
    fan_in: tuple = 0
    fan_in_select: str = "random"
    vote: bool = False
    redraw: float = 0.0
    seed: int = 0
    device: str = "numpy"

    def __post_init__(self):
        if self.rule not in RULE_NAMES:
            raise ClockpropError(f"train: rule must be one of {', '.join(RULE_NAMES)}, "
                                 f"got {self.rule!r}")
        hidden = self.hidden
        if isinstance(hidden, int) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if (not isinstance(hidden, (tuple, list)) or
                not all(_is_int(h) and 1 <= h <= 4096 for h in hidden)):
            raise ClockpropError(f"train: hidden must be a list of layer widths in [1, 4096], "
                                 f"got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        for name, lo, hi in (("epochs", 1, 100_000), ("batch", 1, 1 << 20),
                             ("seed", 0, (1 << 63) - 1), ("prune_epoch", -1, 100_000)):
            value = getattr(self, name)
            if not _is_int(value) or not lo <= value <= hi:
                raise ClockpropError(f"train: {name} must be an integer in [{lo}, {hi}], "
                                     f"got {value!r}")
        for name, ok, allowed in (("lr", lambda v: 0 < v <= 100, "(0, 100]"),
                                  ("lr_decay", lambda v: 0 < v <= 1, "(0, 1]"),
                                  ("init", lambda v: 0 < v <= 100, "(0, 100]"),
                                  ("weight_decay", lambda v: 0 <= v <= 100, "[0, 100]"),
                                  ("prune", lambda v: 0 <= v < 1, "[0, 1)"),
                                  ("redraw", lambda v: 0 <= v < 1, "[0, 1)")):
            value = getattr(self, name)
            if not (_is_number(value) and ok(value)):
                raise ClockpropError(f"train: {name} must be a number in {allowed}, "
                                     f"got {value!r}")
        n_layers = len(self.hidden) + 1
        fan_in = (self.fan_in,) * n_layers if _is_int(self.fan_in) else self.fan_in
        if (not isinstance(fan_in, (tuple, list)) or len(fan_in) != n_layers or
                not all(_is_int(k) and 0 <= k <= 65536 for k in fan_in)):
            raise ClockpropError(f"train: fan_in must be a non-negative integer or one per "
                                 f"layer ({n_layers}: the hidden layers and the output), "
                                 f"0 meaning dense, got {self.fan_in!r}")
        object.__setattr__(self, "fan_in", tuple(int(k) for k in fan_in))
        if self.fan_in_select not in FAN_IN_SELECT:
            raise ClockpropError(f"train: fan_in_select must be one of "
                                 f"{', '.join(repr(s) for s in FAN_IN_SELECT)}, "
                                 f"got {self.fan_in_select!r}")
        if not isinstance(self.vote, bool):
            raise ClockpropError(f"train: vote must be true or false, got {self.vote!r}")
        if self.vote and self.rule == "ed":
            raise ClockpropError("train: vote needs rule csb or bp (ed's output weights "
                                 "already have fixed signs)")
        if self.redraw and self.rule != "lut":
            raise ClockpropError(f"train: redraw needs rule lut (its tables), got rule "
                                 f"{self.rule!r}")
        for name in ("qat", "calibrate"):
            if not isinstance(getattr(self, name), bool):
                raise ClockpropError(f"train: {name} must be true or false, got "
                                     f"{getattr(self, name)!r}")
        if self.device not in DEVICES:
            raise ClockpropError(f"train: device must be one of "
                                 f"{', '.join(repr(d) for d in DEVICES)}, got {self.device!r}")

    def to_dict(self):
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["hidden"] = list(self.hidden)
        d["fan_in"] = list(self.fan_in)
        return d


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v):
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            and np.isfinite(v))


def config_from_dict(d):
    """A :class:`TrainConfig` from a mapping (a TOML table); unknown keys are an error."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ClockpropError(f"train: unknown setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
    return TrainConfig(**d)


@dataclass
class TrainResult:
    """What :func:`train` gives back.

    ``history`` has one row per epoch: ``epoch`` (1-based), ``train_acc``, ``test_acc`` and
    ``loss`` (mean over the epoch: MSE ``0.5 * |e|^2`` for the local rules, cross-entropy for
    ``bp``) of the float net, plus ``int_train_acc`` and ``int_test_acc`` of its quantization
    when a number format was given. ``samples_per_s`` counts training steps only (not the
    per-epoch evaluation); ``device`` says where they ran (for example ``"cpu (numpy)"``).
    """

    net: FloatNet
    history: list = field(default_factory=list)
    seconds: float = 0.0
    samples_per_s: float = 0.0
    device: str = "cpu (numpy)"


def _int_forward(net, fmt, x):
    """Folded-layout ``(acts, y)`` of the integer golden model, rescaled to floats.

    The hidden activations handed to the rule are the integer accumulators before the
    activation's rounding, ``clip(h / (A * 2**frac), 0, 1)`` (straight-through): the next
    layer computed with the rounded ones, but the rule's gate ``[0 < a < 1]`` and its update
    see where each neuron really is. With 1-bit activations the rounded ones are only 0 or 1,
    which would keep every gate shut (measured: csb with votes, 7% instead of 84% on digits).
    """
    model = quantize(net, fmt)
    a0 = fmt.quantize_input(x)
    hs = model.trace(a0)
    A = float(fmt.a_max)
    acts = [a0 / A]
    for h, layer in zip(hs[:-1], model.layers[:-1]):
        acts.append(np.clip(h / (A * float(1 << layer.frac)), 0.0, 1.0))
    y = hs[-1] / (A * float(1 << model.layers[-1].frac))
    return acts, y


def _int_accuracy(net, fmt, x, y):
    return quantize(net, fmt).accuracy(fmt.quantize_input(x), y)


def train(cfg, data, fmt=None, progress=None):
    """Train ``cfg`` on ``data``; give back the inference-form net and the learning curve.

    ``fmt`` (a :class:`QFormat`) is the number format of quantization-aware training
    (``QFormat()`` when ``cfg.qat`` and none is given) and of the integer accuracies in the
    history. ``progress(epoch, n_epochs, row)`` is called after every epoch.
    """
    if cfg.qat and fmt is None:
        fmt = QFormat()
    if cfg.rule == "lut":
        net, history, seconds, rate = train_tables(cfg, data, fmt or QFormat(), progress)
        return TrainResult(net=net, history=history, seconds=seconds, samples_per_s=rate)
    xp = get_backend(cfg.device)
    rng = np.random.default_rng(cfg.seed)
    rule = make_rule(cfg.rule, data.n_inputs, cfg.hidden, data.n_classes, rng, cfg.init, xp)
    x, labels = data.x_train, data.y_train
    magnitude = cfg.fan_in_select == "magnitude" and cfg.fan_in[0] > 0
    if any(cfg.fan_in):
        first = (0,) + cfg.fan_in[1:] if magnitude else cfg.fan_in
        rule.sparsify(first, rng, x if cfg.fan_in_select == "variance" else None)
    if cfg.vote:
        rule.vote(rng)
    targets = xp.asarray(np.eye(data.n_classes)[labels])
    x_dev = xp.asarray(x)                       # the training split, on the device once
    prune_epoch = cfg.epochs // 2 - 1 if cfg.prune_epoch < 0 else cfg.prune_epoch
    history = []
    start = time.perf_counter()
    train_time = 0.0
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        lr = cfg.lr * cfg.lr_decay ** epoch
        order = rng.permutation(len(x))
        order_dev = xp.index(order)
        loss_sum = 0.0
        for i in range(0, len(order), cfg.batch):
            idx = order_dev[i:i + cfg.batch]
            if cfg.qat:
                acts, y = _int_forward(rule.fold(), fmt, x[order[i:i + cfg.batch]])
                acts = rule.unfold_acts([xp.asarray(a) for a in acts])
                y = xp.asarray(y)
            else:
                acts, y = rule.forward(x_dev[idx])
            loss_sum = loss_sum + rule.update(acts, y, targets[idx], lr,
                                              cfg.weight_decay) * len(idx)
        if cfg.prune and epoch == prune_epoch:
            rule.prune(cfg.prune, x)
        if magnitude and epoch == cfg.epochs // 4:
            rule.keep_strongest(0, cfg.fan_in[0], x)
        loss = float(loss_sum) / len(x)         # (waits for a GPU to finish the epoch)
        train_time += time.perf_counter() - t0
        net = rule.fold()
        if not np.isfinite(loss):
            raise ClockpropError(f"train: the loss diverged in epoch {epoch + 1}; "
                                 f"lower lr (now {cfg.lr:g})")
        row = {"epoch": epoch + 1, "train_acc": net.accuracy(x, labels),
               "test_acc": net.accuracy(data.x_test, data.y_test), "loss": loss}
        if fmt is not None:
            row["int_train_acc"] = _int_accuracy(net, fmt, x, labels)
            row["int_test_acc"] = _int_accuracy(net, fmt, data.x_test, data.y_test)
        history.append(row)
        if progress is not None:
            progress(epoch + 1, cfg.epochs, row)
    seconds = time.perf_counter() - start
    return TrainResult(net=rule.fold(), history=history, seconds=seconds,
                       samples_per_s=cfg.epochs * len(x) / max(train_time, 1e-9),
                       device=xp.description)


def to_int_model(net, fmt, meta=None, calibrate=None):
    """The integer golden model of a trained ``net``: :func:`~clockprop.models.floatnet.
    quantize` for a :class:`FloatNet` (``calibrate``: its training split, or None), the
    tables' own mapping for a :class:`~clockprop.models.lutnet.TableNet`."""
    if isinstance(net, TableNet):
        return quantize_tables(net, fmt, meta)
    return quantize(net, fmt, meta, calibrate=calibrate)
