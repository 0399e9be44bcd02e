"""Cycle-accurate simulation of the inference pipeline with Amaranth's simulator."""

import time
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from ..hw.pipeline import Pipeline
from ..core.words import pack, unpack

__all__ = ["SimResult", "simulate", "run_testbench"]


def run_testbench(dut, testbench, vcd=None):
    """Run ``testbench`` against ``dut`` on a 100 MHz ``sync`` clock; the seconds it took.

    ``vcd`` is a path for a waveform file (``None``: none written).
    """
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    start = time.perf_counter()
    if vcd:
        with sim.write_vcd(str(vcd)):
            sim.run()
    else:
        sim.run()
    return time.perf_counter() - start


@dataclass
class SimResult:
    logits: np.ndarray      # int64 [N, n_classes], as the gateware computed them
    classes: np.ndarray     # int64 [N]
    cycles: int             # clocks from the first input offered to the last result taken
    latency: int            # clocks from a sample's acceptance to its result (measured)
    seconds: float

    @property
    def cycles_per_second(self):
        return self.cycles / self.seconds if self.seconds else float("nan")


def simulate(model, inputs, *, register_every=0, fold=None, stall=0.0, seed=0, vcd=None,
             progress=None):
    """Stream integer ``inputs`` [N, n_in] through a :class:`Pipeline` for ``model``.

    One sample is offered every clock. With ``stall`` > 0 the testbench also withholds input
    and output readiness at random (probability ``stall`` per clock) to exercise flow control.
    ``progress(done, total)`` is called every few hundred results. ``vcd`` is a path for a
    waveform file.
    """
    inputs = model.check_inputs(inputs)
    dut = Pipeline(model, register_every=register_every, fold=fold)
    n = len(inputs)
    a_bits = model.fmt.act_bits
    packed = [pack(row, a_bits) for row in inputs]
    layout = dut.o.payload.shape()
    cls_field, logits_field = layout["cls"], layout["logits"]
    logit_width = logits_field.shape.elem_shape.width
    raw_out = []
    timing = {"cycles": 0, "accepted": [], "produced": []}

    async def testbench(ctx):
        rng = np.random.default_rng(seed)
        taken = cycle = 0
        while len(raw_out) < n:
            offer = taken < n and not (stall and rng.random() < stall)
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload.as_value(), packed[taken])
            ctx.set(dut.o.ready, ready)
            _, _, i_ready, o_valid, o_raw = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload.as_value())
            if offer and i_ready:
                timing["accepted"].append(cycle)
                taken += 1
            if o_valid and ready:
                timing["produced"].append(cycle)
                raw_out.append(o_raw)
                if progress and len(raw_out) % 256 == 0:
                    progress(len(raw_out), n)
            cycle += 1
        timing["cycles"] = cycle

    seconds = run_testbench(dut, testbench, vcd)

    classes = np.array([(r >> cls_field.offset) & ((1 << cls_field.width) - 1)
                        for r in raw_out], dtype=np.int64)
    logits = np.array([unpack(r >> logits_field.offset, logit_width, model.n_classes,
                              signed=True) for r in raw_out],
                      dtype=np.int64).reshape(n, model.n_classes)
    latency = (timing["produced"][0] - timing["accepted"][0]) if n else dut.latency
    return SimResult(logits, classes, timing["cycles"], latency, seconds)
