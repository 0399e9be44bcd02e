"""On-chip self-test: replay a stored test split through the pipeline and count hits."""

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..core.errors import ClockpropError
from .argmax import result_layout
from .rom import LogicRom

__all__ = ["SelfTest"]


class SelfTest(wiring.Component):
    """Stream ``samples`` to a pipeline at one per clock and count the correct classes.

    The samples and their labels sit in two read-only memories initialised from the test
    split, so the board needs nothing from the host but a ``start`` strobe: block RAM
    (``storage="block"``, :class:`~amaranth.lib.memory.Memory`) or logic (``"logic"``,
    :class:`~clockprop.hw.rom.LogicRom`: LUTs and flip-flops, a few clocks deep, for clocks
    at which a block RAM's output cannot reach a register in time).

    Parameters
    ----------
    samples : array [N, n_in] of int
        Quantized input activations, each in ``[0, 2**act_bits)``.
    labels : array [N] of int
        The true class of each sample.
    act_bits : int
        Width of an activation.
    n_classes : int
        Number of classes (sets the width of a label and of the result's ``cls``).
    logit_shape : Shape
        Shape of one logit in the pipeline's result (the ``i`` payload layout).
    storage : ``"block"`` or ``"logic"``
        Where the split is kept (see above).

    Members
    -------
    start : ``In(1)``
        Strobe: clear the counters and replay every sample (ignored while ``busy``).
    busy, done : ``Out(1)``
        ``busy`` while replaying; ``done`` high from the end of a run to the next ``start``.
    correct, total, cycles : ``Out(32)``
        Correct predictions, results seen, and clocks from ``start`` to ``done``
        (``N + latency + overhead`` when the pipeline never stalls: ``overhead`` is the
        sample memory's read latency, the label's and the comparison's register; 4 with
        block RAM).
    o : ``Out(stream.Signature(ArrayLayout(unsigned(act_bits), n_in)))``
        Samples to the pipeline; ``o.valid`` stays high while the pipeline is ready. With
        ``storage="logic"`` (``idle_zero``) ``o.payload`` is 0 whenever ``o.valid`` is low:
        the ROM holds an all-zero word after the split and reads it while there is no sample
        to send, so the board top can OR it with the host's samples, with no multiplexer.
    i : ``In(stream.Signature(result_layout(logit_shape, n_classes)))``
        Results back from the pipeline, in order. ``i.ready`` is always high.
    """

    def __init__(self, samples, labels, *, act_bits, n_classes, logit_shape, storage="block"):
        samples = [[int(v) for v in row] for row in samples]
        labels = [int(v) for v in labels]
        if not samples or len(samples) != len(labels) or any(
                not 0 <= v < n_classes for v in labels):
            self._MustUse__silence = True      # never elaborated: no "unused" warning
        if not samples or len(samples) != len(labels):
            raise ClockpropError(f"self-test needs at least one sample and one label per "
                                 f"sample; got {len(samples)} samples, {len(labels)} labels")
        if any(not 0 <= v < n_classes for v in labels):
            raise ClockpropError(f"self-test labels must be in [0, {n_classes})")
        if storage not in ("block", "logic"):
            raise ValueError(f"self-test storage must be 'block' or 'logic', not {storage!r}")
        self.storage = storage
        self.idle_zero = storage == "logic"
        self.n_samples = len(samples)
        self.n_inputs = len(samples[0])
        self.act_bits = act_bits
        self.sample_layout = data.ArrayLayout(unsigned(act_bits), self.n_inputs)
        self._samples = samples
        self._labels = labels
        self.label_shape = unsigned(max(1, ceil_log2(n_classes)))
        if storage == "logic":
            # An address copy per 4 data bits. The digits split streamed from a copy per
            # 8 bits on the ECP5-85F alone made 151.1 MHz (with a copy per 32 bits and 8-to-1
            # stages, 115.9 MHz: the stages' selects were late), but in the board top the
            # copies' routes to their LUTs were late.
            self._sample_rom = LogicRom(self._packed() + [0], self.sample_bits,
                                        copies=-(-self.sample_bits // 4),
                                        init_addr=self.n_samples)
            self._label_rom = LogicRom(labels, self.label_shape.width)
            self.sample_latency = self._sample_rom.latency
            self.label_latency = self._label_rom.latency
        else:
            self.sample_latency, self.label_latency = 1, 2    # the label's own register
        self.overhead = self.sample_latency + self.label_latency + 1   # + the comparison's
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1),
            "correct": Out(32), "total": Out(32), "cycles": Out(32),
            "o": Out(stream.Signature(self.sample_layout)),
            "i": In(stream.Signature(result_layout(logit_shape, n_classes))),
        })

    @property
    def sample_bits(self):
        return self.n_inputs * self.act_bits

    def _packed(self):
        mask = (1 << self.act_bits) - 1
        return [sum((v & mask) << (k * self.act_bits) for k, v in enumerate(row))
                for row in self._samples]

    def elaborate(self, platform):
        m = Module()
        s = self._signals(m, *self._storage(m))
        self._sample_reader(m, s)
        self._result_counter(m, s, *self._comparison(m, s))
        self._control(m, s)
        return m

    def _storage(self, m):
        """The sample and label memories (block RAM or logic); returns the sample read port,
        the label address and the label as read."""
        if self.storage == "logic":
            m.submodules.sample_rom = sample_rd = self._sample_rom
            m.submodules.label_rom = label_rom = self._label_rom
            m.d.comb += label_rom.en.eq(1)
            return sample_rd, label_rom.addr, label_rom.data
        m.submodules.sample_mem = sample_mem = Memory(
            shape=unsigned(self.sample_bits), depth=self.n_samples, init=self._packed())
        # Block RAM even though it is small: as logic, yosys builds a read multiplexer N
        # entries wide, many LUT levels deep on the path from ``seen``.
        m.submodules.label_mem = label_mem = Memory(
            shape=self.label_shape, depth=self.n_samples, init=self._labels,
            attrs={"rom_style": "block"})
        sample_rd = sample_mem.read_port()
        label_rd = label_mem.read_port()
        label_data = Signal.like(label_rd.data, reset_less=True)
        m.d.sync += label_data.eq(label_rd.data)
        return sample_rd, label_rd.addr, label_data

    def _signals(self, m, sample_rd, label_addr, label_data):
        """The run's flags, counters and addresses, shared by the parts below; drives
        ``busy``, ``i.ready`` and the count outputs from them."""
        n = self.n_samples
        s = SimpleNamespace(sample_rd=sample_rd, label_addr=label_addr, label_data=label_data)
        s.running = Signal(name="running")
        # Counters and addresses have no reset: ``start`` clears them, registered first (as
        # ``go``), so that their clear is one flip-flop's net, not the reset ORed with logic
        # (on the ECP5 that had been a LUT-fed 4.4 ns route). The results are read only once
        # ``done``.
        s.go = Signal(name="go")
        s.addr = Signal(range(n + 1), name="addr", reset_less=True)     # next sample to read
        s.more = Signal(name="more")                                    # addr < n
        s.seen = Signal(range(n + 1), name="seen", reset_less=True)     # results taken so far
        # ``correct`` and ``total`` never pass ``n``: counters that wide, not 32 bits, keep
        # their carry chains short.
        s.correct, s.total = (Signal(range(n + 1), name=name, reset_less=True)
                              for name in ("correct", "total"))
        s.cycles = Signal(32, name="cycles", reset_less=True)
        m.d.comb += [self.busy.eq(s.running), self.i.ready.eq(1), self.correct.eq(s.correct),
                     self.total.eq(s.total), self.cycles.eq(s.cycles)]
        s.valid = [Signal(name=f"sample_valid{k}") for k in range(self.sample_latency)]
        return s

    def _sample_reader(self, m, s):
        """The sample memory's read address and enable, and ``o``: the samples in order, with
        a valid flag per read stage."""
        # The read's output register is the stream's payload register: the read (every
        # stage of it) only moves when the pipeline takes the sample on ``o`` (or when ``o``
        # is empty), and a valid flag moves along with each stage.
        n, rd, valid, running, addr, more = (self.n_samples, s.sample_rd, s.valid, s.running,
                                             s.addr, s.more)
        m.d.comb += [
            rd.en.eq(~self.o.valid | self.o.ready),
            rd.addr.eq(addr if not self.idle_zero else Mux(running & more, addr, n)),
            self.o.payload.eq(rd.data),
            self.o.valid.eq(valid[-1]),
        ]
        with m.If(rd.en):
            m.d.sync += [valid[0].eq(running & more),
                         *(valid[k].eq(valid[k - 1]) for k in range(1, len(valid)))]
            with m.If(running & more):
                m.d.sync += [addr.eq(addr + 1), more.eq(addr != n - 1)]

    def _comparison(self, m, s):
        """The label read address, each result delayed to meet its label, and their
        registered comparison; returns ``take`` (a result taken now) and the registered
        ``hit``, ``take`` and ``last`` of the comparison."""
        # Results arrive in order, so result ``seen`` is compared with label ``seen``. A
        # result is delayed along while its label is read (``label_latency`` clocks: from
        # block RAM its read and a register, so that the memory's output, 5.6 ns on the
        # ECP5, does not go through the comparison), and the two are compared on the clock
        # after: no path from the pipeline's output into the label memory's address.
        take = Signal(name="take")
        m.d.comb += [take.eq(s.running & self.i.valid), s.label_addr.eq(s.seen)]
        q_take, q_last = take, take & (s.seen == self.n_samples - 1)
        q_cls = self.i.payload.cls
        for k in range(self.label_latency):
            r_take, r_last = Signal(name=f"take{k}"), Signal(name=f"last{k}")
            r_cls = Signal.like(self.i.payload.cls, name=f"cls{k}", reset_less=True)
            m.d.sync += [r_take.eq(q_take), r_last.eq(q_last), r_cls.eq(q_cls)]
            q_take, q_last, q_cls = r_take, r_last, r_cls
        # The comparison has its own register, so that its equality tree does not feed the
        # 32-bit counter's carry chain in the same clock (the iCE40 digits_lut top's
        # critical path, 19.3 ns).
        hit, c_take, c_last = Signal(), Signal(), Signal()
        m.d.sync += [hit.eq(q_take & (q_cls == s.label_data)), c_take.eq(q_take),
                     c_last.eq(q_last)]
        return take, hit, c_take, c_last

    def _result_counter(self, m, s, take, hit, c_take, c_last):
        """``seen``, ``total``, ``correct`` and ``cycles``, and the end of the run
        (``running`` low, ``done`` high) at the last result's comparison."""
        with m.If(take):
            m.d.sync += s.seen.eq(s.seen + 1)
        with m.If(c_take):
            m.d.sync += s.total.eq(s.total + 1)
            with m.If(c_last):
                m.d.sync += [s.running.eq(0), self.done.eq(1)]
        with m.If(hit):
            m.d.sync += s.correct.eq(s.correct + 1)
        with m.If(s.running):
            m.d.sync += s.cycles.eq(s.cycles + 1)

    def _control(self, m, s):
        """``go``, ``start`` registered, and the start of a run: ``running`` high, ``done``
        low, the counters, address and valid flags cleared."""
        m.d.sync += s.go.eq(self.start & ~s.running & ~s.go)
        with m.If(s.go):
            m.d.sync += [
                s.running.eq(1), self.done.eq(0), s.addr.eq(0), s.more.eq(1), s.seen.eq(0),
                s.correct.eq(0), s.total.eq(0), s.cycles.eq(0),
                *(v.eq(0) for v in s.valid),
            ]
