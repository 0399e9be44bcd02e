"""Gateware for the framed link protocol (see :mod:`clockprop.core.protocol`).

Frame, every multi-byte field little-endian::

    SYNC (0xA5) | TYPE (1) | LENGTH (2) | PAYLOAD (LENGTH bytes) | CRC-16/CCITT-FALSE (2)

Both cores split a frame into a *header* stream (one :class:`FrameHeader` per frame) and a
*payload* stream of exactly ``header.length`` bytes, so a receiver can be wired straight into
a transmitter (``connect(rx.header, tx.header)``, ``connect(rx.o, tx.i)``) to echo frames.
"""

from types import SimpleNamespace

from amaranth import Cat, Module, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SYNC", "CRC_INIT", "CRC_POLY", "FrameHeader", "crc16_byte", "FrameRx", "FrameTx"]

SYNC = 0xA5
CRC_INIT = 0xFFFF
CRC_POLY = 0x1021


class FrameHeader(data.Struct):
    type: 8
    length: 16


def _crc16_byte_matrix():
    """For each output bit of the byte-wise CRC update, the crc bits and data bits it XORs.

    The update is linear over GF(2), so running the bit-serial algorithm on sets of input bit
    names (XOR = symmetric difference) gives the flat XOR network.
    """
    state = [{("c", k)} for k in range(16)]
    for k in range(8):
        state[8 + k] = state[8 + k] ^ {("d", k)}
    for _ in range(8):
        top = state[15]
        state = [set()] + state[:15]
        for k in range(16):
            if (CRC_POLY >> k) & 1:
                state[k] = state[k] ^ top
    return [sorted(terms) for terms in state]


_CRC16_BYTE_MATRIX = _crc16_byte_matrix()


def crc16_byte(crc, byte):
    """CRC-16/CCITT-FALSE after one more ``byte``: a 16-bit combinational value, a flat XOR
    network (at most 12 inputs per output bit).

    Mirrors :func:`clockprop.core.protocol.crc16` one byte at a time (MSB first, no reflection).
    """
    crc, byte = Value.cast(crc), Value.cast(byte)
    bits = []
    for terms in _CRC16_BYTE_MATRIX:
        sources = Cat(*(crc[k] if kind == "c" else byte[k] for kind, k in terms))
        bits.append(sources.xor())
    return Cat(*bits)


def _check_length(name, value, maximum):
    if not isinstance(value, int) or not 1 <= value <= maximum:
        raise TypeError(f"{name} must be an integer in 1..{maximum}, not {value!r}")


class FrameRx(wiring.Component):
    """Frame receiver: checks the CRC before it releases anything.

    The payload is written into a ``max_length``-byte :class:`~amaranth.lib.memory.Memory` as
    it arrives. Only when the CRC matches is the header offered on ``header`` and then the
    payload read back onto ``o``; a frame with a bad CRC is dropped whole and never appears
    on the outputs. While a frame is handed out, ``i.ready`` is low (the byte source must
    hold, or, like a UART, be quiet: the host waits for the answer to each frame).

    Parameters
    ----------
    max_length : int
        Longest payload accepted (1..65535); sets the buffer depth. A frame announcing more
        is dropped with a ``length_error`` strobe and the receiver hunts for SYNC again.
    timeout : int or None
        When not ``None``: cycles without an input byte after which a partly received frame
        is abandoned (``timeout_error`` strobe), so a truncated frame cannot swallow the next.
        Behind a UART it must exceed one character time (``10 * divisor``).

    Members
    -------
    i : In(stream.Signature(8))
        Link bytes. Taken one per cycle while receiving; garbage before SYNC is skipped.
    header : Out(stream.Signature(FrameHeader))
        One beat per good frame, offered two cycles after its last CRC byte is taken.
    o : Out(stream.Signature(8))
        Then exactly ``header.length`` payload bytes, one per cycle while ``o.ready``.
    crc_error, length_error, timeout_error : Out(1)
        One-cycle strobes for a dropped frame.

    Latency: the header appears 2 cycles after the last CRC byte (the CRC comparison is
    registered); the first payload byte the cycle after the header transfer. Throughput: one
    byte per cycle in and out, plus three turnaround cycles per frame (the length check, the
    CRC check, the header). The receiver does not take bytes during the two checks, so a
    byte source must be able to wait (a UART's receiver holds its byte for a character
    time).
    """

    i: In(stream.Signature(8))
    header: Out(stream.Signature(FrameHeader))
    o: Out(stream.Signature(8))
    crc_error: Out(1)
    length_error: Out(1)
    timeout_error: Out(1)

    def __init__(self, max_length, *, timeout=None):
        _check_length("max_length", max_length, 0xFFFF)
        if timeout is not None and (not isinstance(timeout, int) or timeout < 1):
            raise TypeError(f"timeout must be a positive integer or None, not {timeout!r}")
        self._max_length = max_length
        self._timeout = timeout
        super().__init__()

    @property
    def max_length(self):
        return self._max_length

    # -- elaboration: the buffer, the CRC and the timeout, then the state machine; the
    # -- helpers share the registers of :meth:`_signals` --

    def elaborate(self, platform):
        m = Module()
        s = self._signals()
        m.submodules.buffer = s.buffer
        m.d.comb += [
            self.header.payload.eq(s.hdr),
            self.o.payload.eq(s.rd.data),
            s.wr.addr.eq(s.index),
            s.wr.data.eq(s.byte),
            s.rd.addr.eq(s.index),
        ]
        if self._timeout is not None:
            self._count_timeout(m, s)
        with m.FSM():
            self._header_states(m, s)
            self._length_check_state(m, s)
            self._payload_state(m, s)
            self._crc_states(m, s)
            self._hand_out_states(m, s)
        return m

    def _signals(self):
        """The payload buffer and its ports, and the registers the helpers share, in one
        namespace."""
        s = SimpleNamespace()
        s.buffer = Memory(shape=8, depth=self._max_length, init=[])
        s.wr = s.buffer.write_port()
        s.rd = s.buffer.read_port()
        s.byte = self.i.payload
        s.hdr = Signal(FrameHeader)
        s.crc = Signal(16, init=CRC_INIT)
        s.crc_lo_ok = Signal()         # the low CRC byte matched
        s.crc_ok = Signal()
        s.too_long = Signal()
        s.empty = Signal()             # length == 0
        # Bytes after the one at ``index``, minus one: its sign says that byte is the last, so
        # no comparison lies between the counter and the FSM.
        s.rest = Signal(range(-1, self._max_length))
        s.index = Signal(range(self._max_length + 1))
        if self._timeout is not None:
            s.idle = Signal(range(-1, self._timeout), init=self._timeout - 1)
            s.receiving = Signal()
        return s

    def _cover(self, m, s):
        """In the states whose bytes the CRC covers: ``crc`` over the byte taken."""
        # ``i.ready`` is high in these states, so a byte is taken exactly when it is valid:
        # the CRC's enable is a state bit and ``i.valid``, not the OR of the receiving states.
        with m.If(self.i.valid):
            m.d.sync += s.crc.eq(crc16_byte(s.crc, s.byte))

    def _count_timeout(self, m, s):
        """Drives ``idle`` and ``timeout_error``: a partly received frame is abandoned after
        ``timeout`` cycles without a byte."""
        # The counter counts down and its sign bit is the expiry: no comparison on the way
        # into the FSM.
        idle = s.idle
        timed_out = Signal()
        # While receiving, ``i.ready`` is high, so a byte is taken exactly when it is
        # valid: ``i.valid`` stands for ``take`` here, without the path through the state.
        with m.If(self.i.valid | ~s.receiving | idle[-1]):
            m.d.sync += idle.eq(self._timeout - 1)
        with m.Else():
            m.d.sync += idle.eq(idle - 1)
        m.d.comb += [
            timed_out.eq(s.receiving & ~self.i.valid & idle[-1]),
            self.timeout_error.eq(timed_out),
        ]

    def _receive(self, m, s):
        """Common part of the states that take frame bytes after SYNC: ``i.ready``, and
        back to HUNT on a timeout."""
        m.d.comb += self.i.ready.eq(1)
        if self._timeout is not None:
            m.d.comb += s.receiving.eq(1)
            # ``timed_out`` without its ``receiving`` term, which is true here: the
            # next-state logic does not wait for the OR of the receiving states.
            with m.If(~self.i.valid & s.idle[-1]):
                m.next = "HUNT"

    def _header_states(self, m, s):
        """HUNT to LEN_HI: SYNC, then the type and length into ``hdr``; the length's checks
        into ``too_long`` and ``empty``."""
        byte = s.byte
        with m.State("HUNT"):
            m.d.comb += self.i.ready.eq(1)
            m.d.sync += s.crc.eq(CRC_INIT)
            with m.If(self.i.valid & (byte == SYNC)):     # ready is high here
                m.next = "TYPE"
        # Each header state loads its registers on every clock, not only with a byte: the
        # last load is the byte's, as the state ends with it, and ``i.valid`` stays out of
        # the registers' enables.
        with m.State("TYPE"):
            self._receive(m, s)
            self._cover(m, s)
            m.d.sync += s.hdr.type.eq(byte)
            with m.If(self.i.valid):
                m.next = "LEN_LO"
        with m.State("LEN_LO"):
            self._receive(m, s)
            self._cover(m, s)
            m.d.sync += s.hdr.length[:8].eq(byte)
            with m.If(self.i.valid):
                m.next = "LEN_HI"
        with m.State("LEN_HI"):
            self._receive(m, s)
            self._cover(m, s)
            length = Cat(s.hdr.length[:8], byte)
            m.d.sync += [s.hdr.length[8:].eq(byte), s.index.eq(0), s.rest.eq(length - 2),
                         s.too_long.eq(length > self._max_length),
                         s.empty.eq(length == 0)]
            with m.If(self.i.valid):
                m.next = "LEN_CHECK"

    def _length_check_state(self, m, s):
        """LEN_CHECK: drops a frame too long (``length_error``), or goes on to its payload."""
        # The length (and below, the CRC) is judged a clock after its last byte, from
        # registers: the comparisons do not follow the UART's byte into the FSM.
        with m.State("LEN_CHECK"):
            with m.If(s.too_long):
                m.d.comb += self.length_error.eq(1)
                m.next = "HUNT"
            with m.Elif(s.empty):
                m.next = "CRC_LO"
            with m.Else():
                m.next = "PAYLOAD"

    def _payload_state(self, m, s):
        """PAYLOAD: writes the payload bytes into the buffer."""
        with m.State("PAYLOAD"):
            self._receive(m, s)
            self._cover(m, s)
            m.d.comb += s.wr.en.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += [s.index.eq(s.index + 1), s.rest.eq(s.rest - 1)]
                with m.If(s.rest[-1]):
                    m.next = "CRC_LO"

    def _crc_states(self, m, s):
        """CRC_LO to CRC_CHECK: the two CRC bytes into ``crc_ok``, then the frame offered or
        dropped (``crc_error``)."""
        with m.State("CRC_LO"):
            self._receive(m, s)
            with m.If(self.i.valid):
                # Half the comparison per byte: 8 bits deep, not 16, behind the UART's byte.
                m.d.sync += s.crc_lo_ok.eq(s.byte == s.crc[:8])
                m.next = "CRC_HI"
        with m.State("CRC_HI"):
            self._receive(m, s)
            with m.If(self.i.valid):
                m.d.sync += s.crc_ok.eq(s.crc_lo_ok & (s.byte == s.crc[8:]))
                m.next = "CRC_CHECK"
        with m.State("CRC_CHECK"):
            # The read address is ``index`` itself (no multiplexer before the buffer's
            # address: on the ECP5 that was the critical path): HEADER reads byte 0.
            m.d.sync += s.index.eq(0)
            with m.If(s.crc_ok):
                m.next = "HEADER"
            with m.Else():
                m.d.comb += self.crc_error.eq(1)
                m.next = "HUNT"

    def _hand_out_states(self, m, s):
        """HEADER and SEND: drive ``header``, then ``o`` from the buffer."""
        with m.State("HEADER"):
            # Prefetch byte 0 so that it sits on ``rd.data`` when the payload starts.
            m.d.comb += [self.header.valid.eq(1), s.rd.en.eq(1)]
            m.d.sync += s.rest.eq(s.hdr.length - 2)      # on every clock: unused here
            with m.If(self.header.ready):
                m.d.sync += s.index.eq(1)
                with m.If(s.empty):
                    m.next = "HUNT"
                with m.Else():
                    m.next = "SEND"
        with m.State("SEND"):
            m.d.comb += [self.o.valid.eq(1), s.rd.en.eq(self.o.ready)]
            with m.If(self.o.ready):
                m.d.sync += [s.index.eq(s.index + 1), s.rest.eq(s.rest - 1)]
                with m.If(s.rest[-1]):
                    m.next = "HUNT"


class FrameTx(wiring.Component):
    """Frame transmitter: wraps a header and its payload into SYNC, LENGTH and CRC.

    Members
    -------
    header : In(stream.Signature(FrameHeader))
        One beat per frame: type and payload length. Taken when the transmitter is idle.
    i : In(stream.Signature(8))
        Then exactly ``header.length`` payload bytes, taken while the CRC is accumulated.
    o : Out(stream.Signature(8))
        Frame bytes, from a register: no path runs from the state machine (or from ``i``)
        through ``o`` into the consumer. On the UP5K the frame state machine's output
        multiplexer feeding the UART's shift register had become the critical path.

    Latency: SYNC is offered two cycles after the header transfer. Throughput: one byte
    every two cycles (the output register is filled only when empty), far above any UART's.
    """

    header: In(stream.Signature(FrameHeader))
    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()

        hdr = Signal(FrameHeader)
        crc = Signal(16, init=CRC_INIT)
        # The payload's bytes left minus 2: a payload byte sent with this negative (its sign
        # bit) is the last one, and whether there is a payload at all is decided when the
        # header is taken. A 16-bit comparison between those registers and the state
        # machine had been the iCE40 digits_lut top's critical path (18.2 ns).
        rest = Signal(range(-1, 1 << 16))
        nonempty = Signal()
        # The state machine offers a byte on ``byte``; it is sent into the output register,
        # which takes it when empty. The CRC takes a covered byte from that register on the
        # clock after: the register cannot be refilled sooner, so the CRC is always up to
        # date when the state machine offers it, and no path runs from the state machine's
        # byte multiplexer through the CRC's XOR network.
        byte = stream.Signature(8).create()
        covered = Signal()                   # the offered byte is covered by the CRC
        out_valid, out_data, out_covered, loaded = Signal(), Signal(8), Signal(), Signal()
        m.d.comb += [self.o.valid.eq(out_valid), self.o.payload.eq(out_data),
                     byte.ready.eq(~out_valid)]
        with m.If(self.o.ready):
            m.d.sync += out_valid.eq(0)
        sent = Signal()
        m.d.comb += sent.eq(byte.valid & byte.ready)
        m.d.sync += loaded.eq(sent)
        with m.If(sent):
            m.d.sync += [out_valid.eq(1), out_data.eq(byte.payload), out_covered.eq(covered)]
        with m.If(loaded & out_covered):
            m.d.sync += crc.eq(crc16_byte(crc, out_data))

        def emit(value, next_state, *, cover=True):
            m.d.comb += [byte.valid.eq(1), byte.payload.eq(value), covered.eq(cover)]
            with m.If(sent):
                m.next = next_state

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.header.ready.eq(1)
                # Loaded on every idle clock, the last time with the header: no
                # ``header.valid`` in the registers' enables.
                m.d.sync += [hdr.eq(self.header.payload),
                             rest.eq(self.header.payload.length - 2),
                             nonempty.eq(self.header.payload.length != 0)]
                with m.If(self.header.valid):
                    m.next = "SYNC"
            with m.State("SYNC"):
                emit(SYNC, "TYPE", cover=False)
                m.d.sync += crc.eq(CRC_INIT)
            with m.State("TYPE"):
                emit(hdr.type, "LEN_LO")
            with m.State("LEN_LO"):
                emit(hdr.length[:8], "LEN_HI")
            with m.State("LEN_HI"):
                emit(hdr.length[8:], "CRC_LO")
                with m.If(sent & nonempty):
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [
                    byte.valid.eq(self.i.valid),
                    byte.payload.eq(self.i.payload),
                    covered.eq(1),
                    self.i.ready.eq(byte.ready),
                ]
                with m.If(sent):
                    m.d.sync += rest.eq(rest - 1)
                    with m.If(rest[-1]):
                        m.next = "CRC_LO"
            with m.State("CRC_LO"):
                emit(crc[:8], "CRC_HI", cover=False)
            with m.State("CRC_HI"):
                emit(crc[8:], "IDLE", cover=False)

        return m
