"""Packing integer vectors into the flat bit layout of ``data.ArrayLayout`` payloads."""

__all__ = ["pack", "unpack"]


def pack(values, width):
    """Element ``k`` of ``values`` at bits ``[k*width, (k+1)*width)`` (two's complement)."""
    mask = (1 << width) - 1
    word = 0
    for k, v in enumerate(values):
        word |= (int(v) & mask) << (k * width)
    return word


def unpack(word, width, count, *, signed):
    """Inverse of :func:`pack`: ``count`` elements of ``width`` bits."""
    mask = (1 << width) - 1
    out = []
    for k in range(count):
        v = (int(word) >> (k * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out
