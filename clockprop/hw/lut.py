"""A hidden layer of truth-table neurons: each output bit a small logic function, one register.

See :mod:`clockprop.models.truthtable` for the tables. Each output bit of a neuron becomes a
function of only the input bits it depends on (bits it ignores are dropped first), written as
a constant indexed by those bits; yosys and ABC map it to LUTs. One register per layer, so the
layer takes a sample every clock with a latency of one clock, whatever its width.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..models.truthtable import LUT_BITS, check_layer_fits, layer_tables
from .arith import Cost
from .stage import StageControl

__all__ = ["TruthTableLayer", "lut4_cost", "bit_function"]


def lut4_cost(n):
    """LUT4s of an ``n``-input output bit, as yosys and ABC map a neuron's threshold-like
    functions: one up to 4 inputs, 2 for 5 and 4 for 6 (measured on 64-neuron layers of
    random sparse weights: within 25% of ``synth_ice40`` and ``synth_ecp5``, see
    ``bench/lut.py``), doubling with each input after that (Shannon expansion: halves
    of one input fewer and a multiplexer)."""
    if n <= 0:
        return 0
    if n <= 4:
        return 1
    return 1 << (n - 4) if n <= 6 else 3 << (n - 6)


def bit_function(table, bit, n_bits):
    """Output bit ``bit`` of ``table`` as ``(support, function)``: the input bits it depends
    on, ascending, and its truth table (int) over just those bits (support bit ``k`` is bit
    ``k`` of the reduced index)."""
    f = (np.asarray(table) >> bit) & 1
    codes = np.arange(len(f))
    support = [p for p in range(n_bits) if np.any(f != f[codes ^ (1 << p)])]
    kept = np.zeros(1 << len(support), dtype=np.int64)
    for r in range(len(kept)):
        code = sum(((r >> k) & 1) << p for k, p in enumerate(support))
        kept[r] = f[code]
    return tuple(support), int(sum(int(v) << r for r, v in enumerate(kept)))


class TruthTableLayer(wiring.Component):
    """A hidden layer computed as the truth tables of its neurons, exactly the golden model.

    Neuron ``j`` reads the inputs with a non-zero weight and outputs the next layer's
    activation ``clip((w_j . a + b_j) >> frac, 0, A)`` from its table; each output bit is a
    logic function of the input bits it depends on.

    Parameters
    ----------
    layer : IntLayer
        A hidden layer (its output feeds an activation).
    fmt : QFormat
        The number format.
    limit : int
        Most input bits of a table (``[hardware] lut_bits``); a denser layer is refused.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(act_bits), n_in)))``
    o : ``Out(stream.Signature(ArrayLayout(unsigned(act_bits), n_out)))``

    Latency 1 clock, throughput one sample per clock. ``self.cost`` holds the LUT4/FF tally
    after elaboration (:func:`lut4_cost` per output bit, by the bits it depends on).
    """

    def __init__(self, layer, fmt, *, limit=LUT_BITS):
        check_layer_fits(layer, fmt, limit)
        self.layer = layer
        self.fmt = fmt
        self.tables = layer_tables(layer, fmt)
        self.latency = 1
        self.interval = 1
        self.cost = Cost()
        shape = data.ArrayLayout(unsigned(fmt.act_bits), layer.n_in)
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(fmt.act_bits), layer.n_out))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.control = control = StageControl(self.latency)
        control.connect(m, self.i, self.o)
        self.cost = Cost()
        out = Signal.like(self.o.payload, reset_less=True)      # data: no reset (hw.arith)
        m.d.comb += self.o.payload.eq(out)
        for j, table in enumerate(self.tables):
            value = self._neuron(m, table, f"n{j}")
            with m.If(control.en):
                m.d.sync += out[j].eq(value)
            self.cost.ff += self.fmt.act_bits
        return m

    def _neuron(self, m, table, name):
        """The neuron's output bits as a comb signal."""
        ab = self.fmt.act_bits
        code = Cat(*(self.i.payload[i] for i in table.inputs))
        value = Signal(unsigned(ab), name=name)
        for bit in range(ab):
            support, function = bit_function(table.table, bit, table.n_bits)
            if support:
                index = Cat(*(code[p] for p in support))
                m.d.comb += value[bit].eq(Const(function, 1 << len(support)).bit_select(index, 1))
            else:
                m.d.comb += value[bit].eq(function)
            self.cost.lut += lut4_cost(len(support))
        return value
