# amaranth: UnusedElaboratable=no
# (test_bad_parameters builds components that are never elaborated)

import random

import pytest
from amaranth import Module, Signal
from amaranth.hdl import Fragment
from amaranth.lib import wiring
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

from clockprop.hw import framing
from clockprop.hw.framing import FrameRx, FrameTx, crc16_byte
from clockprop.hw.uart import UARTRx, UARTTx
from clockprop.sim.uart_model import uart_recv, uart_send
from clockprop.core import protocol
from clockprop.core.protocol import Frame, FrameDecoder, FrameError, crc16, encode_frame


def run(dut, *testbenches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    sim.run()


async def send_stream(ctx, port, data, *, rng=None):
    """Drive ``data`` onto an In stream port, honouring ``ready``; optional random stalls."""
    for byte in data:
        while rng is not None and rng.random() < 0.3:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload, byte)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


def source(port, data, *, rng=None):
    async def tb(ctx):
        await send_stream(ctx, port, data, rng=rng)
    return tb


def rx_collector(dut, events, cycles, *, rng=None):
    """Collect ("hdr", type, length), ("byte", b) and error strobes from a FrameRx."""
    async def tb(ctx):
        for _ in range(cycles):
            ready = 1 if rng is None else int(rng.random() < 0.6)
            ctx.set(dut.header.ready, ready)
            ctx.set(dut.o.ready, ready)
            *_, hv, hp, ov, op, crc_err, len_err, tmo = await ctx.tick().sample(
                dut.header.valid, dut.header.payload, dut.o.valid, dut.o.payload,
                dut.crc_error, dut.length_error, dut.timeout_error)
            if hv and ready:
                events.append(("hdr", hp.type, hp.length))
            if ov and ready:
                events.append(("byte", op))
            for name, strobe in (("crc", crc_err), ("length", len_err), ("timeout", tmo)):
                if strobe:
                    events.append((name,))
    return tb


def frames_from_events(events):
    """Group FrameRx events into frames; errors stay as tuples."""
    out = []
    for ev in events:
        if ev[0] == "hdr":
            out.append([ev[1], ev[2], bytearray()])
        elif ev[0] == "byte":
            out[-1][2].append(ev[1])
        else:
            out.append(ev[0])
    result = []
    for item in out:
        if isinstance(item, list):
            assert len(item[2]) == item[1], "payload length differs from header length"
            result.append(Frame(item[0], bytes(item[2])))
        else:
            result.append(item)
    return result


def test_crc16_reference():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF
    assert crc16(b"6789", crc16(b"12345")) == 0x29B1


def test_constants_match_host():
    assert (framing.SYNC, framing.CRC_INIT, framing.CRC_POLY) == \
        (protocol.SYNC, protocol.CRC_INIT, protocol.CRC_POLY)


def test_crc16_gateware_matches_host():
    data = bytes(random.Random(1).randrange(256) for _ in range(20)) + b"123456789"
    m = Module()
    crc = Signal(16, init=0xFFFF)
    byte = Signal(8)
    m.d.sync += crc.eq(crc16_byte(crc, byte))
    seen = []

    async def tb(ctx):
        for b in data:
            ctx.set(byte, b)
            await ctx.tick()
            seen.append(ctx.get(crc))

    run(m, tb)
    assert seen[-1] == crc16(data)
    assert seen == [crc16(data[:k + 1]) for k in range(len(data))]


@pytest.mark.parametrize("dut", [FrameRx(1), FrameRx(300, timeout=50), FrameTx()],
                         ids=["rx1", "rx300", "tx"])
def test_elaborates_without_platform(dut):
    Fragment.get(dut, platform=None)


@pytest.mark.parametrize("kwargs", [dict(max_length=0), dict(max_length=70000),
                                    dict(max_length=8, timeout=0)])
def test_bad_parameters(kwargs):
    with pytest.raises(TypeError):
        FrameRx(**kwargs)


frame_strategy = st.tuples(st.integers(0, 255), st.binary(max_size=6))


@settings(max_examples=20, deadline=None)
@given(st.lists(frame_strategy, min_size=1, max_size=3), st.binary(max_size=3),
       st.integers(0, 2**32 - 1))
def test_rx_accepts_good_frames(frames, garbage, seed):
    """Garbage without SYNC, then good frames: all come out, in order, with stalls on
    both sides."""
    garbage = bytes(b for b in garbage if b != 0xA5)
    stream_bytes = garbage + b"".join(encode_frame(t, p) for t, p in frames)
    dut = FrameRx(max_length=6)
    events = []
    rng = random.Random(seed)
    run(dut, source(dut.i, stream_bytes, rng=rng),
        rx_collector(dut, events, 4 * len(stream_bytes) + 60, rng=random.Random(seed + 1)))
    assert frames_from_events(events) == [Frame(t, p) for t, p in frames]


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=0, max_size=6), st.data())
def test_rx_rejects_flipped_bit(payload, data):
    """A frame with one flipped bit after SYNC is never delivered; the next good one is."""
    bad = bytearray(encode_frame(0x01, payload))
    bit = data.draw(st.integers(8 * 1, 8 * len(bad) - 1), label="bit")
    bad[bit // 8] ^= 1 << (bit % 8)
    good = encode_frame(0x02, b"ok")
    dut = FrameRx(max_length=6, timeout=8)
    events = []

    async def feed(ctx):
        await send_stream(ctx, dut.i, bytes(bad))
        await ctx.tick().repeat(12)     # > timeout: a false SYNC in the rest is abandoned
        await send_stream(ctx, dut.i, good)

    run(dut, feed, rx_collector(dut, events, 3 * len(bad) + 60))
    frames = frames_from_events(events)
    assert frames[-1] == Frame(0x02, b"ok")
    assert frames[0] in ("crc", "length", "timeout")
    assert all(f in ("crc", "length", "timeout") for f in frames[:-1])


def test_rx_length_error_and_timeout():
    dut = FrameRx(max_length=4, timeout=10)
    events = []

    async def feed(ctx):
        await send_stream(ctx, dut.i, encode_frame(0x01, b"12345"))   # too long
        await send_stream(ctx, dut.i, encode_frame(0x01, b"1234")[:5])  # truncated
        await ctx.tick().repeat(20)
        await send_stream(ctx, dut.i, encode_frame(0x05, b""))

    run(dut, feed, rx_collector(dut, events, 80))
    assert frames_from_events(events) == ["length", "timeout", Frame(0x05, b"")]


async def tx_send(ctx, dut, frames):
    for type_, payload in frames:
        ctx.set(dut.header.payload, {"type": type_, "length": len(payload)})
        ctx.set(dut.header.valid, 1)
        await ctx.tick().until(dut.header.ready)
        ctx.set(dut.header.valid, 0)
        await send_stream(ctx, dut.i, payload)


@settings(max_examples=20, deadline=None)
@given(st.lists(frame_strategy, min_size=1, max_size=3), st.integers(0, 2**32 - 1))
def test_tx_output_decodes_on_host(frames, seed):
    dut = FrameTx()
    total = sum(len(p) + 6 for _, p in frames)
    out = bytearray()
    rng = random.Random(seed)

    async def sink(ctx):
        for _ in range(3 * total + 40):
            ready = int(rng.random() < 0.7)
            ctx.set(dut.o.ready, ready)
            *_, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                out.append(payload)

    async def host(ctx):
        await tx_send(ctx, dut, frames)

    run(dut, host, sink)
    assert bytes(out) == b"".join(encode_frame(t, p) for t, p in frames)
    assert FrameDecoder().feed(bytes(out)) == [Frame(t, p) for t, p in frames]


class UARTEcho(wiring.Component):
    """Test top: UART -> FrameRx -> FrameTx -> UART, i.e. a board that echoes frames."""

    rx: wiring.In(1, init=1)
    tx: wiring.Out(1, init=1)

    def __init__(self, divisor, max_length):
        self.divisor, self.max_length = divisor, max_length
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = UARTRx(self.divisor)
        m.submodules.utx = utx = UARTTx(self.divisor)
        m.submodules.frx = frx = FrameRx(self.max_length, timeout=20 * self.divisor)
        m.submodules.ftx = ftx = FrameTx()
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.o, frx.i)
        wiring.connect(m, frx.header, ftx.header)
        wiring.connect(m, frx.o, ftx.i)
        wiring.connect(m, ftx.o, utx.i)
        return m


def test_uart_echo_end_to_end():
    """Host bytes over the UART model into gateware and back, one request at a time like
    the host link: good frames come back and decode, the corrupted one never does."""
    div = 4
    corrupt = bytearray(encode_frame(0x01, b"xyz"))
    corrupt[5] ^= 0x10
    requests = [encode_frame(0x05, b"\x01\x02"), bytes(corrupt), encode_frame(0x01, b"")]
    dut = UARTEcho(div, max_length=8)
    replies = []

    async def host(ctx):
        for request in requests:
            await uart_send(ctx, dut.rx, request, div)
            replies.append(await uart_recv(ctx, dut.tx, len(request), div, timeout=30 * div))

    run(dut, host)
    assert replies == [requests[0], b"", requests[2]]
    decoder = FrameDecoder()
    assert decoder.feed(b"".join(replies)) == [Frame(0x05, b"\x01\x02"), Frame(0x01, b"")]
    with pytest.raises(FrameError, match="CRC"):
        decoder.feed(bytes(corrupt))
