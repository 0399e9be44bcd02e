"""The inference pipeline: one dense layer per stage, then argmax."""

from amaranth.hdl import Fragment, Module, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .argmax import Argmax, result_layout
from ..core.errors import ClockpropError
from .arith import Cost
from .dense import DenseLayer
from .folded import FoldedDenseLayer

__all__ = ["Pipeline", "check_fold", "config_hardware", "hardware_options"]


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
    fold : sequence of int, optional
        Fold factor of every layer (1: fully parallel constant shift-adds). A layer with
        ``F > 1`` is a :class:`FoldedDenseLayer`: weights in a ROM, ``1/F`` of the logic,
        one sample every ``F`` clocks.

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

    def __init__(self, model, *, register_every=0, fold=None, argmax_every=1):
        self.model = model
        n = len(model.layers)
        fold = check_fold(model, fold)
        self.layers = [
            DenseLayer(layer, model.fmt, activate=l < n - 1, register_every=register_every)
            if f == 1 else
            FoldedDenseLayer(layer, model.fmt, activate=l < n - 1, fold=f)
            for l, (layer, f) in enumerate(zip(model.layers, fold))]
        self.interval = max(layer.interval for layer in self.layers)
        # At register_every=1 (the ECP5's mode) every comparison gets a clock of its own too.
        self.argmax = Argmax(self.layers[-1].o.payload.shape().elem_shape, model.n_classes,
                             register_every=argmax_every, split=register_every == 1)
        self.latency = sum(layer.latency for layer in self.layers) + self.argmax.latency
        self.logit_shape = self.layers[-1].o.payload.shape().elem_shape
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(model.fmt.act_bits),
                                                      model.n_inputs))),
            "o": Out(stream.Signature(result_layout(self.logit_shape, model.n_classes))),
        })

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
