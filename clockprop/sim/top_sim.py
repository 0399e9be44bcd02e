"""The simulated board: a :class:`~clockprop.boards.top.DeviceCore` behind a UART model.

:class:`SimTransport` is a byte transport like a serial port: what the host writes is
driven bit by bit onto the core's ``rx`` line by :mod:`clockprop.sim.uart_model`, and what the
core sends on ``tx`` is decoded back into bytes. The same host code (``clockprop run`` /
``selftest``) therefore runs against the simulator and against a board.
"""

import collections

from amaranth.sim import Simulator

from ..boards.top import DeviceCore
from ..core.transport import Transport
from .uart_model import UARTFramingError, uart_recv_byte, uart_send_byte

__all__ = ["SimTransport", "simulated_board"]


class SimTransport(Transport):
    """Host end of a simulated serial line to ``core``.

    Parameters
    ----------
    core : DeviceCore
        The design under simulation.
    baud : int
        Nominal baud rate: the link's clock runs at ``core.divisor * baud`` Hz, so that
        read timeouts in seconds mean the same as on a board.
    clock_ratio : float
        Pipeline clocks per link clock, for a core whose host link runs in a domain of its
        own (``core.link_domain``); not a whole number by default, so that the two clocks'
        edges drift past each other as on a board.
    idle_chars : int
        :meth:`read` also gives up after the line has been quiet in both directions for
        this many character times (a board that does not answer is noticed quickly
        without simulating a whole timeout).
    corrupt_to_board, corrupt_to_host : dict {byte index: xor mask}
        Flip bits of the ``k``-th byte sent in that direction (counting from 0), to test
        that the CRC catches a noisy line.
    vcd : str or None
        Write a waveform file (closed by :meth:`close`).

    :meth:`read` follows :class:`~clockprop.core.transport.Transport`: it runs the simulation
    until at least one byte has come out, ``timeout`` simulated seconds have passed, or the
    line has been idle for ``idle_chars`` character times. ``cycles`` counts the link's
    simulated clocks.
    """

    name = "simulated board"

    def __init__(self, core, *, baud=115200, clock_ratio=2.7, idle_chars=30,
                 corrupt_to_board=None, corrupt_to_host=None, vcd=None):
        self.core = core
        self.domain = getattr(core, "link_domain", None) or "sync"
        self.divisor = core.divisor
        self.clk_hz = self.divisor * baud
        self.period = 1 / self.clk_hz
        self.idle_cycles = idle_chars * 10 * self.divisor
        self._to_board = collections.deque()
        self._to_host = bytearray()
        self._corrupt_to_board = dict(corrupt_to_board or {})
        self._corrupt_to_host = dict(corrupt_to_host or {})
        self._sent = self._received = 0
        self._busy = False             # a character is on the line (either direction)
        self._last_activity = 0
        self.cycles = 0
        self.framing_errors = 0
        self._closed = False

        self.sim = Simulator(core)
        self.sim.add_clock(self.period, domain=self.domain)
        if self.domain != "sync":
            self.sim.add_clock(self.period / clock_ratio, domain="sync")
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._listen, background=True)
        self._vcd = None
        if vcd:
            self._vcd = self.sim.write_vcd(str(vcd))
            self._vcd.__enter__()

    # -- the wire ---------------------------------------------------------------------

    async def _drive(self, ctx):
        while True:
            if self._to_board:
                byte = self._to_board.popleft()
                byte ^= self._corrupt_to_board.pop(self._sent, 0)
                self._sent += 1
                self._busy = True
                await uart_send_byte(ctx, self.core.rx, byte, self.divisor, domain=self.domain)
                self._busy = False
                self._last_activity = self.cycles
            else:
                await ctx.tick(self.domain)

    async def _listen(self, ctx):
        while True:
            try:
                byte = await uart_recv_byte(ctx, self.core.tx, self.divisor,
                                            domain=self.domain)
            except UARTFramingError:
                self.framing_errors += 1
                continue
            byte ^= self._corrupt_to_host.pop(self._received, 0)
            self._received += 1
            self._to_host.append(byte)
            self._last_activity = self.cycles

    def _step(self, cycles):
        self.sim.run_until((self.cycles + cycles) * self.period)
        self.cycles += cycles

    # -- the transport API ------------------------------------------------------------

    def write(self, data):
        """Queue ``data`` for the board; it is sent while :meth:`read` runs the simulation."""
        self._check_open()
        self._to_board.extend(bytes(data))
        return len(data)

    def read(self, n, timeout=1.0):
        """Between 1 and ``n`` bytes from the board; ``b""`` when none came within
        ``timeout`` simulated seconds or ``idle_chars`` character times of a quiet line."""
        self._check_open()
        deadline = self.cycles + max(1, int(timeout * self.clk_hz))
        self._last_activity = self.cycles
        chunk = 2 * self.divisor
        while not self._to_host and self.cycles < deadline:
            if (not self._to_board and not self._busy and
                    self.cycles - self._last_activity > self.idle_cycles):
                break
            self._step(chunk)
        out = bytes(self._to_host[:n])
        del self._to_host[:n]
        return out

    def discard_input(self):
        self._to_host.clear()

    def close(self):
        if not self._closed and self._vcd is not None:
            self._vcd.__exit__(None, None, None)
        self._closed = True

    def _check_open(self):
        if self._closed:
            raise ValueError("SimTransport is closed")


def simulated_board(model, *, divisor=4, register_every=0, fold=None, selftest=None,
                    crossing=0, link_clock=False, selftest_storage="block", logit_memory=False,
                    **kwargs):
    """A :class:`SimTransport` to a fresh :class:`DeviceCore` for ``model``; with
    ``link_clock``, its host link runs on a clock of its own (as on the ECP5 boards), with
    ``logit_memory`` the argmax's logits wait in block RAM (as on the iCE40 boards)."""
    core = DeviceCore(model, divisor=divisor, register_every=register_every, fold=fold,
                      selftest=selftest, crossing=crossing,
                      link_domain="link" if link_clock else None,
                      selftest_storage=selftest_storage, logit_memory=logit_memory)
    return SimTransport(core, **kwargs)
