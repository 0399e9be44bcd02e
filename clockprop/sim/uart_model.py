"""A bit-level 8N1 UART model for Amaranth async testbenches.

The model plays the host's end of the wire: :func:`uart_send` drives bytes onto the design's
``rx`` input and :func:`uart_recv` decodes bytes from its ``tx`` output, both counting
``divisor`` clock cycles per bit with ``await ctx.tick(domain)`` (``sync`` unless the UART's
logic runs in a domain of its own). Use it inside ``sim.add_testbench(async def tb(ctx): ...)``;
the clock comes from ``sim.add_clock(period)``.
"""

__all__ = ["UARTFramingError", "uart_send", "uart_send_byte", "uart_recv", "uart_recv_byte"]


class UARTFramingError(AssertionError):
    """The model sampled a low stop bit on ``tx``."""


async def uart_send_byte(ctx, rx, byte, divisor, *, stop=1, domain="sync"):
    """Drive one 8N1 character onto ``rx``: ``10 * divisor`` cycles.

    ``stop=0`` sends a bad stop bit, to provoke a framing error.
    """
    assert 0 <= byte < 256, byte
    bits = [0] + [(byte >> k) & 1 for k in range(8)] + [stop]
    for bit in bits:
        ctx.set(rx, bit)
        await ctx.tick(domain).repeat(divisor)
    ctx.set(rx, 1)


async def uart_send(ctx, rx, data, divisor, *, gap=0):
    """Drive the bytes of ``data`` onto ``rx`` back to back, with ``gap`` idle cycles between."""
    for byte in data:
        await uart_send_byte(ctx, rx, byte, divisor)
        if gap:
            await ctx.tick().repeat(gap)


async def uart_recv_byte(ctx, tx, divisor, *, timeout=None, domain="sync"):
    """Wait for a start bit on ``tx`` and decode one character, sampling mid-bit.

    Returns the byte, or ``None`` when no start bit came within ``timeout`` cycles. Raises
    :class:`UARTFramingError` on a low stop bit. Returns about half a bit after the middle of
    the stop bit, so back-to-back characters are not missed.
    """
    waited = 0
    while ctx.get(tx):
        if timeout is not None and waited >= timeout:
            return None
        await ctx.tick(domain)
        waited += 1
    # ``tx`` went low just before this point: move to the middle of the start bit.
    await ctx.tick(domain).repeat(max(divisor // 2, 1))
    if ctx.get(tx):
        raise UARTFramingError("start bit on tx shorter than half a bit")
    byte = 0
    for k in range(8):
        await ctx.tick(domain).repeat(divisor)
        byte |= ctx.get(tx) << k
    await ctx.tick(domain).repeat(divisor)
    if not ctx.get(tx):
        raise UARTFramingError(f"stop bit low after byte {byte:#04x}")
    return byte


async def uart_recv(ctx, tx, count, divisor, *, timeout=None):
    """Decode ``count`` characters from ``tx``; returns ``bytes``.

    ``timeout`` bounds the idle cycles before each character; a shorter result means the
    design went quiet.
    """
    out = bytearray()
    for _ in range(count):
        byte = await uart_recv_byte(ctx, tx, divisor, timeout=timeout)
        if byte is None:
            break
        out.append(byte)
    return bytes(out)
