"""Flow control shared by every pipeline stage."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StageControl"]


class StageControl(wiring.Component):
    """Valid/ready control of a pipeline stage ``latency`` clocks deep.

    The stage's data registers load when ``en`` is high. ``en`` is low only while the stage
    holds a valid result that downstream does not take, so a stream flows at one sample per
    clock and backpressure stalls the stage (and, through ``i_ready``, everything upstream).

    Members
    -------
    i_valid : ``In(1)``;  i_ready : ``Out(1)``   -- upstream handshake
    o_valid : ``Out(1)``; o_ready : ``In(1)``    -- downstream handshake
    en : ``Out(1)``                                 -- clock enable of the data registers
    """

    i_valid: In(1)
    i_ready: Out(1)
    o_valid: Out(1)
    o_ready: In(1)
    en: Out(1)

    def __init__(self, latency):
        assert latency >= 1
        self.latency = latency
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        valid = [Signal(name=f"valid{k}") for k in range(self.latency)]
        m.d.comb += [
            self.en.eq(~valid[-1] | self.o_ready),
            self.i_ready.eq(self.en),
            self.o_valid.eq(valid[-1]),
        ]
        with m.If(self.en):
            m.d.sync += valid[0].eq(self.i_valid)
            m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, self.latency)]
        return m

    def connect(self, m, i, o):
        """Drive this control from stream ``i`` (consumed) and ``o`` (produced)."""
        m.d.comb += [
            self.i_valid.eq(i.valid),
            i.ready.eq(self.i_ready),
            o.valid.eq(self.o_valid),
            self.o_ready.eq(o.ready),
        ]
