"""The training board top: a network that learns in the fabric, behind the framed UART link.

:class:`TrainDeviceCore` is everything but the pins and the clock (what the simulator runs,
``sim.train_top_sim``); :class:`TrainBoardTop` puts it on a board: PLL, UART pins, LEDs.

Requests (frame types of :mod:`clockprop.core.protocol`):

* ``PING`` -> ``PONG`` with the same payload;
* ``TRAIN`` (label, lr, activations) -> ``TRAIN_ACK``: one training step of the
  :class:`~clockprop.hw.update.TrainableNet`, every weight updated in the same clock; a label
  ``>= n_classes`` or an lr above the config's ``anneal`` is refused with ``ERROR(LABEL)`` /
  ``ERROR(LEARNING_RATE)`` and nothing changes;
* ``INFER`` (activations) -> ``RESULT`` (class, logits): the forward pass, no update;
* ``TRAIN_STORED`` (lr, count) -> ``TRAIN_ACK``: ``count`` steps over the training split
  stored on chip (block RAM), continuing where the last request stopped and wrapping
  around, at the unit's full rate (one sample every ``net.interval`` clocks);
* ``READ_WEIGHTS`` (first index) -> ``WEIGHTS``: up to ``WEIGHTS_CHUNK`` weights from it, as
  signed 16-bit integers, in the order of :meth:`IntTrainer.flat_weights`; the host compares
  them with its integer trainer (``clockprop train-onchip --port``);
* anything else -> ``ERROR``, as :class:`~clockprop.boards.top.DeviceCore`.
"""

import copy
from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Array, Cat, Const, Fragment, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..hw.framing import FrameRx, FrameTx
from ..hw.uart import UARTRx, UARTTx
from ..hw.update import TrainableNet
from ..core.errors import ClockpropError
from ..core.protocol import WEIGHTS_CHUNK, ErrorCode, FrameType, TrainAck
from .top import BoardShell

__all__ = ["TrainDeviceCore", "TrainBoardTop", "stored_order", "stored_split",
           "LUT_CALIBRATION"]

# What yosys made of two training tops over the tally above: 3974 / 3284 LUT4 (iCE40UP5K,
# ONCHIP_UP5K) and 96,459 / 78,853 LUT4 + 2 x CCU2C (ECP5-85F, the 30-hidden digits
# default), both about 1.21. nextpnr-ecp5 then packed the latter into 107,715 slices' LUTs,
# so on ECP5 the fit is tighter still.
LUT_CALIBRATION = 1.22

_TRAIN, _INFER, _READ, _STORED = range(4)          # ``kind``: the request being loaded


def stored_order(cfg, n):
    """The order in which the training split is stored on chip: the first permutation of
    :func:`models.inttrain.sample_order` (each ``TRAIN_STORED`` pass repeats it)."""
    from ..models.inttrain import sample_order
    return sample_order(cfg, n)[:n]


def stored_split(cfg, data, n):
    """The first ``n`` samples of ``data``'s training split in :func:`stored_order`, as the
    training top stores them: ``(activations, labels)``, or None for ``n == 0``."""
    if not n:
        return None
    idx = stored_order(cfg, len(data.x_train))[:n]
    return cfg.fmt.quantize_input(data.x_train)[idx], data.y_train[idx]


class TrainDeviceCore(wiring.Component):
    """:class:`~clockprop.hw.update.TrainableNet` + framed UART (+ a stored training split).

    Parameters
    ----------
    trainer : IntTrainer
        The network, its rule and its initial weights and LFSR state (copied: training the
        host's trainer afterwards does not change the gateware).
    divisor : int
        UART clocks per bit (``clk_freq // baud``).
    serial, fold :
        The bit-serial forward pass of :class:`TrainableNet` (far less logic), and its fold.
    stored : tuple (samples, labels) or None
        A training split to keep on chip for ``TRAIN_STORED`` (in this order); ``None``
        leaves it out (``TRAIN_STORED`` is answered with ``ERROR(UNKNOWN_TYPE)``).

    Members
    -------
    rx : ``In(1, init=1)``;  tx : ``Out(1, init=1)``   -- the serial line (8N1)
    last_class : ``Out(8)``                            -- class of the last sample
    activity : ``Out(1)``                              -- high while a request is handled

    A host ``TRAIN`` step moves ``8 + sample_bytes`` bytes to the board and 18 back (10 bits
    each on the line): the link, not the unit, sets its rate. ``TRAIN_STORED`` runs at the
    unit's rate, one sample every ``self.interval`` clocks. The read-back is one registered
    multiplexer over every weight, about half a LUT4 per weight bit (:meth:`estimate`).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    last_class: Out(8)
    activity: Out(1)

    def __init__(self, trainer, *, divisor, serial=True, fold=1, stored=None):
        self.trainer = trainer = copy.deepcopy(trainer)
        self.divisor = divisor
        self.n_in = trainer.shape[0]
        self.n_classes = trainer.n_classes
        self.act_bits = trainer.fmt.act_bits
        self.sample_bytes = (self.n_in * self.act_bits + 7) // 8
        self.request_bytes = self.sample_bytes + 2      # the longest request, TRAIN's
        self.n_weights = int(sum(mask.sum() for mask in trainer.masks))
        try:
            self._check_stored(stored)
            self.net = TrainableNet(trainer, serial=serial, fold=fold)
        except ClockpropError:
            self._MustUse__silence = True           # never elaborated: no "unused" warning
            raise
        self.interval = self.net.interval
        self.logit_width = self.net.logit_width
        self.result_bytes = 1 + (self.n_classes * self.logit_width + 7) // 8
        super().__init__()

    def estimate(self, capacity=None):
        """LUT4/FF/EBR of the whole top (an estimate): the unit's own tally
        (:meth:`TrainableNet.estimate`), the weight read-back multiplexer (half a LUT4 per
        weight bit: a 4:1 multiplexer per two LUT4s), the request buffer and the link
        (:data:`boards.fit.TOP_OVERHEAD`), LUT4s scaled by :data:`LUT_CALIBRATION`; block RAM
        for the frame buffer and the stored split."""
        from .fit import TOP_OVERHEAD, ebr_blocks
        Fragment.get(self, None)                    # elaborates the unit: its tally
        cost = self.net.cost
        wb = self.trainer.fmt.weight_bits
        tally = cost.lut + self.n_weights * wb // 2 + TOP_OVERHEAD["lut"]
        need = {"lut": round(LUT_CALIBRATION * tally),
                "ff": cost.ff + 8 * (self.sample_bytes + 2) + 16 + 64 + TOP_OVERHEAD["ff"],
                "dsp": 0, "ebr": 0}
        if capacity is not None:
            need["ebr"] = ebr_blocks(max(64, 2 + self.sample_bytes), 8, capacity)
            if self.stored is not None:
                bits = self.n_in * self.act_bits + len(self.net.i.payload.label)
                need["ebr"] += ebr_blocks(len(self.stored[0]), bits, capacity)
        return need

    def _check_stored(self, stored):
        trainer = self.trainer
        self.stored = None
        if stored is not None:
            a, y = np.asarray(stored[0], dtype=np.int64), np.asarray(stored[1], dtype=np.int64)
            if (a.ndim != 2 or a.shape[1] != self.n_in or y.shape != (len(a),) or
                    not 1 <= len(a) <= 0xFFFF):
                raise ClockpropError(f"the stored training split must be 1 to 65535 samples "
                                     f"of {self.n_in} inputs with a label each, got "
                                     f"{a.shape} and {y.shape}")
            if a.min() < 0 or a.max() > trainer.fmt.a_max or y.min() < 0 or \
                    y.max() >= self.n_classes:
                raise ClockpropError(f"the stored training split must have activations in "
                                     f"[0, {trainer.fmt.a_max}] and labels in "
                                     f"[0, {self.n_classes - 1}]")
            self.stored = (a, y)

    # -- elaboration: the link, the unit's feeds and counters, then the request state
    # -- machine; the helpers share the registers of :meth:`_signals` --

    def elaborate(self, platform):
        m = Module()
        s = self._signals()
        self._wire_link(m, s)
        self._latch_link_errors(m, s)
        self._feed_from_host(m, s)
        self._count_results(m, s)
        if self.stored is not None:
            self._feed_from_store(m, s)
        m.d.comb += [s.frame_tx.header.payload.type.eq(s.out_type),
                     s.frame_tx.header.payload.length.eq(s.out_len),
                     s.frame_tx.i.payload.eq(s.out[:8])]
        with m.FSM():
            self._idle_state(m, s)
            self._load_state(m, s)
            self._check_state(m, s)
            self._run_states(m, s)
            self._drain_state(m, s)
            self._send_states(m, s)
            self._read_back_states(m, s)
            self._echo_state(m, s)
        return m

    def _signals(self):
        """The frame cores, the unit and the registers more than one helper drives or reads,
        in one namespace."""
        s = SimpleNamespace()
        s.frame_rx = FrameRx(max(64, self.request_bytes), timeout=40 * self.divisor)
        s.frame_tx = FrameTx()
        s.net = self.net
        # byte k of an L-byte request sits at request_bytes - L + k
        s.buf = Signal(8 * self.request_bytes)
        s.req_label, s.req_lr = s.buf[0:8], s.buf[8:16]
        out_bytes = max(self.result_bytes, TrainAck.SIZE, 2)
        s.out = Signal(8 * out_bytes)               # answer payload, sent LSB byte first
        s.out_type = Signal(8)
        s.out_len = Signal(16)
        s.left = Signal(16)                         # bytes still to move, minus one
        s.pending = Signal(8)                       # error to report when idle (0: none)
        s.kind = Signal(range(4))
        s.steps = Signal(32)
        s.correct = Signal(32)
        s.label = Signal(8)                         # of the sample in the unit
        s.train = Signal()
        s.issued = Signal()                         # the host's sample waits for the unit
        s.from_store = Signal()
        s.done = Signal()                           # a result is taken this clock
        s.to_issue = Signal(16)
        s.to_take = Signal(16)
        s.store_lr = Signal(8)
        s.widx = Signal(range(max(2, self.n_weights)))
        s.wleft = Signal(range(WEIGHTS_CHUNK + 1))
        return s

    def _wire_link(self, m, s):
        """Adds the UART, the frame cores and the unit; drives the serial line through them."""
        m.submodules.uart_rx = uart_rx = UARTRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTx(self.divisor)
        m.submodules.frame_rx = s.frame_rx
        m.submodules.frame_tx = s.frame_tx
        m.submodules.net = s.net
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.o, s.frame_rx.i)
        wiring.connect(m, s.frame_tx.o, uart_tx.i)

    def _latch_link_errors(self, m, s):
        """Drives ``pending``: the error of a frame the receiver dropped."""
        with m.If(s.frame_rx.crc_error | s.frame_rx.timeout_error):
            m.d.sync += s.pending.eq(ErrorCode.CRC)
        with m.If(s.frame_rx.length_error):
            m.d.sync += s.pending.eq(ErrorCode.LENGTH)

    def _feed_from_host(self, m, s):
        """Drives the unit's input from the request buffer while ``issued`` (unless
        ``from_store``), and ``label`` from each sample the unit takes."""
        net = s.net
        x_bits = self.n_in * self.act_bits
        m.d.comb += net.o.ready.eq(1)
        with m.If(~s.from_store):
            m.d.comb += [net.i.valid.eq(s.issued), net.i.payload.x.eq(s.buf[16:16 + x_bits]),
                         net.i.payload.label.eq(s.req_label), net.i.payload.train.eq(s.train)]
            if net.lr_bits:
                m.d.comb += net.i.payload.lr.eq(s.req_lr)
        with m.If(net.i.valid & net.i.ready):
            m.d.sync += [s.issued.eq(0), s.label.eq(net.i.payload.label)]

    def _count_results(self, m, s):
        """Drives ``done``, ``last_class`` and the ``steps`` and ``correct`` counters from the
        unit's results."""
        m.d.comb += s.done.eq(s.net.o.valid)
        with m.If(s.done):
            m.d.sync += self.last_class.eq(s.net.o.payload.cls)
            with m.If(s.train):
                m.d.sync += s.steps.eq(s.steps + 1)
            with m.If(s.net.o.payload.cls == s.label):
                m.d.sync += s.correct.eq(s.correct + 1)

    def _feed_from_store(self, m, s):
        """Adds the stored split's memory; while ``from_store``, drives the unit's input from
        it and counts ``to_issue`` and ``to_take`` down."""
        net, a, y = s.net, *self.stored
        n = len(a)
        x_bits = self.n_in * self.act_bits
        words = [int(sum(int(v) << (k * self.act_bits) for k, v in enumerate(row)) |
                     (int(c) << x_bits)) for row, c in zip(a, y)]
        label_bits = len(net.i.payload.label)
        m.submodules.store = store = Memory(shape=x_bits + label_bits, depth=n, init=words)
        rd = store.read_port()
        ptr = Signal(range(n))
        fresh = Signal()                            # rd.data holds sample ``ptr``
        m.d.comb += [rd.addr.eq(ptr), rd.en.eq(1)]
        m.d.sync += fresh.eq(1)
        with m.If(s.from_store):
            m.d.comb += [net.i.valid.eq((s.to_issue != 0) & fresh),
                         net.i.payload.x.eq(rd.data[:x_bits]),
                         net.i.payload.label.eq(rd.data[x_bits:]),
                         net.i.payload.train.eq(1)]
            if net.lr_bits:
                m.d.comb += net.i.payload.lr.eq(s.store_lr)
            with m.If(net.i.valid & net.i.ready):
                m.d.sync += [s.to_issue.eq(s.to_issue - 1), fresh.eq(0),
                             ptr.eq(Mux(ptr == n - 1, 0, ptr + 1))]
            with m.If(s.done):
                m.d.sync += s.to_take.eq(s.to_take - 1)

    def _answer(self, m, s, type_, length, payload):
        """Drives the answer's ``out_type``, ``out_len`` and ``out``, and goes to send it."""
        m.d.sync += [s.out_type.eq(type_), s.out_len.eq(length), s.out.eq(payload)]
        m.next = "SEND_HEADER"

    def _fail(self, m, s, code):
        """Answers ``ERROR(code)``."""
        self._answer(m, s, FrameType.ERROR, 1, code)

    def _idle_state(self, m, s):
        """IDLE: takes a header and loads the request, answers a PING or refuses it; reports
        a ``pending`` error."""
        frame_rx = s.frame_rx
        with m.State("IDLE"):
            m.d.comb += frame_rx.header.ready.eq(1)
            with m.If(frame_rx.header.valid):
                h = frame_rx.header.payload
                m.d.sync += s.left.eq(h.length - 1)
                ok, known = self._classify_header(m, s, h)
                with m.If(ok):
                    m.next = "LOAD"
                with m.Elif(h.type == FrameType.PING):
                    self._answer(m, s, FrameType.PONG, h.length, 0)
                with m.Else():
                    m.d.sync += s.out.eq(Mux(known, ErrorCode.LENGTH, ErrorCode.UNKNOWN_TYPE))
                    with m.If(h.length == 0):
                        m.d.sync += [s.out_type.eq(FrameType.ERROR), s.out_len.eq(1)]
                        m.next = "SEND_HEADER"
                    with m.Else():
                        m.next = "DRAIN"
            with m.Elif(s.pending != 0):
                m.d.sync += s.pending.eq(0)
                self._fail(m, s, s.pending)

    def _classify_header(self, m, s, h):
        """Drives ``kind`` from header ``h``; returns whether it is a request to load
        (``ok``: known, of the right length) and whether its type is ``known``."""
        has_store = self.stored is not None
        ok = Signal()
        with m.Switch(h.type):
            with m.Case(FrameType.TRAIN):
                m.d.comb += ok.eq(h.length == self.request_bytes)
                m.d.sync += s.kind.eq(_TRAIN)
            with m.Case(FrameType.INFER):
                m.d.comb += ok.eq(h.length == self.sample_bytes)
                m.d.sync += s.kind.eq(_INFER)
            with m.Case(FrameType.READ_WEIGHTS):
                m.d.comb += ok.eq(h.length == 2)
                m.d.sync += s.kind.eq(_READ)
            with m.Case(FrameType.TRAIN_STORED):
                m.d.comb += ok.eq(Const(has_store) & (h.length == 3))
                m.d.sync += s.kind.eq(_STORED)
        known = Signal()
        m.d.comb += known.eq((h.type == FrameType.TRAIN) |
                             (h.type == FrameType.INFER) |
                             (h.type == FrameType.READ_WEIGHTS) |
                             Const(has_store) & (h.type == FrameType.TRAIN_STORED))
        return ok, known

    def _load_state(self, m, s):
        """LOAD: shifts the request's payload into ``buf``."""
        with m.State("LOAD"):
            m.d.comb += [s.frame_rx.o.ready.eq(1), self.activity.eq(1)]
            with m.If(s.frame_rx.o.valid):
                m.d.sync += [s.buf.eq(Cat(s.buf[8:], s.frame_rx.o.payload)),
                             s.left.eq(s.left - 1)]
                with m.If(s.left == 0):
                    m.next = "CHECK"

    def _check_state(self, m, s):
        """CHECK: refuses a loaded request with bad fields, or starts it: issues the host's
        sample, answers the read-back's header, or starts the stored run."""
        with m.State("CHECK"):
            m.d.comb += self.activity.eq(1)
            with m.Switch(s.kind):
                with m.Case(_TRAIN):
                    with m.If(s.req_label >= self.n_classes):
                        self._fail(m, s, ErrorCode.LABEL)
                    with m.Elif(s.req_lr > self.trainer.cfg.anneal):
                        self._fail(m, s, ErrorCode.LEARNING_RATE)
                    with m.Else():
                        m.d.sync += [s.issued.eq(1), s.train.eq(1), s.correct.eq(0)]
                        m.next = "WAIT"
                with m.Case(_INFER):
                    m.d.sync += [s.issued.eq(1), s.train.eq(0)]
                    m.next = "WAIT"
                with m.Case(_READ):
                    self._check_read_request(m, s)
                with m.Case(_STORED):
                    self._check_stored_request(m, s)

    def _check_read_request(self, m, s):
        """READ_WEIGHTS: drives ``widx`` and ``wleft`` from the first index, or refuses it."""
        R = self.request_bytes
        start = s.buf[8 * (R - 2):8 * R]
        with m.If(start >= self.n_weights):
            self._fail(m, s, ErrorCode.LENGTH)
        with m.Else():
            rest = self.n_weights - start
            count = Mux(rest > WEIGHTS_CHUNK, WEIGHTS_CHUNK, rest)
            m.d.sync += [s.widx.eq(start), s.wleft.eq(count)]
            self._answer(m, s, FrameType.WEIGHTS, 2 + 2 * count, start)

    def _check_stored_request(self, m, s):
        """TRAIN_STORED: drives the stored run's lr and counters from the request, or
        refuses it."""
        R = self.request_bytes
        lr, count = s.buf[8 * (R - 3):8 * (R - 2)], s.buf[8 * (R - 2):8 * R]
        with m.If(lr > self.trainer.cfg.anneal):
            self._fail(m, s, ErrorCode.LEARNING_RATE)
        with m.Elif(count == 0):
            self._fail(m, s, ErrorCode.LENGTH)
        with m.Else():
            m.d.sync += [s.store_lr.eq(lr), s.to_issue.eq(count),
                         s.to_take.eq(count), s.correct.eq(0), s.train.eq(1)]
            m.next = "STORED"

    def _run_states(self, m, s):
        """WAIT, STORED and ACK: the unit runs one sample (answered by its RESULT, or the ack
        of its step) or the stored split (its ack)."""
        with m.State("WAIT"):
            m.d.comb += self.activity.eq(1)
            with m.If(s.done):
                r = s.net.o.payload
                with m.If(s.train):
                    m.d.sync += s.correct.eq(r.cls == s.label)
                    m.next = "ACK"
                with m.Else():
                    self._answer(m, s, FrameType.RESULT, self.result_bytes,
                                 Cat(r.cls, Const(0, 8 - len(r.cls)), r.logits))

        with m.State("STORED"):
            m.d.comb += [self.activity.eq(1), s.from_store.eq(1)]
            with m.If(s.done & (s.to_take == 1)):
                m.next = "ACK"

        with m.State("ACK"):                        # counters settled: answer
            flags = s.net.error
            self._answer(m, s, FrameType.TRAIN_ACK, TrainAck.SIZE,
                         Cat(s.steps, s.correct, s.net.lfsr, self.last_class, flags,
                             Const(0, 7)))

    def _drain_state(self, m, s):
        """DRAIN: drops a refused request's payload, then sends the ERROR set in IDLE."""
        with m.State("DRAIN"):
            m.d.comb += s.frame_rx.o.ready.eq(1)
            with m.If(s.frame_rx.o.valid):
                m.d.sync += s.left.eq(s.left - 1)
                with m.If(s.left == 0):
                    m.d.sync += [s.out_type.eq(FrameType.ERROR), s.out_len.eq(1)]
                    m.next = "SEND_HEADER"

    def _send_states(self, m, s):
        """SEND_HEADER and SEND: the answer's header, then ``out``'s bytes (a PONG's and the
        weights' go on in ECHO and SEND_START)."""
        frame_tx = s.frame_tx
        with m.State("SEND_HEADER"):
            m.d.comb += frame_tx.header.valid.eq(1)
            with m.If(frame_tx.header.ready):
                m.d.sync += s.left.eq(s.out_len - 1)
                with m.If(s.out_len == 0):
                    m.next = "IDLE"
                with m.Elif(s.out_type == FrameType.PONG):
                    m.next = "ECHO"
                with m.Elif(s.out_type == FrameType.WEIGHTS):
                    m.d.sync += s.left.eq(1)
                    m.next = "SEND_START"
                with m.Else():
                    m.next = "SEND"

        with m.State("SEND"):
            m.d.comb += frame_tx.i.valid.eq(1)
            with m.If(frame_tx.i.ready):
                m.d.sync += [s.out.eq(s.out >> 8), s.left.eq(s.left - 1)]
                with m.If(s.left == 0):
                    m.next = "IDLE"

    def _read_back_states(self, m, s):
        """SEND_START to SEND_HI: the WEIGHTS payload, the first index and then ``wleft``
        weights from ``widx``, each through one registered multiplexer over every weight."""
        frame_tx = s.frame_tx
        flat = [s.net.weights[k] for k, present in
                enumerate(np.concatenate([mask.ravel() for mask in self.trainer.masks]))
                if present]
        word = Signal(16)

        with m.State("SEND_START"):                 # the first index, 2 bytes
            m.d.comb += frame_tx.i.valid.eq(1)
            with m.If(frame_tx.i.ready):
                m.d.sync += [s.out.eq(s.out >> 8), s.left.eq(s.left - 1)]
                with m.If(s.left == 0):
                    m.next = "FETCH"

        with m.State("FETCH"):
            m.d.sync += word.eq(Array(flat)[s.widx] if flat else 0)
            m.next = "SEND_LO"

        with m.State("SEND_LO"):
            m.d.comb += [frame_tx.i.valid.eq(1), frame_tx.i.payload.eq(word[:8])]
            with m.If(frame_tx.i.ready):
                m.next = "SEND_HI"

        with m.State("SEND_HI"):
            m.d.comb += [frame_tx.i.valid.eq(1), frame_tx.i.payload.eq(word[8:])]
            with m.If(frame_tx.i.ready):
                m.d.sync += [s.widx.eq(s.widx + 1), s.wleft.eq(s.wleft - 1)]
                with m.If(s.wleft == 1):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "FETCH"

    def _echo_state(self, m, s):
        """ECHO: a PING's payload from the receiver straight to the transmitter."""
        frame_rx, frame_tx = s.frame_rx, s.frame_tx
        with m.State("ECHO"):
            m.d.comb += [frame_tx.i.valid.eq(frame_rx.o.valid),
                         frame_tx.i.payload.eq(frame_rx.o.payload),
                         frame_rx.o.ready.eq(frame_tx.i.ready)]
            with m.If(frame_rx.o.valid & frame_tx.i.ready):
                m.d.sync += s.left.eq(s.left - 1)
                with m.If(s.left == 0):
                    m.next = "IDLE"


class TrainBoardTop(BoardShell):
    """A :class:`TrainDeviceCore` on a board: PLL to ``freq``, UART pins, LEDs (the last
    class, and activity).

    Parameters
    ----------
    board : Board
        From :mod:`clockprop.boards.registry`.
    trainer, serial, fold, stored :
        As :class:`TrainDeviceCore`.
    freq : float
        Requested clock in Hz (the PLL gets as close as it can: ``self.freq`` after
        elaboration).
    baud : int
    """

    def __init__(self, board, trainer, *, freq, baud=115200, serial=True, fold=1,
                 stored=None):
        super().__init__(board, freq=freq, baud=baud)
        self.trainer = copy.deepcopy(trainer)
        self.serial = serial
        self.fold = fold
        self.stored = stored

    def make_core(self, divisor):
        return TrainDeviceCore(self.trainer, divisor=divisor, serial=self.serial,
                               fold=self.fold, stored=self.stored)
