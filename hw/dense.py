"""A fully parallel dense layer with constant weights: one pipeline stage."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import AdderTree, Cost, csd_digits
from .stage import StageControl

__all__ = ["DenseLayer", "activation"]


def activation(m, acc, frac, fmt, cost, name):
    """The next layer's input ``clip(acc >> frac, 0, A)`` as a new comb signal."""
    shifted = acc >> frac
    value = Signal(unsigned(fmt.act_bits), name=name)
    with m.If(shifted < 0):
        m.d.comb += value.eq(0)
    with m.Elif(shifted > fmt.a_max):
        m.d.comb += value.eq(fmt.a_max)
    with m.Else():
        m.d.comb += value.eq(shifted)
    cost.lut += fmt.act_bits + 2                    # clamp comparators and multiplexer
    return value


class DenseLayer(wiring.Component):
    """``h = W @ a + b`` for constant integer ``W``, ``b``, computed every clock.

    Every weight becomes shift-adds of its canonical signed digits (a zero weight costs
    nothing); each neuron sums its terms in a balanced adder tree. A hidden layer ends in the
    next layer's activation, ``clip(h >> frac, 0, A)``, so its output register holds
    ``act_bits`` per neuron; the output layer (``activate=False``) registers ``h`` itself at the
    exact accumulator width of :meth:`QFormat.acc_width`, which cannot overflow.

    Parameters
    ----------
    layer : IntLayer
        Integer weights, bias and fraction bits (``sw.intmodel``).
    fmt : QFormat
        The number format.
    activate : bool
        Output the next layer's activations (hidden layer) or the raw accumulators (logits).
    register_every : int
        Pipeline register after every this many adder levels (0: one register per layer).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(act_bits), n_in)))``
    o : ``Out(stream.Signature(ArrayLayout(unsigned(act_bits) or signed(acc_width), n_out)))``

    Latency ``self.latency`` clocks (1 unless ``register_every`` is set); throughput one
    sample per clock. ``self.cost`` holds the LUT/FF tally after elaboration.
    """

    def __init__(self, layer, fmt, *, activate, register_every=0):
        self.layer = layer
        self.fmt = fmt
        self.activate = activate
        self.register_every = register_every
        self.acc_width = fmt.acc_width(layer.weight, layer.bias)
        self._terms = [[(i, shift, sign) for i in range(layer.n_in)
                        for shift, sign in csd_digits(layer.weight[j, i])]
                       for j in range(layer.n_out)]
        probe = AdderTree(None, None, register_every, Cost())
        self.tree_levels = max(probe.levels_for(len(t), int(b))
                               for t, b in zip(self._terms, layer.bias))
        self.latency = 1 + self.tree_levels
        self.interval = 1
        self.cost = Cost()
        out_shape = unsigned(fmt.act_bits) if activate else signed(self.acc_width)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(fmt.act_bits), layer.n_in))),
            "o": Out(stream.Signature(data.ArrayLayout(out_shape, layer.n_out))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.control = control = StageControl(self.latency)
        control.connect(m, self.i, self.o)

        self.cost = Cost()
        tree = AdderTree(m, control.en, self.register_every, self.cost)
        a = self.i.payload
        for j, terms in enumerate(self._terms):
            leaves = [(a[i] << shift, sign) for i, shift, sign in terms]
            h = tree.sum(leaves, int(self.layer.bias[j]), f"n{j}", self.tree_levels)
            acc = Signal(signed(self.acc_width), name=f"acc{j}")
            m.d.comb += acc.eq(h)
            value = (activation(m, acc, self.layer.frac, self.fmt, self.cost, f"act{j}")
                     if self.activate else acc)
            with m.If(control.en):
                m.d.sync += self.o.payload[j].eq(value)
            self.cost.ff += len(value)
        return m
