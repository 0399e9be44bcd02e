"""A dense layer folded over its fan-in: about 1/F of the logic, one sample every F clocks."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .arith import AdderTree, Cost
from .dense import activation

__all__ = ["FoldedDenseLayer"]


class FoldedDenseLayer(wiring.Component):
    """``h = W @ a + b`` computed ``n_in / fold`` inputs at a time from a weight ROM.

    The input vector is held in a register that shifts one chunk per clock. Chunk ``k``'s weights
    (``n_out x n_in/fold`` of them) are one word of a synchronous ROM (block RAM); each
    product ``a_i * w_ji`` is ``act_bits`` shifted copies of ``w_ji`` selected by the bits of
    ``a_i`` (no multiplier), summed per neuron in a balanced tree and accumulated over the
    chunks, starting from the bias. The arithmetic is the golden model's (integer sums do not
    depend on their order), so the result is bit-exact with :class:`models.intmodel.IntModel`.

    Parameters
    ----------
    layer, fmt, activate :
        As for :class:`hw.dense.DenseLayer`.
    fold : int
        Chunks per sample; must divide the fan-in.

    Members
    -------
    i, o : as for :class:`hw.dense.DenseLayer`.

    Throughput one sample every ``fold`` clocks; latency ``fold + 2`` clocks
    (``self.latency``). ``self.cost`` holds the LUT/FF tally and ``self.rom_bits`` the ROM size
    after elaboration.
    """

    def __init__(self, layer, fmt, *, activate, fold):
        assert fold >= 1 and layer.n_in % fold == 0, "checked by Pipeline"
        self.layer = layer
        self.fmt = fmt
        self.activate = activate
        self.fold = fold
        self.chunk = layer.n_in // fold
        self.acc_width = fmt.acc_width(layer.weight, layer.bias)
        self.latency = fold + 2
        self.interval = fold
        self.rom_bits = fold * layer.n_out * self.chunk * fmt.weight_bits
        self.cost = Cost()
        out_shape = unsigned(fmt.act_bits) if activate else signed(self.acc_width)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(fmt.act_bits), layer.n_in))),
            "o": Out(stream.Signature(data.ArrayLayout(out_shape, layer.n_out))),
        })

    def _rom_init(self):
        wb = self.fmt.weight_bits
        mask = (1 << wb) - 1
        words = []
        for k in range(self.fold):
            block = self.layer.weight[:, k * self.chunk:(k + 1) * self.chunk].ravel()
            word = 0
            for n, w in enumerate(block):               # element n = j * chunk + i
                word |= (int(w) & mask) << (n * wb)
            words.append(word)
        return words

    def elaborate(self, platform):
        m = Module()
        fmt, layer, chunk, fold = self.fmt, self.layer, self.chunk, self.fold
        self.cost = cost = Cost(rom_bits=self.rom_bits)
        weights_layout = data.ArrayLayout(signed(fmt.weight_bits), layer.n_out * chunk)
        m.submodules.rom = rom = Memory(shape=unsigned(weights_layout.size), depth=fold,
                                        init=self._rom_init())
        rd = rom.read_port(domain="sync")

        # Stage A: hold the sample, walk its chunks.
        en = Signal()
        out_valid = Signal()
        m.d.comb += [en.eq(~out_valid | self.o.ready), self.o.valid.eq(out_valid)]
        x_hold = Signal(self.i.payload.shape())
        k = Signal(range(fold))
        busy = Signal()
        take = Signal()
        m.d.comb += [take.eq(en & (~busy | (k == fold - 1))),
                     self.i.ready.eq(take)]
        cost.ff += len(x_hold.as_value()) + len(k) + 1

        chunk_bits = chunk * fmt.act_bits
        b_chunk = Signal(chunk_bits)
        b_first = Signal()
        b_last = Signal()
        b_valid = Signal()
        m.d.comb += [rd.addr.eq(k), rd.en.eq(en)]
        # x_hold shifts one chunk down per step, so chunk k is always at the bottom: no
        # fold-to-1 multiplexer on the path into the adder trees.
        with m.If(en):
            m.d.sync += [
                b_chunk.eq(x_hold.as_value()[:chunk_bits]),
                b_first.eq(k == 0),
                b_last.eq(k == fold - 1),
                b_valid.eq(busy),
            ]
            with m.If(take):
                m.d.sync += [x_hold.eq(self.i.payload), k.eq(0), busy.eq(self.i.valid)]
            with m.Else():
                m.d.sync += [k.eq(k + 1), x_hold.eq(x_hold.as_value() >> chunk_bits)]
        cost.ff += chunk_bits + 3
        cost.lut += len(x_hold.as_value())                              # load or shift

        # Stage B: products of the chunk, per-neuron trees, accumulate over the chunks.
        w = weights_layout(rd.data)
        a = data.ArrayLayout(unsigned(fmt.act_bits), chunk)(b_chunk)
        tree = AdderTree(m, None, 0, cost)
        acc = [Signal(signed(self.acc_width), name=f"acc{j}") for j in range(layer.n_out)]
        for j in range(layer.n_out):
            leaves = []
            for i in range(chunk):
                wji = w[j * chunk + i]
                for bit in range(fmt.act_bits):
                    leaves.append((Mux(a[i][bit], wji << bit, 0), +1))
                    cost.lut += fmt.weight_bits + bit
            partial = tree.sum(leaves, 0, f"n{j}", 0)
            start = Mux(b_first, int(layer.bias[j]), acc[j])
            total = Signal(signed(self.acc_width), name=f"total{j}")
            m.d.comb += total.eq(start + partial)
            cost.lut += 2 * self.acc_width                              # bias mux, adder
            value = (activation(m, total, layer.frac, fmt, cost, f"act{j}")
                     if self.activate else total)
            with m.If(en & b_valid):
                m.d.sync += acc[j].eq(total)
                with m.If(b_last):
                    m.d.sync += self.o.payload[j].eq(value)
            cost.ff += self.acc_width + len(self.o.payload[j])
        with m.If(en):
            m.d.sync += out_valid.eq(b_valid & b_last)
        return m
