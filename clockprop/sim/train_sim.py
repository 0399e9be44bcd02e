"""On-chip training in the Amaranth simulator: stream labelled samples, read the weights back.

    result = simulate_training(trainer, a, labels)      # trainer: models.inttrain.IntTrainer
    result.weights                                      # list of V_l as the gateware holds them
    check_weights(trainer_after, result)                # ClockpropError on any difference

The gateware starts from the trainer's weights and LFSR state as they are when
:func:`simulate_training` is called (the trainer itself is not changed).
"""

import sys
from dataclasses import dataclass

import numpy as np

from ..hw.update import TrainableNet
from ..core.errors import ClockpropError
from .pysim import run_testbench
from ..core.words import pack, unpack

__all__ = ["TrainSimResult", "simulate_training", "check_weights", "unpack_weights",
           "train_alongside"]


@dataclass
class TrainSimResult:
    weights: list           # int64 V_l, as read back from the gateware
    lfsr: int               # the rounding LFSR's state after the last sample
    predicted: np.ndarray   # int64 [N], the class of each sample's forward pass
    logits: np.ndarray      # int64 [N, C]
    error: bool             # the gateware's sticky bad-label flag
    cycles: int             # clocks from the first sample offered to the last result taken
    seconds: float

    @property
    def cycles_per_second(self):
        return self.cycles / self.seconds if self.seconds else float("nan")


def unpack_weights(word, trainer, weight_bits):
    """The ``weights`` port's value (an int) as a list of ``V_l`` shaped like ``trainer.v``."""
    n = sum(v.size for v in trainer.v)
    flat = np.array(unpack(word, weight_bits, n, signed=True), dtype=np.int64)
    out, start = [], 0
    for v in trainer.v:
        out.append(flat[start:start + v.size].reshape(v.shape))
        start += v.size
    return out


def simulate_training(trainer, a, labels, *, lr=0, train=True, serial=False, fold=1,
                      stall=0.0, stall_seed=0, vcd=None, progress=None):
    """Stream samples ``a`` [N, n_in] with ``labels`` [N] through a :class:`TrainableNet`.

    A new sample is offered every clock and the result is always taken, so the unit runs at
    its full rate, one sample every ``dut.interval`` clocks (``L + T + 1``, ``T = ceil(log2
    C)``, or ``L * (act_bits * fold + 1) + T + 1`` with ``serial``: :class:`TrainableNet`).
    ``train=False`` runs inference only. ``lr`` (one per sample, or one for all) is each
    sample's extra learning-rate shift (config ``anneal``; see :func:`models.inttrain.lr_schedule`).
    Labels are sent as given (a label ``>= n_classes`` sets the gateware's ``error`` flag);
    they must fit the label field. ``stall`` in [0, 1) holds a result back (``o.ready``
    low) with that probability each clock (seeded by ``stall_seed``): the weights must not
    move until it is taken.
    """
    a = np.asarray(a, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if a.ndim != 2 or a.shape[1] != trainer.shape[0] or labels.shape != (len(a),):
        raise ClockpropError(f"train sim: want inputs [N, {trainer.shape[0]}] and N labels, "
                             f"got {a.shape} and {labels.shape}")
    dut = TrainableNet(trainer, serial=serial, fold=fold)
    fmt = trainer.fmt
    layout = dut.i.payload.shape()
    label_bits = layout["label"].shape.width
    if len(a) and (labels.min() < 0 or labels.max() >= 1 << label_bits):
        raise ClockpropError(f"train sim: labels must fit {label_bits} bits")
    lr = np.broadcast_to(np.asarray(lr, dtype=np.int64), labels.shape)
    if len(a) and (lr.min() < 0 or lr.max() > trainer.cfg.anneal):
        raise ClockpropError(f"train sim: lr must be in [0, {trainer.cfg.anneal}] (anneal)")
    words = []
    for x, y, s in zip(a, labels, lr):
        word = pack(x, fmt.act_bits) << layout["x"].offset
        word |= int(y) << layout["label"].offset
        word |= int(train) << layout["train"].offset
        if dut.lr_bits:
            word |= int(s) << layout["lr"].offset
        words.append(word)
    out_layout = dut.o.payload.shape()
    cls_f, logits_f = out_layout["cls"], out_layout["logits"]
    n = len(words)
    raw, state = [], {}

    rng = np.random.default_rng(stall_seed)

    async def testbench(ctx):
        taken = cycle = 0
        while len(raw) < n:
            offer = taken < n
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.o.ready, ready)
            if offer:
                ctx.set(dut.i.payload.as_value(), words[taken])
            _, _, i_ready, o_valid, o_raw = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload.as_value())
            if offer and i_ready:
                taken += 1
            if o_valid and ready:
                raw.append(o_raw)
                if progress and len(raw) % 100 == 0:
                    progress(len(raw), n)
            cycle += 1
        ctx.set(dut.o.ready, 1)
        await ctx.tick()
        state["weights"] = ctx.get(dut.weights.as_value())
        state["lfsr"] = ctx.get(dut.lfsr)
        state["error"] = ctx.get(dut.error)
        state["cycles"] = cycle

    # pysim writes the (wide) weights port's mask as a decimal literal: lift Python's limit
    # on int <-> str conversion while it compiles and runs
    old_limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        seconds = run_testbench(dut, testbench, vcd)
    finally:
        sys.set_int_max_str_digits(old_limit)
    C = trainer.n_classes
    width = logits_f.shape.elem_shape.width
    predicted = np.array([(r >> cls_f.offset) & ((1 << cls_f.width) - 1) for r in raw],
                         dtype=np.int64)
    logits = (np.array([unpack(r >> logits_f.offset, width, C, signed=True) for r in raw],
                       dtype=np.int64) if n else np.zeros((0, C), np.int64))
    return TrainSimResult(weights=unpack_weights(state["weights"], trainer, fmt.weight_bits),
                          lfsr=int(state["lfsr"]), predicted=predicted, logits=logits,
                          error=bool(state["error"]), cycles=state["cycles"], seconds=seconds)


def check_weights(trainer, result):
    """Raise :class:`ClockpropError` unless the gateware's weights and LFSR equal the trainer's.

    The message names the first differing weight and how many differ.
    """
    for l, (want, got) in enumerate(zip(trainer.v, result.weights)):
        if want.shape != got.shape:
            raise ClockpropError(f"read-back: layer {l} has shape {got.shape}, the host model "
                                 f"{want.shape}")
        bad = np.argwhere(want != got)
        if len(bad):
            j, i = bad[0]
            raise ClockpropError(
                f"read-back: {len(bad)} weights of layer {l} disagree with the host's integer "
                f"trainer, first V[{j}, {i}] = {got[j, i]} on chip, {want[j, i]} on the host")
    if trainer.cfg.rounding == "lfsr" and result.lfsr != trainer.lfsr.state:
        raise ClockpropError(f"read-back: the chip's LFSR state {result.lfsr:#06x} differs from "
                             f"the host's {trainer.lfsr.state:#06x}")


def train_alongside(cfg, data, steps, points, *, serial=False, fold=1, progress=None):
    """The integer trainer and the gateware side by side over the first ``steps`` samples of
    ``cfg``'s training sequence on ``data``, in ``points`` chunks: after each, the gateware's
    weights are read back and checked equal (:func:`check_weights`), and both test
    accuracies go on the curve.

    Returns ``(host, curve, seconds, cycles)``: the trainer after the steps, the curve
    (``step``, ``host_test_acc``, ``chip_test_acc``), and the simulation's seconds and
    clocks. ``progress(message)`` hears about every chunk.
    """
    import copy
    from ..models.inttrain import IntTrainer, lr_schedule, sample_order
    fmt = cfg.fmt
    a_train, a_test = fmt.quantize_input(data.x_train), fmt.quantize_input(data.x_test)
    order = sample_order(cfg, len(a_train))[:steps]
    lrs = lr_schedule(cfg, len(a_train))[:steps]
    steps = len(order)
    host = IntTrainer(cfg, data.n_inputs, data.n_classes)
    chip = copy.deepcopy(host)

    def row(step):
        return {"step": int(step), "host_test_acc": host.accuracy(a_test, data.y_test),
                "chip_test_acc": chip.accuracy(a_test, data.y_test)}

    curve = [row(0)]
    seconds = cycles = 0
    bounds = np.unique(np.linspace(0, steps, points + 1).astype(int))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = order[lo:hi]
        result = simulate_training(copy.deepcopy(chip), a_train[idx], data.y_train[idx],
                                   lr=lrs[lo:hi], serial=serial, fold=fold)
        host.train_steps(a_train[idx], data.y_train[idx], lrs[lo:hi])
        check_weights(host, result)
        chip.v = [w.copy() for w in result.weights]
        chip.lfsr.state = result.lfsr
        seconds += result.seconds
        cycles += result.cycles
        curve.append(row(hi))
        if progress is not None:
            progress(f"{hi}/{steps} samples in the gateware, weights equal, test "
                     f"{100 * curve[-1]['chip_test_acc']:.2f}% "
                     f"({result.cycles_per_second:.0f} clocks/s simulated)")
    return host, curve, seconds, cycles
