"""A fully parallel dense layer with constant weights: one pipeline stage."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import AdderTree, Cost, csd_digits, data_register
from .stage import StageControl

__all__ = ["DenseLayer", "activation", "COPY_BLOCK", "COPY_FANOUT"]

COPY_BLOCK = 32
COPY_FANOUT = 4


def activation(m, acc, frac, fmt, cost, name):
    """The next layer's input ``clip(acc >> frac, 0, A)`` as a new comb signal.

    ``A = 2**act_bits - 1``, so the clip needs no comparator: a negative ``acc`` (its sign
    bit) gives 0, a set bit between the sign and the ``act_bits`` kept bits gives ``A``, and
    otherwise the kept bits are the value. (Two comparators had made carry chains after the
    adder tree, which on the ECP5 were the critical path at ``register_every=1``.)
    """
    ab = fmt.act_bits
    shifted = (acc >> frac).as_signed()
    value = Signal(unsigned(ab), name=name)
    over = shifted[ab:-1].any() if len(shifted) > ab + 1 else 0
    with m.If(shifted[-1]):
        m.d.comb += value.eq(0)
    with m.Elif(over):
        m.d.comb += value.eq(fmt.a_max)
    with m.Else():
        m.d.comb += value.eq(shifted[:ab])
    cost.lut += ab + 1 + max(len(shifted) - ab - 1, 0) // 3     # multiplexer, OR of the high bits
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
        Integer weights, bias and fraction bits (``models.intmodel``).
    fmt : QFormat
        The number format.
    activate : bool
        Output the next layer's activations (hidden layer) or the raw accumulators (logits).
    register_every : int
        Pipeline register after every this many adder levels (0: one register per layer).
        When it is set, a layer of more than :data:`COPY_BLOCK` neurons also registers one
        copy of its inputs for each block of at most that many neurons (one clock more, and
        ``act_bits`` flip-flops per input a block uses): no input net then reaches every
        neuron of the layer, which on the ECP5-85F had been a 12.9 ns route across the
        device. The copies are named ``copy<block>_<input>``; the yosys script of
        :mod:`boards.build` marks them ``keep`` so that they are not merged back. A hidden
        layer then also registers each neuron's sum before its activation (one clock more).

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
        # the added terms first, then the subtracted: each half sums as unsigned numbers,
        # and one subtraction joins them (mixed pairs would be signed from the first level)
        self._terms = [sorted(((i, shift, sign) for i in range(layer.n_in)
                               for shift, sign in csd_digits(layer.weight[j, i])),
                              key=lambda term: -term[2])
                       for j in range(layer.n_out)]
        probe = AdderTree(None, None, register_every, Cost())
        self.tree_levels = max(probe.levels_for(len(t), int(b))
                               for t, b in zip(self._terms, layer.bias))
        n_out = layer.n_out
        self.copies = -(-n_out // COPY_BLOCK) if register_every and n_out > COPY_BLOCK else 1
        self.copy_groups = -(-self.copies // COPY_FANOUT) if self.copies > COPY_FANOUT else 1
        # pipelined, a hidden layer also registers each sum before its activation
        self.acc_register = bool(register_every) and activate
        self.latency = (1 + self.tree_levels + (self.copies > 1) + (self.copy_groups > 1) +
                        self.acc_register)
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
        n_out = self.layer.n_out
        src = [a] * n_out                       # the inputs each neuron reads
        size = -(-n_out // self.copies)
        blocks = [range(b * size, min(n_out, (b + 1) * size)) for b in range(self.copies)]

        def copy_of(inputs, used, name):
            copy = {}
            for i in sorted(used):
                copy[i] = data_register(m, control.en, inputs[i], f"{name}_{i}", self.cost)
            return copy

        def used_by(rows):
            return {i for j in rows for i, _, _ in self._terms[j]}

        group_src = [a] * self.copies           # what each block's copy reads
        for g in range(self.copy_groups) if self.copy_groups > 1 else ():
            members = range(g * COPY_FANOUT, min(self.copies, (g + 1) * COPY_FANOUT))
            copy = copy_of(a, set().union(*(used_by(blocks[b]) for b in members)), f"copyg{g}")
            for b in members:
                group_src[b] = copy
        for b in range(self.copies) if self.copies > 1 else ():
            copy = copy_of(group_src[b], used_by(blocks[b]), f"copy{b}")
            for j in blocks[b]:
                src[j] = copy
        out = Signal.like(self.o.payload, reset_less=True)      # data: no reset (hw.arith)
        m.d.comb += self.o.payload.eq(out)
        for j, terms in enumerate(self._terms):
            leaves = [(src[j][i].shift_left(shift), sign, shift) for i, shift, sign in terms]
            h = tree.sum(leaves, int(self.layer.bias[j]), f"n{j}", self.tree_levels)
            acc = Signal(signed(self.acc_width), name=f"acc{j}", reset_less=self.acc_register)
            if self.acc_register:
                with m.If(control.en):
                    m.d.sync += acc.eq(h)
                self.cost.ff += self.acc_width
            else:
                m.d.comb += acc.eq(h)
            value = (activation(m, acc, self.layer.frac, self.fmt, self.cost, f"act{j}")
                     if self.activate else acc)
            with m.If(control.en):
                m.d.sync += out[j].eq(value)
            self.cost.ff += len(value)
        return m
