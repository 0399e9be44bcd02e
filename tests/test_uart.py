# amaranth: UnusedElaboratable=no
# (test_bad_divisor builds components that are never elaborated)

import os

import pytest
from amaranth import Module
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

from clockprop.hw.uart import UARTRx, UARTTx, uart_divisor
from clockprop.sim.uart_model import uart_recv, uart_send, uart_send_byte

DIV = 4


def run(dut, *testbenches, deadline=None, name="uart"):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    if os.environ.get("VCD"):
        with sim.write_vcd(f"{name}.vcd"):
            sim.run()
    else:
        sim.run()


def loopback(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    return m, tx, rx


@pytest.mark.parametrize("cls,divisor", [(UARTTx, 1), (UARTRx, 4), (UARTRx, 37)])
def test_elaborates_without_platform(cls, divisor):
    Fragment.get(cls(divisor), platform=None)


@pytest.mark.parametrize("cls,divisor", [(UARTTx, 0), (UARTRx, 3), (UARTRx, 4.0)])
def test_bad_divisor(cls, divisor):
    with pytest.raises(TypeError, match="divisor"):
        cls(divisor)


def test_uart_divisor():
    assert uart_divisor(12_000_000, 115_200) == 104
    assert uart_divisor(48_000_000, 3_000_000) == 16
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(10_000_000, 1_600_000)     # 6.25 clocks per bit
    with pytest.raises(ValueError, match="too slow"):
        uart_divisor(1_000_000, 500_000)


@settings(max_examples=15, deadline=None)
@given(st.binary(min_size=1, max_size=4), st.sampled_from([4, 5, 7]))
def test_loopback_bit_exact(data, divisor):
    """Tx -> Rx in gateware: every byte comes back, in order, with no errors."""
    m, tx, rx = loopback(divisor)
    received = []
    errors = []

    async def producer(ctx):
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def consumer(ctx):
        ctx.set(rx.o.ready, 1)
        cycles = 0
        while len(received) < len(data) and cycles < (len(data) + 1) * 12 * divisor:
            _, _, valid, payload, ferr = await ctx.tick().sample(
                rx.o.valid, rx.o.payload, rx.framing_error)
            if valid:
                received.append(payload)
            if ferr:
                errors.append(cycles)
            cycles += 1

    run(m, producer, consumer)
    assert bytes(received) == data
    assert errors == []


@settings(max_examples=8, deadline=None)
@given(st.binary(min_size=1, max_size=3))
def test_tx_against_model(data):
    dut = UARTTx(DIV)

    async def producer(ctx):
        for byte in data:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    got = []

    async def model(ctx):
        got.append(await uart_recv(ctx, dut.tx, len(data), DIV, timeout=20 * DIV))

    run(dut, producer, model)
    assert got == [data]


def test_rx_against_model_and_framing_error():
    dut = UARTRx(DIV)
    events = []

    async def host(ctx):
        await ctx.tick().repeat(3)
        await uart_send(ctx, dut.rx, b"\x00\xff", DIV)
        await uart_send_byte(ctx, dut.rx, 0x5A, DIV, stop=0)   # dropped, framing error
        await ctx.tick().repeat(2 * DIV)                        # line idle again
        await uart_send(ctx, dut.rx, b"\x3c", DIV)
        await ctx.tick().repeat(3 * DIV)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        for _ in range(60 * DIV):
            _, _, valid, payload, ferr = await ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.framing_error)
            if valid:
                events.append(payload)
            if ferr:
                events.append("framing")

    run(dut, host, sink)
    assert events == [0x00, 0xFF, "framing", 0x3C]


def test_rx_overrun_keeps_first_byte():
    dut = UARTRx(DIV)
    overruns = []

    async def host(ctx):
        await uart_send(ctx, dut.rx, b"\x11\x22", DIV)
        await ctx.tick().repeat(2 * DIV)

    async def watch(ctx):
        for _ in range(23 * DIV):
            _, _, ovr = await ctx.tick().sample(dut.overrun)
            if ovr:
                overruns.append(1)
        assert ctx.get(dut.o.valid)
        assert ctx.get(dut.o.payload) == 0x11

    run(dut, host, watch)
    assert overruns == [1]
