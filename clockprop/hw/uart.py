"""8N1 UART transmitter and receiver with byte streams.

Both cores count ``divisor`` clock cycles per bit (``divisor = clk_freq // baud``, see
:func:`uart_divisor`) and never touch the platform: a board top connects ``tx`` / ``rx`` to pins.
"""

from amaranth import Module, Signal, Cat, C
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTx", "UARTRx", "uart_divisor"]


def uart_divisor(clk_freq, baud, *, tolerance=0.02):
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz.

    Raises :class:`ValueError` when the rounded divisor misses the baud rate by more than
    ``tolerance`` (relative), or when it is below 4 (the smallest :class:`UARTRx` accepts).
    """
    divisor = round(clk_freq / baud)
    if divisor < 4:
        raise ValueError(f"clock {clk_freq} Hz is too slow for {baud} baud "
                         f"(needs at least 4 clocks per bit, got {clk_freq / baud:.2f})")
    error = abs(clk_freq / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"{baud} baud from a {clk_freq} Hz clock is off by {error:.1%} "
                         f"(divisor {divisor}); pick another baud rate")
    return divisor


def _check_divisor(divisor, minimum):
    if not isinstance(divisor, int) or divisor < minimum:
        raise TypeError(f"divisor must be an integer >= {minimum}, not {divisor!r}")


class UARTTx(wiring.Component):
    """8N1 UART transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 1).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send. ``i.ready`` is high while the transmitter is idle, so a byte is taken
        in the cycle after the previous stop bit ends.
    tx : Out(1, init=1)
        Serial line (idle high): start bit, 8 data bits LSB first, one stop bit.
    busy : Out(1)
        High while a character is being shifted out.

    Latency: the start bit begins on the cycle after the transfer on ``i``.
    Throughput: one byte per ``10 * divisor + 1`` cycles.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)
    busy: Out(1)

    def __init__(self, divisor):
        _check_divisor(divisor, 1)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()

        timer = Signal(range(-1, self._divisor))     # counts down to -1 (its sign bit)
        bits_left = Signal(range(11))
        # Start bit, 8 data bits, stop bit; shifted out LSB first. Idle value is all ones.
        shreg = Signal(10, init=0x3FF)

        m.d.comb += [
            self.tx.eq(shreg[0]),
            self.busy.eq(bits_left != 0),
            self.i.ready.eq(bits_left == 0),
        ]

        with m.If(bits_left == 0):
            with m.If(self.i.valid):
                m.d.sync += [
                    shreg.eq(Cat(C(0, 1), self.i.payload, C(1, 1))),
                    bits_left.eq(10),
                    timer.eq(self._divisor - 2),
                ]
        with m.Elif(timer[-1]):
            m.d.sync += [
                shreg.eq(Cat(shreg[1:], C(1, 1))),
                bits_left.eq(bits_left - 1),
                timer.eq(self._divisor - 2),
            ]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)

        return m


class UARTRx(wiring.Component):
    """8N1 UART receiver.

    ``rx`` passes a 2-FF synchronizer; a falling edge starts a character, the start bit is
    checked at its middle (a glitch shorter than half a bit is ignored) and every later bit is
    sampled at its middle. After the stop bit is sampled the receiver hunts for the next start
    bit at once, which tolerates a few percent of baud-rate mismatch.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Members
    -------
    rx : In(1, init=1)
        Serial line (asynchronous to the clock domain).
    o : Out(stream.Signature(8))
        Received bytes. ``o.valid`` rises about 9.5 * ``divisor`` + 4 cycles after the
        falling edge of the start bit on ``rx`` (mid stop bit) and stays high until
        ``o.ready``.
        The receiver cannot stall the line: a byte that completes while ``o`` still holds
        a byte not taken before that clock is dropped and ``overrun`` pulses. Consume within one character
        time (10 * ``divisor`` cycles) to never lose a byte.
    framing_error : Out(1)
        One-cycle strobe: a stop bit was sampled low (break or baud mismatch). The byte is
        dropped.
    overrun : Out(1)
        One-cycle strobe: a byte was dropped because ``o`` was still full.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor):
        _check_divisor(divisor, 4)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor

        # Two flip-flops against metastability; both idle high like the line.
        sync0 = Signal(init=1)
        sync1 = Signal(init=1)
        m.d.sync += [sync0.eq(self.rx), sync1.eq(sync0)]
        line = sync1

        # Counts down to -1: its sign bit ends a wait, no comparison before the FSM.
        timer = Signal(range(-1, div))
        bit_idx = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(div // 2 - 2)
                    m.next = "START"
            with m.State("START"):
                with m.If(~timer[-1]):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"                          # glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(div - 2), bit_idx.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(~timer[-1]):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [
                        shreg.eq(Cat(shreg[1:], line)),
                        bit_idx.eq(bit_idx + 1),
                        timer.eq(div - 2),
                    ]
                    with m.If(bit_idx == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(~timer[-1]):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(~line):
                        m.d.comb += self.framing_error.eq(1)
                    with m.Elif(self.o.valid):
                        # Judged on ``o.valid`` alone (a byte taken in this very clock still
                        # counts as unaccepted): no path from the consumer's ``ready`` into
                        # the payload's enable.
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"

        return m
