"""Byte transports to a board (serial port, in-memory loopback) and the framed :class:`Link`.

The same host code runs against real hardware and against the simulator: anything with
:class:`Transport`'s two methods can carry a :class:`Link`. A simulator transport
(``SimTransport``, driving a simulated board top) implements ``write`` by queueing bytes for
the UART model and ``read`` by advancing the simulation until bytes come out or the timeout
(converted to cycles) runs out.
"""

import collections
import os
import time

from .errors import ClockpropError
from .protocol import ErrorCode, FrameDecoder, FrameType, encode_frame

__all__ = ["Transport", "SerialTransport", "LoopbackTransport", "Link"]


class Transport:
    """A bidirectional byte pipe. Subclasses implement :meth:`write` and :meth:`read`."""

    #: Shown in error messages, e.g. the serial port's path.
    name = "transport"

    def write(self, data):
        """Send all of ``data`` (bytes)."""
        raise NotImplementedError

    def read(self, n, timeout):
        """Return between 1 and ``n`` received bytes as soon as any are there, waiting at
        most ``timeout`` seconds; ``b""`` when nothing arrived in time (a timeout is not an
        error here).
        """
        raise NotImplementedError

    def discard_input(self):
        """Drop bytes already received (before a retry)."""
        while self.read(4096, 0):
            pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _available_ports():
    from serial.tools import list_ports
    ports = sorted(info.device for info in list_ports.comports())
    return ", ".join(ports) if ports else "none found"


class SerialTransport(Transport):
    """A serial port through pyserial, 8N1.

    Raises :class:`ClockpropError` when the port does not exist (listing the ports that do)
    or cannot be opened.
    """

    def __init__(self, port, baud=115200, timeout=1.0):
        import serial

        self.name = port
        self.baud = baud
        self.timeout = timeout
        if not port.startswith(("socket://", "rfc2217://", "loop://")) and \
                not os.path.exists(port):
            raise ClockpropError(f"serial port {port} does not exist; available ports: "
                                 f"{_available_ports()}")
        try:
            self._serial = serial.serial_for_url(port, baudrate=baud, timeout=timeout,
                                                 bytesize=8, parity="N", stopbits=1)
        except (serial.SerialException, ValueError) as error:
            raise ClockpropError(f"cannot open serial port {port} at {baud} baud: {error}; "
                                 f"check permissions (dialout group) and that no other "
                                 f"program holds it") from error

    def write(self, data):
        self._serial.write(bytes(data))
        self._serial.flush()

    def read(self, n, timeout):
        self._serial.timeout = timeout
        first = self._serial.read(1)
        if not first or n == 1:
            return first
        more = min(n - 1, self._serial.in_waiting)
        return first + self._serial.read(more) if more else first

    def discard_input(self):
        self._serial.reset_input_buffer()

    def close(self):
        self._serial.close()


class LoopbackTransport(Transport):
    """In-memory transport for tests.

    Every :meth:`write` is passed to ``responder`` (a callable ``bytes -> bytes``, e.g. a
    fake board); what it returns becomes readable. Without a responder, written bytes are
    echoed back. ``inject`` queues bytes as if the board had sent them. ``written`` keeps
    everything written.
    """

    name = "loopback"

    def __init__(self, responder=None):
        self.responder = responder
        self.written = bytearray()
        self._rx = collections.deque()

    def inject(self, data):
        self._rx.extend(data)

    def write(self, data):
        data = bytes(data)
        self.written += data
        self.inject(data if self.responder is None else self.responder(data))

    def read(self, n, timeout):
        if not self._rx:
            time.sleep(timeout)     # nothing can arrive while we wait: one thread
            return b""
        count = min(n, len(self._rx))
        return bytes(self._rx.popleft() for _ in range(count))

    def discard_input(self):
        self._rx.clear()


class Link:
    """Frames over a :class:`Transport`, request/response with CRC checks and retries.

    A board answers every request frame with one frame, so :meth:`request` sends a frame and
    waits for the answer. On a timeout, a reply with a bad CRC, or an ``ERROR`` frame with code
    ``CRC`` (the board saw our frame corrupted), it discards pending input and resends, at
    most ``retries`` more times, then raises :class:`ClockpropError`.

    Parameters
    ----------
    transport : Transport
    timeout : float
        Seconds to wait for a whole reply.
    retries : int
        Extra attempts after the first.
    max_payload : int
        Longest reply payload accepted; longer announced lengths are treated as noise.
    """

    def __init__(self, transport, *, timeout=1.0, retries=3, max_payload=4096):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.decoder = FrameDecoder(max_payload)
        self.resends = 0          # total resends, for reports

    def send(self, type, payload=b""):
        self.transport.write(encode_frame(type, payload))

    def receive(self, timeout=None):
        """The next good frame. Raises :class:`FrameError` for a corrupted one and
        :class:`ClockpropError` when none is complete within ``timeout`` seconds."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left < 0:
                raise ClockpropError(
                    f"no answer from the board on {self.transport.name} within {timeout:g} s; "
                    f"check the port, the baud rate and that the bitstream is loaded")
            self.decoder.extend(self.transport.read(4096, left))

    def request(self, type, payload=b"", *, expect=None):
        """Send a frame and return the board's answer, a :class:`Frame`.

        ``expect`` (a frame type) makes any other answer an error. An ``ERROR`` frame other
        than a CRC error raises :class:`ClockpropError` at once.
        """
        problems = []
        for attempt in range(self.retries + 1):
            if attempt:
                self.resends += 1
                self.transport.discard_input()
                self.decoder.reset()
            self.send(type, payload)
            try:
                reply = self.receive()
            except ClockpropError as error:      # a timeout, or a FrameError (bad CRC)
                problems.append(str(error))
                continue
            if reply.type == FrameType.ERROR:
                code = reply.payload[0] if reply.payload else None
                if code == ErrorCode.CRC:
                    problems.append("the board received a corrupted frame")
                    continue
                raise ClockpropError(f"the board answered {_type_name(type)} with an error: "
                                     f"{_error_name(code)}")
            if expect is not None and reply.type != expect:
                raise ClockpropError(f"expected a {_type_name(expect)} frame from the board, "
                                     f"got {_type_name(reply.type)}")
            return reply
        raise ClockpropError(f"{_type_name(type)} request failed after {self.retries + 1} "
                             f"tries on {self.transport.name}; last problem: {problems[-1]}")

    def ping(self, payload=b"clockprop"):
        """Round-trip a ``PING``; raises :class:`ClockpropError` unless the echo matches."""
        reply = self.request(FrameType.PING, payload, expect=FrameType.PONG)
        if reply.payload != bytes(payload):
            raise ClockpropError(f"PONG payload {reply.payload!r} differs from the PING "
                                 f"payload {bytes(payload)!r}")
        return reply

    def close(self):
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _type_name(type):
    try:
        return FrameType(type).name
    except ValueError:
        return f"type {type:#04x}"


def _error_name(code):
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"code {code!r}"

