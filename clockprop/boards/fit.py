"""Will a model fit a board? Resource estimates before synthesis, and a clear refusal.

The pipeline's LUT/FF tally comes from its own elaboration (:meth:`Pipeline.estimate`, one
LUT4 per adder bit); the board top around it (UART, frame codec, request handler, self-test
control) adds a fixed overhead measured from small builds; block RAM is counted from the
shapes a block can take, for the self-test split, the frame buffer and the weight ROMs of
folded layers; a self-test split kept in logic (on the ECP5, :func:`selftest_storage`) counts
as LUTs and flip-flops instead. A DSP is never needed: weights are constants or ROM words,
multiplied by shift-adds.
"""

from dataclasses import dataclass, field

from ..core.errors import ClockpropError

__all__ = ["logit_memory", "TOP_OVERHEAD", "ebr_blocks", "rom_ebr", "selftest_capacity", "logic_rom_cost",
           "selftest_storage", "FitReport", "estimate", "check_fit"]

# LUT4 / FF of the board top without the pipeline, from small iCE40 builds (boards/build.py):
# UART rx+tx, FrameRx/FrameTx with CRC, the request FSM and the self-test counters.
TOP_OVERHEAD = {"lut": 700, "ff": 450}
FRAME_BUFFER_BYTES = 64
LIMIT = 1.0                 # refuse above this fraction of a resource
# An iCE40 logic cell is one LUT4 and one flip-flop; a flip-flop whose input is not the output
# of a LUT in its cell takes a cell of its own. Cells = LUT4 + this share of the flip-flops,
# measured against nextpnr's packing of estimated tops: 0.27 (mnist14_lut_up5k: 5,683 cells
# for 4,789 LUT4 + 3,270 FF estimated; it did not place) to 0.40 (digits_lut: 4,085 for 3,162
# + 2,280). The lower one, so that no top that placed is refused.
LC_FF_SHARE = 0.27
WARN = 0.85                 # above this, placement may fail or fmax drop
# On the ECP5 a self-test split is kept in logic (hw.rom.LogicRom) when that takes at most
# this share of the device's LUTs: nextpnr gives a block RAM's data 5.5 to 5.8 ns after the
# clock, and from block RAM the default digits top stopped at 134.9 MHz of its 150.
LOGIC_ROM_SHARE = 0.15


def ebr_blocks(depth, width, capacity):
    """Block RAMs for a ``depth`` x ``width`` memory, in the best block shape."""
    if depth <= 0 or width <= 0:
        return 0
    return min(-(-depth // d) * -(-width // w) for d, w in capacity.ebr_shapes)


def _label_bits(model):
    return max(1, (model.n_classes - 1).bit_length())


def _selftest_ebr(model, n, capacity):
    if n <= 0:
        return 0
    return (ebr_blocks(n, model.n_inputs * model.fmt.act_bits, capacity) +
            ebr_blocks(n, _label_bits(model), capacity))


def logic_rom_cost(depth, width):
    """LUT4 and flip-flops of a :class:`~clockprop.hw.rom.LogicRom` (an upper estimate): a
    LUT and a flip-flop per bit of each 16-word bank, half as many LUTs again and a few
    registers per bit for the multiplexers (the 450 x 256-bit digits split: 10,584 LUT4 and
    8,133 FF built, 11,136 and 8,448 estimated)."""
    if depth <= 0 or width <= 0:
        return {"lut": 0, "ff": 0}
    cells = -(-depth // 16) * width
    return {"lut": cells + cells // 2, "ff": cells + 4 * width}


def _selftest_logic(model, n):
    samples = logic_rom_cost(n, model.n_inputs * model.fmt.act_bits)
    labels = logic_rom_cost(n, _label_bits(model))
    return {k: samples[k] + labels[k] for k in samples}


def selftest_storage(model, family, capacity, n, *, register_every=0, fold=None):
    """Where a board top keeps an ``n``-sample self-test split: ``"logic"`` on the ECP5 when
    that takes at most :data:`LOGIC_ROM_SHARE` of the LUTs and leaves the whole top under
    :data:`WARN` of them, else ``"block"`` (block RAM)."""
    if family != "ecp5" or n <= 0:
        return "block"
    rom = _selftest_logic(model, n)["lut"]
    rest = estimate(model, register_every=register_every, fold=fold)["lut"]
    return ("logic" if rom <= LOGIC_ROM_SHARE * capacity.lut and
            rest + rom <= WARN * capacity.lut else "block")


def _frame_ebr(model, capacity):
    sample = (model.n_inputs * model.fmt.act_bits + 7) // 8
    return ebr_blocks(max(FRAME_BUFFER_BYTES, sample), 8, capacity)


def rom_ebr(model, fold, capacity):
    """Block RAMs for the weight ROMs of the folded layers: layer ``l`` with ``F > 1`` keeps
    ``F`` words of ``n_out * n_in / F * weight_bits`` bits."""
    blocks = 0
    for layer, f in zip(model.layers, fold or [1] * len(model.layers)):
        if f > 1:
            blocks += ebr_blocks(f, layer.n_out * layer.n_in // f * model.fmt.weight_bits,
                                 capacity)
    return blocks


def selftest_capacity(model, capacity, n_available, fold=None):
    """Most test samples (<= ``n_available``) whose self-test memories fit the block RAM
    left after the frame buffer and the weight ROMs, with a quarter of the blocks kept
    free."""
    budget = (int(capacity.ebr * 0.75) - _frame_ebr(model, capacity) -
              rom_ebr(model, fold, capacity))
    lo, hi = 0, int(n_available)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _selftest_ebr(model, mid, capacity) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class FitReport:
    board: str
    device: str
    need: dict
    available: dict
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def fits(self):
        return not self.problems

    def to_dict(self):
        return {"board": self.board, "device": self.device, "need": self.need,
                "available": self.available, "fits": self.fits, "problems": self.problems,
                "warnings": self.warnings}


_COSTS = {}

# The most of a board's block RAMs the argmax's logit ring may take (see logit_memory).
LOGIT_EBR_SHARE = 1 / 6


def _pipeline_cost(model, register_every, fold, logit_memory=False):
    """``(Cost, argmax)`` of the pipeline: its estimate, and its argmax stage."""
    from ..hw.pipeline import Pipeline
    key = (id(model), register_every, tuple(fold or ()), logit_memory)
    if key not in _COSTS or _COSTS[key][0] is not model:
        pipe = Pipeline(model, register_every=register_every, fold=fold,
                        logit_memory=logit_memory)
        _COSTS[key] = (model, pipe.estimate(), pipe.argmax)
    return _COSTS[key][1:]


def logit_memory(model, family, capacity, *, register_every=0, fold=None):
    """Whether a board top keeps the argmax's logits in block RAM
    (``Pipeline(logit_memory=True)``): on the iCE40, where a flip-flop that no LUT drives
    takes a logic cell of its own (the logit registers were about 240 of the digits_lut top's
    5,280 cells), for an unfolded pipeline (folded layers keep their weights in block RAM),
    when the ring takes at most :data:`LOGIT_EBR_SHARE` of the blocks (narrow logits: 70 bits
    in 5 of the UP5K's 30). The ECP5 has flip-flops to spare."""
    if family != "ice40" or any(f > 1 for f in fold or ()):
        return False
    _, argmax = _pipeline_cost(model, register_every, fold)
    width = len(argmax.o.payload.logits.as_value())
    return (argmax.latency > 1 and
            ebr_blocks(argmax.latency, width, capacity) <= LOGIT_EBR_SHARE * capacity.ebr)


def estimate(model, *, register_every=0, fold=None, selftest_samples=0, capacity=None,
             selftest_storage="block", logit_memory=False):
    """LUT4/FF/EBR/DSP that a board top for ``model`` needs (an estimate), with its self-test
    split in block RAM or (``selftest_storage="logic"``) in LUTs and flip-flops, and the
    argmax's logits in block RAM with ``logit_memory`` (:func:`logit_memory`)."""
    cost, argmax = _pipeline_cost(model, register_every, fold, logit_memory)
    # The frame's sample register, and the pipeline's input register unless the first layer
    # is folded (it holds its input itself).
    sample_bits = 8 * ((model.n_inputs * model.fmt.act_bits + 7) // 8)
    if not fold or fold[0] == 1:
        sample_bits += model.n_inputs * model.fmt.act_bits
    need = {"lut": cost.lut + TOP_OVERHEAD["lut"],
            "ff": cost.ff + TOP_OVERHEAD["ff"] + sample_bits, "dsp": 0, "ebr": 0}
    in_logic = selftest_storage == "logic"
    if in_logic:
        rom = _selftest_logic(model, selftest_samples)
        need["lut"] += rom["lut"]
        need["ff"] += rom["ff"]
    if capacity is not None:
        need["ebr"] = (_frame_ebr(model, capacity) + rom_ebr(model, fold, capacity) +
                       (0 if in_logic else _selftest_ebr(model, selftest_samples, capacity)))
        if argmax.logit_memory:
            need["ebr"] += ebr_blocks(argmax.latency, len(argmax.o.payload.logits.as_value()),
                                      capacity)
    return need


def check_fit(model, board, *, register_every=0, fold=None, selftest_samples=0, strict=True):
    """Compare :func:`estimate` with ``board``'s capacity.

    With ``strict`` a model that does not fit raises :class:`ClockpropError` saying what is
    needed, what is there, and what to change. Returns a :class:`FitReport`.
    """
    from .registry import BOARDS
    cap = board.capacity
    need = estimate(model, register_every=register_every, fold=fold,
                    selftest_samples=selftest_samples, capacity=cap,
                    selftest_storage=selftest_storage(
                        model, board.family, cap, selftest_samples,
                        register_every=register_every, fold=fold),
                    logit_memory=logit_memory(model, board.family, cap,
                                              register_every=register_every, fold=fold))
    avail = {"lut": cap.lut, "ff": cap.ff, "ebr": cap.ebr, "dsp": cap.dsp}
    report = FitReport(board.name, cap.device, need, avail)
    names = {"lut": "LUT4", "ff": "flip-flops", "ebr": "block RAMs", "dsp": "DSPs"}
    for key, label in names.items():
        if need[key] > LIMIT * avail[key]:
            report.problems.append(f"{need[key]} {label} needed, {avail[key]} available")
        elif need[key] > WARN * avail[key]:
            report.warnings.append(f"{label} at {100 * need[key] / avail[key]:.0f}%")
    if board.family == "ice40":
        cells = ice40_cells(need)
        if cells > LIMIT * cap.lut:
            report.problems.append(f"about {cells} logic cells needed (LUT4 + "
                                   f"{LC_FF_SHARE:.0%} of the flip-flops), {cap.lut} available")
        elif need["lut"] + need["ff"] > cap.lut:
            report.warnings.append(f"LUT4 + FF = {need['lut'] + need['ff']} > {cap.lut} logic "
                                   f"cells: placement fails if too few flip-flops pair with a "
                                   f"LUT")
    if report.problems and strict:
        bigger = [b.name for b in sorted(BOARDS.values(), key=lambda b: b.capacity.lut)
                  if estimate_fits(need, b.capacity, b.family)]
        hint = (f"use a bigger board ({', '.join(bigger)})" if bigger
                else "no supported board is big enough")
        advice = ("train it smaller: fewer hidden units (--set train.hidden=[16]), lower-bit "
                  "weights/activations (--set format.weight_bits=4 format.act_bits=3), "
                  "or prune small weights; or fold it (--fold F,F,...: about 1/F of the "
                  "logic, weights in block RAM)")
        if any("flip-flops" in p for p in report.problems) and register_every:
            advice = f"use fewer tree registers (--register-every {register_every + 1} or 0); " \
                     + advice
        name = model.meta.get("name", "the model")
        raise ClockpropError(f"{name} does not fit {board.name} ({cap.device}): "
                             f"{'; '.join(report.problems)} (estimate); {advice}; or {hint}")
    return report


def ice40_cells(need):
    """The iCE40 logic cells that ``need`` (an :func:`estimate`) takes: its LUT4 and
    :data:`LC_FF_SHARE` of its flip-flops."""
    return need["lut"] + round(LC_FF_SHARE * need["ff"])


def estimate_fits(need, capacity, family=None):
    """Whether ``need`` (an :func:`estimate`) fits ``capacity``; on the iCE40 (``family``)
    its logic cells too (:func:`ice40_cells`)."""
    cells_fit = family != "ice40" or ice40_cells(need) <= LIMIT * capacity.lut
    return (need["lut"] <= LIMIT * capacity.lut and need["ff"] <= LIMIT * capacity.ff and
            need["dsp"] <= capacity.dsp and cells_fit)
