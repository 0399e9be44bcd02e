"""Argmax stage: the index of the largest logit, ties to the lowest index (as ``np.argmax``)."""

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .arith import Cost, data_register
from .stage import StageControl

__all__ = ["Argmax", "result_layout"]


def result_layout(logit_shape, n_classes):
    """Payload of a classification result: the class and the logits it came from."""
    return data.StructLayout({
        "cls": unsigned(max(1, ceil_log2(n_classes))),
        "logits": data.ArrayLayout(logit_shape, n_classes),
    })


class Argmax(wiring.Component):
    """Pick the class with the largest logit, in a balanced tree of comparators.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(logit_shape, n)))``
    o : ``Out(stream.Signature(result_layout(logit_shape, n)))``

    Latency ``self.latency`` clocks: 1, plus a register level after every ``register_every``
    comparator levels when that is set; with ``split`` each level's comparison is also
    registered before its multiplexers (one clock more per level: on the ECP5 the
    comparison's carry chain and the multiplexers it drives did not fit in one clock
    together). Throughput one sample per clock.

    The logits travel beside the comparator tree to the output, one register per level. With
    ``logit_memory`` they wait in a memory of ``latency`` words instead, a ring that advances
    with the pipeline: block RAM instead of flip-flops. On the iCE40 each of those flip-flops
    took a logic cell of its own (no LUT drives it), about 240 of the 5,280 of a digits model.
    """

    def __init__(self, logit_shape, n_classes, *, register_every=0, split=False,
                 logit_memory=False):
        self.n_classes = n_classes
        self.register_every = register_every
        depth = max(n_classes - 1, 0).bit_length()         # ceil(log2(n_classes))
        self.levels = (depth - 1) // register_every if register_every and depth else 0
        self.split = split
        self.latency = 1 + self.levels + self.split * depth
        self.logit_memory = logit_memory and self.latency > 1
        self.cost = Cost()
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(logit_shape, n_classes))),
            "o": Out(stream.Signature(result_layout(logit_shape, n_classes))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.control = control = StageControl(self.latency)
        control.connect(m, self.i, self.o)

        self.cost = Cost()
        width = len(self.o.payload.cls)
        logits = self.i.payload.as_value()
        view = self.i.payload
        # The left node always holds lower indices, so a strict ">" keeps the first maximum.
        nodes = [(view[k], Const(k, unsigned(width))) for k in range(self.n_classes)]
        depth = done = 0

        def register(value, name):
            return data_register(m, control.en, value, name, self.cost)

        def carry(value, name):                 # the logits, beside the tree
            return value if self.logit_memory else register(value, name)

        while len(nodes) > 1:
            paired = []
            for k in range(0, len(nodes) - 1, 2):
                (va, ia), (vb, ib) = nodes[k], nodes[k + 1]
                # vb > va as the top bit of va - vb (one bit wider than both): a carry
                # chain, where the comparison became LUTs several levels deep on iCE40.
                take_b = (va - vb)[-1]
                if self.split:
                    name = f"cmp{depth}_{k // 2}"
                    take_b, va, vb, ia, ib = (register(v, f"{name}_{n}") for v, n in zip(
                        (take_b, va, vb, ia, ib), ("take_b", "va", "vb", "ia", "ib")))
                paired.append((Mux(take_b, vb, va), Mux(take_b, ib, ia)))
                self.cost.lut += 2 * len(va) + width        # comparator, value and index muxes
            if len(nodes) % 2:
                v, i = nodes[-1]
                if self.split:
                    v, i = register(v, f"cmp{depth}_pass_v"), register(i, f"cmp{depth}_pass_i")
                paired.append((v, i))
            if self.split:
                logits = carry(logits, f"logits_c{depth}")
            nodes = paired
            depth += 1
            if self.register_every and depth % self.register_every == 0 and len(nodes) > 1:
                nodes = [(register(v, f"max{done}_{k}"), register(i, f"idx{done}_{k}"))
                         for k, (v, i) in enumerate(nodes)]
                logits = carry(logits, f"logits{done}")
                done += 1
        out = Signal.like(self.o.payload, reset_less=True)
        m.d.comb += self.o.payload.eq(out)
        with m.If(control.en):
            m.d.sync += out.cls.eq(nodes[0][1])
        if self.logit_memory:
            m.d.comb += out.logits.eq(self._delayed(m, control.en, logits))
            self.cost.ff += len(out.cls)
            self.cost.rom_bits += len(logits) * self.latency
        else:
            with m.If(control.en):
                m.d.sync += out.logits.eq(logits)
            self.cost.ff += len(self.o.payload.as_value())
        return m

    def _delayed(self, m, en, value):
        """``value`` as it was ``latency - 1`` enabled clocks ago, registered: a memory of
        ``latency`` words, written at ``ptr`` and read at ``ptr + 1`` (the oldest word) every
        enabled clock. The two addresses never meet, so whatever a collision would give does
        not matter: the port is declared transparent and ``no_rw_check``, which leaves yosys
        nothing to emulate (a non-transparent port got 73 bypass flip-flops on the iCE40)."""
        depth = self.latency
        m.submodules.logit_delay = mem = Memory(
            shape=len(value), depth=depth, init=[],
            attrs={"ram_style": "block", "no_rw_check": 1})
        write = mem.write_port()
        read = mem.read_port(transparent_for=(write,))
        ptr = Signal(range(depth))
        m.d.comb += [write.addr.eq(ptr), write.data.eq(value), write.en.eq(en),
                     read.addr.eq(Mux(ptr == depth - 1, 0, ptr + 1)), read.en.eq(en)]
        with m.If(en):
            m.d.sync += ptr.eq(Mux(ptr == depth - 1, 0, ptr + 1))
        return read.data
