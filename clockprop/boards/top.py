"""The board top: the pipeline behind a framed UART link, with an on-chip self-test.

:class:`DeviceCore` is everything but the pins and the clocks, so it is what the simulator
runs (``sim.top_sim``); :class:`BoardTop` puts it on a board: PLL, UART pins, LEDs. On the
ECP5 boards the pipeline and the self-test run at the PLL's clock and the host link at the
board's oscillator (``link`` domain), so that only the pipeline has to meet the fast clock.

Requests the core answers (frame types of :mod:`clockprop.core.protocol`):

* ``PING`` -> ``PONG`` with the same payload (up to ``max_payload`` bytes);
* ``SAMPLE`` (bit-packed activations) -> ``RESULT`` (class u8, then bit-packed logits);
* ``SELFTEST`` (empty) -> ``SELFTEST_RESULT`` (correct, total, cycles; u32 each), after
  replaying the stored test split through the pipeline at one sample per clock;
* anything else -> ``ERROR`` with an :class:`~clockprop.core.protocol.ErrorCode`; a frame that
  fails its CRC is dropped by :class:`~clockprop.hw.framing.FrameRx` and answered with
  ``ERROR(CRC)`` so that the host resends it.
"""

from types import SimpleNamespace

from amaranth.build import ResourceError
from amaranth.hdl import Cat, Const, DomainRenamer, Elaboratable, Module, Mux, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..hw.folded import FoldedDenseLayer
from ..hw.framing import FrameRx, FrameTx
from ..hw.pipeline import Pipeline
from ..hw.selftest import SelfTest
from ..hw.uart import UARTRx, UARTTx
from ..core.protocol import ErrorCode, FrameType, SelfTestResult

__all__ = ["DeviceCore", "BoardShell", "BoardTop", "connect_board", "sample_bytes",
           "result_bytes"]


def sample_bytes(model):
    """Payload bytes of a ``SAMPLE`` frame for ``model``."""
    return (model.n_inputs * model.fmt.act_bits + 7) // 8


def logit_bits(model):
    return model.acc_widths()[-1]


def result_bytes(model):
    """Payload bytes of a ``RESULT`` frame for ``model``."""
    return 1 + (model.n_classes * logit_bits(model) + 7) // 8


# Registers on the samples' way into an unfolded pipeline (DeviceCore's ``crossing``), and
# whether the host link runs on the board's own oscillator, apart from the pipeline's clock
# (DeviceCore's ``link_domain``), per family: on the ECP5 a big pipelined model fills the
# device and its clock is set by what has to cross it; on the iCE40 the registers would fill
# the logic cells, and the UP5K's timing was measured with one clock.
CROSSING = {"ice40": 0, "ecp5": 2}
LINK_CLOCK = {"ice40": False, "ecp5": True}


class DeviceCore(wiring.Component):
    """Pipeline + self-test + framed UART: the platform-free part of a board top.

    Parameters
    ----------
    model : IntModel
        The integer model to run.
    divisor : int
        UART clocks per bit (``clk_freq // baud``).
    register_every, fold :
        Passed to :class:`~clockprop.hw.pipeline.Pipeline`.
    selftest : tuple (samples, labels) or None
        The test split to store on chip for ``SELFTEST``; ``None`` leaves the self-test out
        (``SELFTEST`` is then answered with ``ERROR(UNKNOWN_TYPE)``).
    crossing : int
        Plain registers on both samples' paths into an unfolded (always ready) pipeline, the
        host's and the self-test's, with their valid flags (:data:`CROSSING`: 2 on the ECP5,
        where the link, the block RAM and the first layer of a big model lie far apart).
    link_domain : str or None
        Clock domain of the host link: UART, frame receiver and transmitter, the request
        state machine and its registers (:data:`LINK_CLOCK`: on the ECP5 the board's
        oscillator, so that none of it has to run at the pipeline's clock). ``None`` runs
        it in ``sync`` with the pipeline. Between two domains each event (a sample or a
        self-test asked for; a result or the self-test's end) crosses as a toggle through a
        two-stage synchroniser, a clock after the data that go with it, which stay still
        until it has been answered: the request's sample until its result comes back, the
        result and the self-test's counts until the next request. ``divisor`` counts clocks
        of this domain.
    max_payload : int
        Longest ``PING`` payload echoed (and the receive buffer depth, at least a sample).
    selftest_storage : ``"block"`` or ``"logic"``
        Where the self-test keeps its split (:class:`~clockprop.hw.selftest.SelfTest`).
    logit_memory : bool
        The argmax's logits wait in block RAM (:class:`~clockprop.hw.pipeline.Pipeline`;
        :func:`~clockprop.boards.fit.logit_memory` says when).

    Members
    -------
    rx : ``In(1, init=1)``;  tx : ``Out(1, init=1)``   -- the serial line (8N1)

    The pipeline runs between an input register (left out when the first layer is folded:
    it holds its input itself) and an output register, so a sample's latency is
    ``self.latency = pipeline.latency + 2`` clocks (``+ 1`` without the input register,
    ``+ crossing + 1`` when an unfolded pipeline's samples cross to it);
    the self-test streams one sample every ``self.interval`` clocks (1 unless folded).
    last_class : ``Out(8)``                            -- class of the last ``RESULT``
    activity : ``Out(1)``                              -- high while a request is handled
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    last_class: Out(8)
    activity: Out(1)

    def __init__(self, model, *, divisor, register_every=0, fold=None, selftest=None,
                 max_payload=64, crossing=0, link_domain=None, selftest_storage="block",
                 logit_memory=False):
        self.model = model
        self.divisor = divisor
        self.crossing = crossing
        self.link_domain = link_domain
        self.pipeline = Pipeline(model, register_every=register_every, fold=fold,
                                 logit_memory=logit_memory)
        # A folded first layer holds its input in a register of its own already.
        self.input_register = not isinstance(self.pipeline.layers[0], FoldedDenseLayer)
        self.interval = self.pipeline.interval
        # An unfolded pipeline is always ready (its output is always taken), so samples can
        # reach it through plain delay registers (``crossing``) as well as leave it.
        self.cross_in = self.crossing if self.interval == 1 else 0
        # ... and then the source multiplexer is registered once more before the input
        # register, which fans out across the device to the first layer's copies.
        self.latency = (self.pipeline.latency + 1 + self.input_register +
                        (self.cross_in + 1 if self.cross_in else 0))
        self.sample_bytes = sample_bytes(model)
        self.result_bytes = result_bytes(model)
        self.max_payload = max(max_payload, self.sample_bytes)
        self.selftest = None
        if selftest is not None:
            samples, labels = selftest
            self.selftest = SelfTest(samples, labels, act_bits=model.fmt.act_bits,
                                     n_classes=model.n_classes,
                                     logit_shape=self.pipeline.logit_shape,
                                     storage=selftest_storage)
        super().__init__()

    # -- elaboration: the link, the sample and answer registers, the pipeline's input, the
    # -- answer path and the request state machine, in that order (one namespace ``r``) --

    def elaborate(self, platform):
        m = Module()
        # The host link's logic runs in ``ld``; the pipeline and the self-test in ``sync``.
        ld = self.link_domain or "sync"
        r = SimpleNamespace(ld=ld)
        self._link(m, r)
        self._registers(m, r)
        self._pipeline_input(m, r)
        self._source(m, r)
        self._answer_path(m, r)
        self._request_fsm(m, r)
        return m

    def _event(self, m, pulse, name, src, dst):
        """A one-clock ``pulse`` in ``src``, as a one-clock pulse in ``dst``: a toggle,
        flipped a clock after the pulse (so the data that go with it are still a clock
        before it moves) and synchronised by two flip-flops. Within one domain, the pulse
        itself."""
        if src == dst:
            return pulse
        was, toggle = Signal(name=f"{name}_pulse"), Signal(name=f"{name}_toggle")
        m.d[src] += [was.eq(pulse), toggle.eq(toggle ^ was)]
        synced, seen = Signal(name=f"{name}_synced"), Signal(name=f"{name}_seen")
        m.submodules[f"{name}_sync"] = FFSynchronizer(toggle, synced, o_domain=dst)
        m.d[dst] += seen.eq(synced)
        return synced ^ seen

    def _crossed(self, m, value, name, *, data=True, stages=None):
        """``value`` through ``stages`` plain registers (no enable, no reset, no logic) on
        its way into the pipeline: on the ECP5-85F the link, the block RAM and the first
        layer lie far apart (one route across took 7 ns)."""
        for k in range(self.crossing if stages is None else stages):
            reg = Signal.like(value, name=f"{name}_x{k}", reset_less=data)
            m.d.sync += reg.eq(value)
            value = reg
        return value

    def _link(self, m, r):
        """UART and frame receiver/transmitter, in the link's domain."""
        def on_link(component):
            return DomainRenamer({"sync": r.ld})(component) if self.link_domain else component

        m.submodules.uart_rx = uart_rx = on_link(UARTRx(self.divisor))
        m.submodules.uart_tx = uart_tx = on_link(UARTTx(self.divisor))
        m.submodules.frame_rx = frame_rx = on_link(FrameRx(self.max_payload,
                                                           timeout=40 * self.divisor))
        m.submodules.frame_tx = frame_tx = on_link(FrameTx())
        m.submodules.pipeline = r.pipe = self.pipeline
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.o, frame_rx.i)
        wiring.connect(m, frame_tx.o, uart_tx.i)
        r.frame_rx, r.frame_tx = frame_rx, frame_tx

    def _registers(self, m, r):
        """The received sample, the answer's registers and counters, the pending error."""
        ld, frame_rx = r.ld, r.frame_rx
        r.n_in_bits = self.model.n_inputs * self.model.fmt.act_bits
        # Data registers have no reset (hw.arith.data_register): the flags that say what they
        # hold do. On the ECP5 the reset net had reached the answer and sample registers
        # across the device (9.9 ns).
        sample = Signal(8 * self.sample_bytes, reset_less=True)
        # A received byte is written into ``sample`` at its place, a clock after the frame
        # receiver offers it, under a one-hot pointer: each byte's enable is one LUT, not one
        # net from the state machines to every bit of the sample (on the ECP5 that enable had
        # become an 8.7 ns path).
        rx_take = Signal(reset_less=True)
        rx_byte = Signal(8, reset_less=True)
        rx_at = Signal(self.sample_bytes, reset_less=True)
        m.d[ld] += rx_take.eq(0)
        with m.If(rx_take):
            m.d[ld] += rx_at.eq(rx_at.rotate_left(1))
        for k in range(self.sample_bytes):
            with m.If(rx_take & rx_at[k]):
                m.d[ld] += sample.word_select(k, 8).eq(rx_byte)
        out_bytes = max(self.result_bytes, SelfTestResult.SIZE)
        # The answer's payload, sent LSB byte first: byte ``out_index`` is read out rather than
        # shifted down, so that only ANSWER enables this wide register (on the ECP5 a
        # shift enable from the transmit logic had to reach it across the device).
        out = Signal(8 * out_bytes, reset_less=True)
        out_index = Signal(range(out_bytes), reset_less=True)
        out_type = Signal(8, reset_less=True)
        out_len = Signal(16, reset_less=True)
        out_empty = Signal(reset_less=True)    # out_len == 0
        # Bytes still to move after this one, minus one: its sign bit says this byte is the
        # last, with no comparison between the counter and the state machine. No frame is
        # longer than ``max_payload`` (the receiver drops longer ones) or the answer, so the
        # counter (a carry chain into the state machine) is no wider than that.
        left = Signal(range(-2, max(self.max_payload, out_bytes)), reset_less=True)
        last = left[-1]

        pending = Signal(8, reset_less=True)   # error code to report when idle
        has_pending = Signal()                 # pending != 0

        # A frame cut short (timeout) was corrupted on the way too: ask for it again. The
        # receiver's strobes are registered first: no path from its state machine into this.
        bad_crc, bad_length = Signal(), Signal()
        m.d[ld] += [bad_crc.eq(frame_rx.crc_error | frame_rx.timeout_error),
                    bad_length.eq(frame_rx.length_error)]
        with m.If(bad_crc):
            m.d[ld] += [pending.eq(ErrorCode.CRC), has_pending.eq(1)]
        with m.If(bad_length):
            m.d[ld] += [pending.eq(ErrorCode.LENGTH), has_pending.eq(1)]
        r.__dict__.update(sample=sample, rx_take=rx_take, rx_byte=rx_byte, rx_at=rx_at,
                          out=out, out_index=out_index, out_type=out_type, out_len=out_len,
                          out_empty=out_empty, left=left, last=last, pending=pending,
                          has_pending=has_pending)

    def _pipeline_input(self, m, r):
        """The input register, the result register and the self-test around the pipeline.

        The pipeline serves either the host's samples or the self-test, between an input
        register (so that neither the request FSM nor the sample memory sits on the path
        into the first adder tree) and an output register (so that the argmax does not
        drive the answer mux or the self-test counters). Results are always taken at once
        (only one host sample is ever in flight, and the self-test takes one result per
        clock), so the pipeline never stalls on its output. A folded pipeline takes a
        sample every ``interval`` clocks: the input register then waits for ``i.ready``.
        """
        pipe = r.pipe
        st_request = Signal()                  # the state machine asks for a self-test run
        issue_request = Signal()               # ... or has received a sample
        issued = Signal()                      # the host's sample waits for the pipeline
        m.d.comb += pipe.o.ready.eq(1)
        src_valid = Signal()
        src_ready = Signal()
        src_payload = Signal.like(pipe.i.payload)
        if self.input_register:
            in_reg = Signal.like(pipe.i.payload, reset_less=True)     # data: no reset
            m.d.comb += [src_ready.eq(~pipe.i.valid | pipe.i.ready), pipe.i.payload.eq(in_reg)]
            with m.If(src_ready):
                m.d.sync += [pipe.i.valid.eq(src_valid), in_reg.eq(src_payload)]
        else:
            m.d.comb += [pipe.i.valid.eq(src_valid), pipe.i.payload.eq(src_payload),
                         src_ready.eq(pipe.i.ready)]
        # ``res`` holds the last valid result (only one host sample is ever in flight), so
        # the answer can be formed from it a clock or more after ``res_valid``.
        res_valid = Signal()
        res = Signal.like(pipe.o.payload, reset_less=True)
        m.d.sync += res_valid.eq(pipe.o.valid)
        with m.If(pipe.o.valid):
            m.d.sync += res.eq(pipe.o.payload)
        # The self-test offers samples only while it runs, and it runs only while the request
        # state machine waits for it: its own ``o.valid`` picks the source, so no signal of
        # that state machine (which sits by the UART) reaches the pipeline's input.
        st_active, st_sample = Const(0), Const(0)
        if self.selftest is not None:
            m.submodules.selftest = st = self.selftest
            m.d.comb += [st.o.ready.eq(src_ready), st.i.payload.eq(res),
                         st.i.valid.eq(res_valid)]       # counted only while it runs
            st_active, st_sample = st.o.valid, st.o.payload
        # The request FSM never waits on the pipeline's ready (a combinational path through
        # every folded layer's counter): the sample is offered until taken.
        with m.If(self._event(m, issue_request, "issue", r.ld, "sync")):
            m.d.sync += issued.eq(1)
        with m.Elif(issued & (src_ready | bool(self.cross_in))):
            m.d.sync += issued.eq(0)
        r.__dict__.update(st_request=st_request, issue_request=issue_request, issued=issued,
                          src_valid=src_valid, src_payload=src_payload, res_valid=res_valid,
                          res=res, st_active=st_active, st_sample=st_sample)

    def _source(self, m, r):
        """What the input register takes: the host's sample or the self-test's."""
        st = self.selftest
        n_in_bits, issued = r.n_in_bits, r.issued
        host_valid, host_sample = issued, r.sample[:n_in_bits]
        st_active, st_sample = r.st_active, r.st_sample
        or_sources = (self.cross_in >= 2 and self.selftest is not None and
                      self.selftest.idle_zero)
        if self.cross_in:
            # Both sources cross to the input register: the host's sample (from the link's
            # logic) and the self-test's (from its memory: block RAM's 5.6 ns clock-to-out on
            # the ECP5 left little of a clock for the multiplexer and the route).
            host_valid = self._crossed(m, issued, "issued", data=False, stages=self.cross_in)
            if or_sources:
                # Each source is 0 while it has no sample, so the input register takes
                # their OR, with no multiplexer (its select, one net to every sample bit,
                # was late on the ECP5-85F): the self-test's by its ROM's zero word, the
                # host's by a clear of its last crossing register under a copy of "not
                # issued" per 32 bits (a flip-flop on its bits' reset, no LUT between).
                early = self._crossed(m, host_sample, "sample", stages=self.cross_in - 1)
                idle_src = self._crossed(m, issued, "issued_pre", data=False,
                                         stages=self.cross_in - 2)
                chunks = []
                for k in range(0, n_in_bits, 32):
                    # no reset: the reset net was the late route to these on the ECP5
                    idle = Signal(name=f"copy_host_idle{k // 32}", init=1, reset_less=True)
                    part = Signal(len(early[k:k + 32]), name=f"sample_last{k // 32}",
                                  reset_less=True)
                    m.d.sync += [idle.eq(~idle_src), part.eq(Mux(idle, 0, early[k:k + 32]))]
                    chunks.append(part)
                host_sample = Cat(*chunks)
            else:
                host_sample = self._crossed(m, host_sample, "sample", stages=self.cross_in)
            if self.selftest is not None:
                st_active = self._crossed(m, st.o.valid, "st_valid", data=False,
                                          stages=self.cross_in)
                st_sample = self._crossed(m, st.o.payload, "st_sample", stages=self.cross_in)
        picked_valid, picked = host_valid | st_active, Mux(st_active, st_sample, host_sample)
        if or_sources:
            picked = st_sample.as_value() | host_sample
        elif self.cross_in and self.selftest is not None:
            # The multiplexer's select, copied once per 32 sample bits: one flip-flop
            # driving all of them was a 7.7 ns route on the ECP5-85F.
            st_prev = self._crossed(m, st.o.valid, "st_valid_pre", data=False,
                                    stages=self.cross_in - 1)
            chunks = []
            for k in range(0, n_in_bits, 32):
                sel = Signal(name=f"copy_st_active{k // 32}")
                m.d.sync += sel.eq(st_prev)
                chunks.append(Mux(sel, st_sample[k:k + 32], host_sample[k:k + 32]))
            picked = Cat(*chunks)
        if self.cross_in:
            picked_valid = self._crossed(m, picked_valid, "src_valid", data=False, stages=1)
            picked = self._crossed(m, picked, "src_payload", stages=1)
        m.d.comb += [r.src_valid.eq(picked_valid), r.src_payload.eq(picked)]

    def _answer_path(self, m, r):
        """The answer's flags and payloads, the events from the pipeline's domain, and the
        one-byte register into the frame transmitter."""
        ld, res, frame_tx = r.ld, r.res, r.frame_tx
        # Every answer is loaded in one state, ANSWER, and the state before it says which: the
        # ``ans_*`` flags are that state, registered every clock (one flip-flop each with
        # one-hot state encoding, and no clock enable), so the answer registers' enable is one
        # state decode and their data a two-level AND-OR, however many states answer.
        r.ans_pong, r.ans_result, r.ans_selftest = (
            Signal(name=f"ans_{n}") for n in ("pong", "result", "selftest"))
        r.ans_error = ~(r.ans_pong | r.ans_result | r.ans_selftest)
        r.error_code = Signal(8, reset_less=True, name="error_code")
        # The result and the self-test's counts are read by the link's logic while they
        # stand still: only the answered request's result, or the finished run's counts.
        r.result_payload = Cat(res.cls, Const(0, 8 - len(res.cls)), res.logits)
        # Each result is an event: while the self-test runs they come every clock, but the
        # request state machine listens for one only while it waits for the host's.
        r.res_ready = self._event(m, r.res_valid, "result", "sync", ld)
        r.selftest_payload = Const(0, 1)
        r.st_done = None
        if self.selftest is not None:                  # the rise of ``done``: this run's end
            st = self.selftest
            r.selftest_payload = Cat(st.correct, st.total, st.cycles)
            # The rise registered: ``done`` comes from across the chip, and the request
            # state machine's next state should not wait for its route and a LUT after it.
            done_was, rise = Signal(), Signal()
            m.d.sync += [done_was.eq(st.done), rise.eq(st.done & ~done_was)]
            r.st_done = self._event(m, rise, "st_done", "sync", ld)
            m.d.comb += st.start.eq(self._event(m, r.st_request, "st_start", ld, "sync"))
        r.h_len = Signal(16, reset_less=True, name="h_len")
        m.d.comb += [frame_tx.header.payload.type.eq(r.out_type),
                     frame_tx.header.payload.length.eq(r.out_len)]

        # Payload bytes reach the frame transmitter through a one-byte register that is only
        # refilled once empty: half its rate (far above the line's), and no path from its
        # state machine through this one.
        r.tx_valid = Signal(name="tx_valid")
        r.tx_byte = Signal(8, reset_less=True, name="tx_byte")
        # Byte ``out_index`` of the answer, read out a clock ahead: the wide multiplexer is not
        # on the path into ``tx_byte`` with the state machine's enable. The index moves only
        # when a byte is sent, and the next is sent at least two clocks later.
        r.out_byte = Signal(8, reset_less=True, name="out_byte")
        m.d[ld] += r.out_byte.eq(r.out.word_select(r.out_index, 8))
        m.d.comb += [frame_tx.i.valid.eq(r.tx_valid), frame_tx.i.payload.eq(r.tx_byte)]
        with m.If(frame_tx.i.ready):
            m.d[ld] += r.tx_valid.eq(0)

    def _request_fsm(self, m, r):
        """The request state machine: receive and decode, then answer."""
        # The request, decoded into flags as its header is taken.
        r.req_sample, r.req_ping, r.req_selftest, r.req_known, r.req_empty = (
            Signal(name=f"req_{n}") for n in ("sample", "ping", "selftest", "known", "empty"))
        with m.FSM(domain=r.ld) as fsm:
            self._receive_states(m, r)
            self._answer_states(m, r)
        m.d[r.ld] += [r.ans_pong.eq(fsm.ongoing("DECODE") & r.req_ping),
                      r.ans_result.eq(fsm.ongoing("WAIT")),
                      r.ans_selftest.eq(fsm.ongoing("SELFTEST_WAIT"))]

    @staticmethod
    def _count_from(m, r, length):
        m.d[r.ld] += r.left.eq(length - 2)

    @staticmethod
    def _count_down(m, r):
        m.d[r.ld] += r.left.eq(r.left - 1)

    @staticmethod
    def _answer(m, r, code=None):
        if code is not None:
            m.d[r.ld] += r.error_code.eq(code)
        m.next = "ANSWER"

    def _receive_states(self, m, r):
        """IDLE, DECODE, LOAD, ISSUE, WAIT, DRAIN, SELFTEST, SELFTEST_WAIT."""
        ld, frame_rx = r.ld, r.frame_rx
        has_selftest = self.selftest is not None
        with m.State("IDLE"):
            m.d.comb += frame_rx.header.ready.eq(1)
            hp = frame_rx.header.payload
            # The header's registers load on every idle clock, the last time with the
            # header: they are read only after it, and the handshake stays out of their
            # enables.
            is_selftest = Const(has_selftest) & (hp.type == FrameType.SELFTEST)
            self._count_from(m, r, hp.length)
            m.d[ld] += [
                r.h_len.eq(hp.length),
                r.req_sample.eq((hp.type == FrameType.SAMPLE) &
                                (hp.length == self.sample_bytes)),
                r.req_ping.eq(hp.type == FrameType.PING),
                r.req_selftest.eq(is_selftest & (hp.length == 0)),
                r.req_known.eq((hp.type == FrameType.SAMPLE) | is_selftest),
                r.req_empty.eq(hp.length == 0),
            ]
            with m.If(frame_rx.header.valid):
                m.next = "DECODE"
            with m.Elif(r.has_pending):
                m.d[ld] += r.has_pending.eq(0)
                self._answer(m, r, r.pending)

        # Acted on a clock after the frame receiver's header, from registered flags: no
        # path from its state machine through this one.
        with m.State("DECODE"):
            with m.If(r.req_sample):
                m.d[ld] += r.rx_at.eq(1)
                m.next = "LOAD"
            with m.Elif(r.req_ping):
                self._answer(m, r)
            with m.Elif(r.req_selftest):
                m.next = "SELFTEST"
            with m.Else():
                m.d[ld] += r.error_code.eq(Mux(r.req_known, ErrorCode.LENGTH,
                                               ErrorCode.UNKNOWN_TYPE))
                with m.If(r.req_empty):
                    self._answer(m, r)
                with m.Else():
                    m.next = "DRAIN"

        with m.State("LOAD"):
            m.d.comb += [frame_rx.o.ready.eq(1), self.activity.eq(1)]
            with m.If(frame_rx.o.valid):
                m.d[ld] += [r.rx_take.eq(1), r.rx_byte.eq(frame_rx.o.payload)]
                self._count_down(m, r)
                with m.If(r.last):
                    m.next = "ISSUE"

        with m.State("ISSUE"):
            m.d.comb += [self.activity.eq(1), r.issue_request.eq(1)]
            m.next = "WAIT"

        with m.State("WAIT"):
            m.d.comb += self.activity.eq(1)
            with m.If(r.res_ready):
                self._answer(m, r)

        with m.State("DRAIN"):
            m.d.comb += frame_rx.o.ready.eq(1)
            with m.If(frame_rx.o.valid):
                self._count_down(m, r)
                with m.If(r.last):
                    self._answer(m, r)

        with m.State("SELFTEST"):
            m.d.comb += self.activity.eq(1)
            m.d.comb += r.st_request.eq(1)
            m.next = "SELFTEST_WAIT"

        with m.State("SELFTEST_WAIT"):
            m.d.comb += self.activity.eq(1)
            if self.selftest is not None:
                with m.If(r.st_done):
                    self._answer(m, r)

    def _answer_states(self, m, r):
        """ANSWER (loads the answer registers), SEND_HEADER, SEND and ECHO."""
        ld, frame_rx, frame_tx = r.ld, r.frame_rx, r.frame_tx

        def one_hot(*terms):
            value = 0
            for sel, term in terms:
                value = value | Mux(sel, term, 0)
            return value

        with m.State("ANSWER"):
            m.d[ld] += [
                r.out_type.eq(one_hot((r.ans_error, FrameType.ERROR),
                                      (r.ans_pong, FrameType.PONG),
                                      (r.ans_result, FrameType.RESULT),
                                      (r.ans_selftest, FrameType.SELFTEST_RESULT))),
                r.out_len.eq(one_hot((r.ans_error, 1), (r.ans_pong, r.h_len),
                                     (r.ans_result, self.result_bytes),
                                     (r.ans_selftest, SelfTestResult.SIZE))),
                r.out.eq(one_hot((r.ans_error, r.error_code), (r.ans_result, r.result_payload),
                                 (r.ans_selftest, r.selftest_payload))),
            ]
            m.d[ld] += [r.out_empty.eq(r.ans_pong & (r.h_len == 0)), r.out_index.eq(0)]
            with m.If(r.ans_result):
                m.d[ld] += self.last_class.eq(r.result_payload[:len(r.res.cls)])
            m.next = "SEND_HEADER"

        with m.State("SEND_HEADER"):
            m.d.comb += frame_tx.header.valid.eq(1)
            self._count_from(m, r, r.out_len)          # on every clock, as in IDLE
            with m.If(frame_tx.header.ready):
                with m.If(r.out_empty):
                    m.next = "IDLE"
                with m.Elif(r.out_type == FrameType.PONG):
                    m.next = "ECHO"
                with m.Else():
                    m.next = "SEND"

        with m.State("SEND"):
            with m.If(~r.tx_valid):
                m.d[ld] += [r.tx_byte.eq(r.out_byte), r.tx_valid.eq(1),
                            r.out_index.eq(r.out_index + 1)]
                self._count_down(m, r)
                with m.If(r.last):
                    m.next = "IDLE"

        with m.State("ECHO"):
            m.d.comb += frame_rx.o.ready.eq(~r.tx_valid)
            with m.If(~r.tx_valid & frame_rx.o.valid):
                m.d[ld] += [r.tx_byte.eq(frame_rx.o.payload), r.tx_valid.eq(1)]
                self._count_down(m, r)
                with m.If(r.last):
                    m.next = "IDLE"


class BoardShell(Elaboratable):
    """Puts a platform-free core on a board: the ``sync`` clock domain at ``freq`` (PLL), the
    UART pins and the LEDs. The three board tops (classifier, recurrent, training) are this
    with their own core.

    A subclass implements :meth:`make_core` and may override :meth:`clock_domain`. The core
    has the members ``rx``, ``tx``, ``activity`` and the one named by ``leds``.

    Parameters
    ----------
    board : Board
        From :mod:`clockprop.boards.registry`.
    freq : float
        Requested clock in Hz (the PLL gets as close as it can: ``self.freq`` after
        elaboration, and ``self.core`` is the core then).
    baud : int
    """

    leds = "last_class"

    def __init__(self, board, *, freq, baud=115200):
        self.board = board
        self.requested_freq = freq
        self.baud = baud
        self.freq = None
        self.link_freq = None       # the UART's clock, when not ``sync``'s
        self.core = None

    def make_core(self, divisor):
        """The core, for a UART ``divisor`` (clocks per bit)."""
        raise NotImplementedError

    def clock_domain(self, m, platform):
        """Create the ``sync`` domain (and any other the core runs in, setting
        ``self.link_freq`` for a UART on a clock of its own); returns ``sync``'s frequency."""
        from .pll import clock_domain
        return clock_domain(m, self.board, platform, self.requested_freq)

    def elaborate(self, platform):
        from ..hw.uart import uart_divisor

        m = Module()
        self.freq = self.clock_domain(m, platform)
        self.core = core = self.make_core(uart_divisor(self.link_freq or self.freq, self.baud))
        m.submodules.core = core
        connect_board(m, platform, self.board, rx=core.rx, tx=core.tx,
                      leds=getattr(core, self.leds), activity=core.activity)
        return m


class BoardTop(BoardShell):
    """A :class:`DeviceCore` on a board: PLL to ``freq``, UART pins, LEDs for the class.

    Parameters
    ----------
    board, freq, baud :
        As :class:`BoardShell`.
    model : IntModel
    register_every : int
    fold : sequence of int, optional
    selftest : tuple (samples, labels) or None
    """

    def __init__(self, board, model, *, freq, baud=115200, register_every=0, fold=None,
                 selftest=None):
        super().__init__(board, freq=freq, baud=baud)
        self.model = model
        self.register_every = register_every
        self.fold = fold
        self.selftest = selftest

    def clock_domain(self, m, platform):
        from .pll import clock_domain
        # The host link on the board's oscillator where LINK_CLOCK says so, unless the
        # pipeline runs on that clock anyway.
        separate = (LINK_CLOCK[self.board.family] and
                    abs(self.requested_freq - self.board.clock_hz) >= 1)
        freq = clock_domain(m, self.board, platform, self.requested_freq,
                            link_domain="link" if separate else None)
        self.link_freq = self.board.clock_hz if separate else None
        return freq

    def make_core(self, divisor):
        from .fit import logit_memory, selftest_storage
        n = len(self.selftest[0]) if self.selftest is not None else 0
        return DeviceCore(self.model, divisor=divisor, register_every=self.register_every,
                          fold=self.fold, selftest=self.selftest,
                          crossing=CROSSING[self.board.family],
                          link_domain="link" if self.link_freq else None,
                          selftest_storage=selftest_storage(
                              self.model, self.board.family, self.board.capacity, n,
                              register_every=self.register_every, fold=self.fold),
                          logit_memory=logit_memory(
                              self.model, self.board.family, self.board.capacity,
                              register_every=self.register_every, fold=self.fold))


def connect_board(m, platform, board, *, rx, tx, leds, activity):
    """Wire a platform-free core to ``board``'s UART pins and LEDs (for every board top).

    ``rx`` (the core's input) and ``tx`` (its output) are its serial line; the low bits of
    ``leds`` light the LEDs (an RGB LED shows bits 0 to 2); ``activity`` lights the last of
    five or more LEDs (or the blue of an RGB LED) while the core handles a request.
    """
    from amaranth.build import Subsignal
    lines = platform.lookup("uart", 0).ios
    uart = platform.request("uart", 0, dir={sub.name: "-" for sub in lines
                                            if isinstance(sub, Subsignal)})
    m.submodules.uart_rx_buffer = rx_buf = io.Buffer("i", uart.rx)
    m.submodules.uart_tx_buffer = tx_buf = io.Buffer("o", uart.tx)
    m.d.comb += [rx.eq(rx_buf.i), tx_buf.o.eq(tx)]
    if board.leds == "rgb_led":
        rgb = platform.request("rgb_led", 0, dir={"r": "-", "g": "-", "b": "-"})
        for color, value in zip("rgb", [leds[0], leds[1], leds[2] | activity]):
            m.submodules[f"led_{color}"] = buf = io.Buffer("o", getattr(rgb, color))
            m.d.comb += buf.o.eq(value)
    else:
        ports = []
        for k in range(8):
            try:
                ports.append(platform.request("led", k, dir="-"))
            except ResourceError:      # fewer LEDs on this board
                break
        for k, port in enumerate(ports):
            m.submodules[f"led{k}"] = buf = io.Buffer("o", port)
            m.d.comb += buf.o.eq(activity if k == len(ports) - 1 and k >= 4 else leds[k])
    if board.name == "ulx3s":
        m.submodules.uart_tx_enable = buf = io.Buffer(
            "o", platform.request("uart_tx_enable", 0, dir="-"))
        m.d.comb += buf.o.eq(1)
