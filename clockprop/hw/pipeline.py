"""The inference pipeline: one dense layer per stage, then argmax."""

from amaranth.hdl import Fragment, Module, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .argmax import Argmax, result_layout
from ..core.errors import ClockpropError
from .arith import Cost
from .dense import DenseLayer
from .folded import FoldedDenseLayer
from .lut import TruthTableLayer
from ..models.truthtable import LUT_BITS, check_layer_fits, check_table_bits, table_bits

__all__ = ["Pipeline", "check_fold", "config_hardware", "hardware_options", "layer_mappings"]


def check_fold(model, fold):
    """Fold factors, one per layer (all 1 when ``fold`` is None), each dividing its fan-in.

    Call it before constructing a :class:`Pipeline` from user input: it raises
    :class:`ClockpropError` with what to change.
    """
    n = len(model.layers)
    fold = list(fold) if fold is not None else [1] * n
    if len(fold) != n:
        raise ClockpropError(f"give one fold factor per layer ({n}), got {len(fold)}")
    for l, (layer, f) in enumerate(zip(model.layers, fold)):
        if not isinstance(f, int) or isinstance(f, bool) or f < 1 or layer.n_in % f:
            raise ClockpropError(f"fold factor {f!r} of layer {l} does not divide its "
                                 f"fan-in {layer.n_in}; choose a divisor of {layer.n_in}")
    return fold


def config_hardware(model):
    """The ``[hardware]`` table of the config that ``model`` was trained from (``{}``: none)."""
    return (model.meta.get("config") or {}).get("hardware") or {}


def hardware_options(model, *, register_every=None, fold=None, board=None):
    """``(register_every, fold)`` to build ``model`` with: the options given, else those of
    the model's config (its ``[hardware]`` table), else the default of ``board``
    (:class:`~clockprop.boards.registry.Board`, if given) for ``register_every`` and the
    fully parallel pipeline with one clock per layer. The fold factors are checked
    (:func:`check_fold`)."""
    hw = config_hardware(model)
    if register_every is None:
        register_every = hw.get("register_every")
    if register_every is None:
        register_every = board.register_every if board else 0
    if fold is None:
        fold = hw.get("fold")
    return register_every, check_fold(model, fold)


def layer_mappings(model, fold=None, lut_bits=None):
    """How each layer is built: ``"truth-table"`` (:class:`TruthTableLayer`) for a hidden,
    unfolded layer whose densest neuron reads at most ``lut_bits`` input bits, ``"folded"``
    for a fold factor above 1, else ``"shift-add"`` (:class:`DenseLayer`). ``lut_bits``
    None takes the model's ``[hardware] lut_bits``, else :data:`LUT_BITS`; 0 turns truth
    tables off. A table layer (learned tables, ``IntLayer.table``) has no arithmetic form:
    it is always a truth table, and a ``lut_bits`` or fold that would make it anything else
    is refused (:class:`ClockpropError`)."""
    if lut_bits is None:
        lut_bits = config_hardware(model).get("lut_bits", LUT_BITS)
    lut_bits = check_table_bits(lut_bits)
    fold = check_fold(model, fold)
    n = len(model.layers)
    for l, (layer, f) in enumerate(zip(model.layers, fold)):
        if layer.table is None:
            continue
        if f > 1:
            raise ClockpropError(f"layer {l} holds learned truth tables, which cannot be "
                                 f"folded; give it fold factor 1")
        check_layer_fits(layer, model.fmt, lut_bits, name=f"layer {l} (learned truth tables)")
    return ["folded" if f > 1 else
            "truth-table" if l < n - 1 and 0 < table_bits(layer, model.fmt) <= lut_bits else
            "shift-add"
            for l, (layer, f) in enumerate(zip(model.layers, fold))]


class Pipeline(wiring.Component):
    """Classify one sample per clock with the integer model ``model``, bit-exactly.

    Parameters
    ----------
    model : IntModel
        The integer golden model (``models.intmodel``) whose arithmetic this reproduces.
    register_every : int
        Also register inside the adder trees after every this many adder levels, for a
        higher fmax at the same throughput (0: the classic one clock per layer).
    argmax_every : int
        Register inside the argmax comparator tree after every this many comparator levels
        (default 1: a few flip-flops that keep argmax off the critical path; 0: none).
    logit_memory : bool
        The argmax's logits wait for its result in block RAM, not in flip-flops
        (:class:`Argmax`; what the iCE40 board tops use, where every such flip-flop took a
        logic cell).
    fold : sequence of int, optional
        Fold factor of every layer (1: fully parallel constant shift-adds). A layer with
        ``F > 1`` is a :class:`FoldedDenseLayer`: weights in a ROM, ``1/F`` of the logic,
        one sample every ``F`` clocks.
    lut_bits : int, optional
        A hidden, unfolded layer whose neurons read at most this many input bits (non-zero
        weights times ``act_bits``) is a :class:`TruthTableLayer`: one logic function per
        output bit, latency 1 (:func:`layer_mappings`; None: the model's ``[hardware]
        lut_bits``, else 6; 0: never). ``self.mappings`` names each layer's mapping.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(act_bits), n_inputs)))``
        Quantized input activations.
    o : ``Out(stream.Signature(result_layout(signed(logit_width), n_classes)))``
        ``cls`` and ``logits``; the logits equal ``model.forward`` exactly.

    Throughput one sample every ``self.interval`` clocks (1 unless folded). Latency
    ``self.latency`` clocks: one per layer (more with ``register_every`` or folding) plus
    ``self.argmax.latency`` for argmax (4 for 9 to 16 classes; 8 at ``register_every=1``,
    where each comparison is registered too). Backpressure on ``o`` stalls
    the pipeline.
    """

    def __init__(self, model, *, register_every=0, fold=None, argmax_every=1, lut_bits=None,
                 logit_memory=False):
        self.model = model
        n = len(model.layers)
        fold = check_fold(model, fold)
        self.mappings = layer_mappings(model, fold, lut_bits)
        self.layers = [self._layer(layer, mapping, l < n - 1, f, register_every)
                       for l, (layer, mapping, f) in enumerate(zip(model.layers, self.mappings,
                                                                   fold))]
        self.interval = max(layer.interval for layer in self.layers)
        # At register_every=1 (the ECP5's mode) every comparison gets a clock of its own too.
        self.argmax = Argmax(self.layers[-1].o.payload.shape().elem_shape, model.n_classes,
                             register_every=argmax_every, split=register_every == 1,
                             logit_memory=logit_memory)
        self.latency = sum(layer.latency for layer in self.layers) + self.argmax.latency
        self.logit_shape = self.layers[-1].o.payload.shape().elem_shape
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(model.fmt.act_bits),
                                                      model.n_inputs))),
            "o": Out(stream.Signature(result_layout(self.logit_shape, model.n_classes))),
        })

    def _layer(self, layer, mapping, activate, fold, register_every):
        fmt = self.model.fmt
        if mapping == "truth-table":
            return TruthTableLayer(layer, fmt, limit=table_bits(layer, fmt))
        if mapping == "folded":
            return FoldedDenseLayer(layer, fmt, activate=activate, fold=fold)
        return DenseLayer(layer, fmt, activate=activate, register_every=register_every)

    def elaborate(self, platform):
        m = Module()
        for l, layer in enumerate(self.layers):
            m.submodules[f"layer{l}"] = layer
        m.submodules.argmax = self.argmax
        wiring.connect(m, wiring.flipped(self.i), self.layers[0].i)
        for a, b in zip(self.layers, self.layers[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, self.layers[-1].o, self.argmax.i)
        wiring.connect(m, self.argmax.o, wiring.flipped(self.o))
        return m

    def estimate(self):
        """LUT/FF tally of the elaborated design (see :class:`hw.arith.Cost`)."""
        Fragment.get(self, None)
        total = Cost()
        for part in [*self.layers, self.argmax]:
            total += part.cost
        return total

    def layer_costs(self):
        """``[(mapping, Cost)]`` of every layer, then ``("argmax", Cost)``."""
        Fragment.get(self, None)
        return [*zip(self.mappings, (layer.cost for layer in self.layers)),
                ("argmax", self.argmax.cost)]

    def layer_rows(self):
        """One dict per layer for reports and ``clockprop fit``: shape, mapping, the input
        bits of its widest truth table (truth-table layers), estimated LUT4 and FF."""
        rows = []
        for l, ((mapping, cost), layer) in enumerate(zip(self.layer_costs(), self.model.layers)):
            row = {"layer": l, "shape": [layer.n_in, layer.n_out], "mapping": mapping,
                   "lut": cost.lut, "ff": cost.ff}
            if mapping == "truth-table":
                row["table_bits"] = table_bits(layer, self.model.fmt)
            rows.append(row)
        return rows
