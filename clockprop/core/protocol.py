"""Host side of the framed link between a computer and a board top.

Frame (every multi-byte field little-endian)::

    SYNC (0xA5) | TYPE (1) | LENGTH (2) | PAYLOAD (LENGTH bytes) | CRC (2)

CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, init 0xFFFF, no reflection, no final xor)
over TYPE, LENGTH and PAYLOAD. The gateware twin is :mod:`clockprop.hw.framing`.

Payloads of the frame types (bit-packed vectors put element ``k`` at bits
``[k*bits, (k+1)*bits)`` of the payload read as one little-endian integer, which is exactly
what ``Cat(*elements)`` gives in Amaranth):

========================= ========== ======================================================
type                      direction  payload
========================= ========== ======================================================
``PING`` (0x05)           host->board any bytes (echoed)
``PONG`` (0x06)           board->host the ``PING`` payload
``SAMPLE`` (0x01)         host->board input activations, bit-packed unsigned
``RESULT`` (0x02)         board->host class (u8), then logits, bit-packed signed
``SELFTEST`` (0x03)       host->board empty
``SELFTEST_RESULT`` (0x04) board->host correct (u32), total (u32), cycles (u32)
``GENERATE`` (0x10)       host->board mode (u8: 0 argmax, 1 sample), temperature shift (u8),
                                     LFSR seed (u16), characters to generate (u16), then the
                                     prompt's character ids (u8 each, at least one); to a
                                     board of several streams: mode + 0x10, and each prompt
                                     as its length (u8, 1..255) then its ids
                                     (:class:`GenerateStreamsRequest`)
``TEXT`` (0x11)           board->host cycles the prompt took (u32), cycles the generation
                                     took (u32), then the generated text in UTF-8 (several
                                     streams: stream 0's ``n`` characters, then stream 1's ..)
``TRAIN`` (0x20)          host->board label (u8), lr (u8), input activations bit-packed unsigned:
                                     one training step of a training top
``INFER`` (0x21)          host->board input activations, bit-packed unsigned: forward pass only
                                     (answered with ``RESULT``)
``READ_WEIGHTS`` (0x22)   host->board first weight index (u16)
``WEIGHTS`` (0x23)        board->host first index (u16), then up to :data:`WEIGHTS_CHUNK`
                                     weights from it, each a signed 16-bit integer
``TRAIN_ACK`` (0x24)      board->host steps (u32), correct (u32), lfsr (u16), class (u8),
                                     flags (u8, bit 0: a bad sample was refused): the answer
                                     to ``TRAIN`` and ``TRAIN_STORED`` (:class:`TrainAck`)
``TRAIN_STORED`` (0x25)   host->board lr (u8), count (u16): train on the next ``count`` samples
                                     of the training split stored on chip (cyclically)
``ERROR`` (0x7F)          board->host error code (u8, :class:`ErrorCode`)
========================= ========== ======================================================

``TRAIN`` .. ``TRAIN_STORED`` are served by the training top
(:mod:`clockprop.boards.train_top`). It numbers its weights as ``np.concatenate([v[mask] for
v, mask in zip(trainer.v, trainer.masks)])`` (the weights that exist, layer by layer,
row-major, the bias last in each row); ``steps`` counts training steps since power-up and
``correct`` the samples of the request whose class (before their update) was the label.

``GENERATE`` / ``TEXT`` are served by the recurrent board top
(:mod:`clockprop.boards.recurrent_top`); :class:`GenerateRequest` and :class:`TextReply`
encode and decode them.
"""

import enum
from dataclasses import dataclass

from .errors import ClockpropError

__all__ = [
    "SYNC", "HEADER_SIZE", "OVERHEAD", "MAX_PAYLOAD", "FrameType", "ErrorCode", "Frame",
    "FrameError", "crc16", "encode_frame", "FrameDecoder",
    "pack_bits", "unpack_bits", "encode_sample", "decode_sample", "Result", "encode_result",
    "decode_result", "SelfTestResult", "GenerateRequest", "GenerateStreamsRequest", "TextReply",
    "WEIGHTS_CHUNK", "TrainAck", "encode_train", "encode_train_stored", "decode_weights",
]

SYNC = 0xA5
HEADER_SIZE = 4            # SYNC, TYPE, LENGTH
OVERHEAD = HEADER_SIZE + 2  # plus CRC
MAX_PAYLOAD = 0xFFFF
CRC_INIT = 0xFFFF
CRC_POLY = 0x1021


class FrameType(enum.IntEnum):
    SAMPLE = 0x01
    RESULT = 0x02
    SELFTEST = 0x03
    SELFTEST_RESULT = 0x04
    PING = 0x05
    PONG = 0x06
    GENERATE = 0x10
    TEXT = 0x11
    TRAIN = 0x20
    INFER = 0x21
    READ_WEIGHTS = 0x22
    WEIGHTS = 0x23
    TRAIN_ACK = 0x24
    TRAIN_STORED = 0x25
    ERROR = 0x7F


class ErrorCode(enum.IntEnum):
    """Payload byte of an ``ERROR`` frame sent by a board."""
    CRC = 0x01            # the board received a frame with a bad CRC: resend it
    LENGTH = 0x02         # payload longer than the board accepts, or wrong for the type
    UNKNOWN_TYPE = 0x03   # the board does not handle this frame type
    BUSY = 0x04           # the board cannot take the request now: retry later
    BAD_TOKEN = 0x05      # GENERATE: a prompt character id outside the board's vocabulary
    TOO_LONG = 0x06       # GENERATE: more characters asked for than the board's buffer holds
    MODE = 0x07           # GENERATE: mode, shift or seed differ from what the board was built for
    LABEL = 0x08          # TRAIN: a label >= the number of classes (not trained on)
    LEARNING_RATE = 0x09  # TRAIN, TRAIN_STORED: an lr above the config's anneal


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data``; pass a previous result as ``crc`` to continue.

    ``crc16(b"123456789") == 0x29B1``.
    """
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


@dataclass(frozen=True)
class Frame:
    type: int
    payload: bytes = b""

    def __repr__(self):
        try:
            name = FrameType(self.type).name
        except ValueError:
            name = f"{self.type:#04x}"
        return f"Frame({name}, {self.payload.hex()!r})"


class FrameError(ClockpropError):
    """A frame failed its CRC or had an impossible length.

    ``frames`` holds the good frames decoded before the bad one in the same
    :meth:`FrameDecoder.feed` call, so none is lost.
    """

    def __init__(self, message, frames=()):
        super().__init__(message)
        self.frames = list(frames)


def encode_frame(type, payload=b""):
    """The bytes of one frame of ``type`` (0..255) carrying ``payload`` (<= 65535 bytes)."""
    payload = bytes(payload)
    if not 0 <= int(type) <= 0xFF:
        raise ClockpropError(f"frame type {type} does not fit in a byte")
    if len(payload) > MAX_PAYLOAD:
        raise ClockpropError(f"frame payload of {len(payload)} bytes is longer than the "
                             f"protocol allows ({MAX_PAYLOAD}); split the data")
    body = bytes([int(type)]) + len(payload).to_bytes(2, "little") + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "little")


class FrameDecoder:
    """Incremental frame decoder: feed it bytes as they arrive, get whole frames back.

    Bytes before a SYNC byte are skipped (counted in ``skipped``). A frame whose CRC does not
    match is dropped whole and reported by raising :class:`FrameError` (counted in
    ``crc_errors``); a LENGTH above ``max_payload`` means the SYNC byte was noise, so only that
    byte is dropped (counted in ``length_errors``) before :class:`FrameError` is raised. Bytes
    after the bad frame stay buffered: call :meth:`feed` again (``feed(b"")`` is fine) to go on.
    A bad frame is never returned.
    """

    def __init__(self, max_payload=MAX_PAYLOAD):
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be in 0..{MAX_PAYLOAD}, not {max_payload}")
        self.max_payload = max_payload
        self._buf = bytearray()
        self.skipped = 0
        self.crc_errors = 0
        self.length_errors = 0

    def reset(self):
        """Forget buffered bytes (after a timeout, before resending)."""
        self._buf.clear()

    @property
    def pending(self):
        """Number of buffered bytes not yet part of a returned frame."""
        return len(self._buf)

    def extend(self, data):
        """Buffer ``data`` without decoding; take frames out with :meth:`next_frame`."""
        self._buf += data

    def next_frame(self):
        """Decode one frame from the buffered bytes: a :class:`Frame`, or ``None`` when more
        bytes are needed. Raises :class:`FrameError` for a bad frame (and drops it)."""
        buf = self._buf
        start = buf.find(SYNC)
        if start < 0:
            self.skipped += len(buf)
            buf.clear()
            return None
        if start:
            self.skipped += start
            del buf[:start]
        if len(buf) < HEADER_SIZE:
            return None
        type_, length = buf[1], int.from_bytes(buf[2:4], "little")
        if length > self.max_payload:
            del buf[:1]
            self.length_errors += 1
            raise FrameError(f"frame of type {type_:#04x} announces {length} payload bytes, "
                             f"more than the {self.max_payload} expected; resynchronizing")
        end = HEADER_SIZE + length + 2
        if len(buf) < end:
            return None
        body = bytes(buf[1:HEADER_SIZE + length])
        received = int.from_bytes(buf[end - 2:end], "little")
        del buf[:end]
        computed = crc16(body)
        if received != computed:
            self.crc_errors += 1
            raise FrameError(f"CRC error in a frame of type {type_:#04x} with {length} payload "
                             f"bytes (received {received:#06x}, computed {computed:#06x}); "
                             f"the link is corrupting data: check the baud rate and wiring")
        return Frame(type_, body[3:])

    def feed(self, data):
        """Buffer ``data`` and return the list of frames completed so far."""
        self.extend(data)
        frames = []
        while True:
            try:
                frame = self.next_frame()
            except FrameError as error:
                error.frames = frames
                raise
            if frame is None:
                return frames
            frames.append(frame)


# Payload helpers ---------------------------------------------------------------------------

def pack_bits(values, bits, *, signed=False):
    """Pack integers, ``bits`` each, element ``k`` at bits ``[k*bits, (k+1)*bits)`` of a
    little-endian byte string (the padding bits of the last byte are 0)."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    word = 0
    for k, value in enumerate(values):
        value = int(value)
        if not lo <= value <= hi:
            raise ClockpropError(f"value {value} at index {k} does not fit in {bits} "
                                 f"{'signed' if signed else 'unsigned'} bits")
        word |= (value & ((1 << bits) - 1)) << (k * bits)
    count = len(values)
    return word.to_bytes((count * bits + 7) // 8, "little")


def unpack_bits(data, bits, count, *, signed=False):
    """Inverse of :func:`pack_bits`: a list of ``count`` integers."""
    need = (count * bits + 7) // 8
    if len(data) < need:
        raise ClockpropError(f"{count} values of {bits} bits need {need} bytes, got {len(data)}")
    word = int.from_bytes(bytes(data[:need]), "little")
    mask = (1 << bits) - 1
    out = []
    for k in range(count):
        value = (word >> (k * bits)) & mask
        if signed and value >> (bits - 1):
            value -= 1 << bits
        out.append(value)
    return out


def encode_sample(activations, bits):
    """``SAMPLE`` payload: unsigned activations of ``bits`` bits each."""
    return pack_bits(activations, bits)


def decode_sample(payload, bits, count):
    return unpack_bits(payload, bits, count)


@dataclass(frozen=True)
class Result:
    """Decoded ``RESULT`` payload."""
    cls: int
    logits: tuple


def encode_result(cls, logits, bits):
    """``RESULT`` payload: the class (u8), then signed logits of ``bits`` bits each."""
    return bytes([cls]) + pack_bits(logits, bits, signed=True)


def decode_result(payload, bits, count):
    if len(payload) < 1:
        raise ClockpropError("RESULT frame with an empty payload")
    return Result(payload[0], tuple(unpack_bits(payload[1:], bits, count, signed=True)))


@dataclass(frozen=True)
class SelfTestResult:
    """``SELFTEST_RESULT`` payload: three little-endian u32."""
    correct: int
    total: int
    cycles: int

    SIZE = 12

    def encode(self):
        return b"".join(v.to_bytes(4, "little") for v in (self.correct, self.total, self.cycles))

    @classmethod
    def decode(cls, payload):
        if len(payload) != cls.SIZE:
            raise ClockpropError(f"SELFTEST_RESULT payload must be {cls.SIZE} bytes, "
                                 f"got {len(payload)}")
        return cls(*(int.from_bytes(payload[k:k + 4], "little") for k in range(0, 12, 4)))

    @property
    def accuracy(self):
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class GenerateRequest:
    """``GENERATE`` payload: how to generate, and the prompt as character ids.

    ``shift`` is ``None`` for argmax (mode 0); an integer asks for sampling (mode 1) with that
    temperature shift and LFSR ``seed`` (both ignored, and sent as 0, for argmax).
    """
    prompt: tuple
    n: int
    shift: int = None
    seed: int = 0xACE1

    HEADER = 6          # mode, shift, seed (u16), n (u16)

    def encode(self):
        if not self.prompt:
            raise ClockpropError("the prompt is empty; give at least one character")
        if not 0 <= self.n <= 0xFFFF:
            raise ClockpropError(f"a GENERATE request asks for 0 to 65535 characters, "
                                 f"not {self.n}")
        if any(not 0 <= int(c) <= 0xFF for c in self.prompt):
            raise ClockpropError("prompt character ids must be in [0, 255]")
        if self.shift is None:
            mode, shift, seed = 0, 0, 0
        else:
            if not 0 <= self.shift <= 0xFF or not 1 <= self.seed <= 0xFFFF:
                raise ClockpropError(f"shift {self.shift} or seed {self.seed} out of range")
            mode, shift, seed = 1, self.shift, self.seed
        return (bytes([mode, shift]) + seed.to_bytes(2, "little") +
                self.n.to_bytes(2, "little") + bytes(int(c) for c in self.prompt))

    @classmethod
    def decode(cls, payload):
        if len(payload) <= cls.HEADER or payload[0] > 1:
            raise ClockpropError(f"malformed GENERATE payload of {len(payload)} bytes")
        seed = int.from_bytes(payload[2:4], "little")
        return cls(tuple(payload[cls.HEADER:]), int.from_bytes(payload[4:6], "little"),
                   payload[1] if payload[0] else None, seed if payload[0] else 0xACE1)


@dataclass(frozen=True)
class GenerateStreamsRequest:
    """``GENERATE`` payload to a board of several streams: one prompt per stream, ``n``
    characters each, one output stage (``shift``, ``seed`` as :class:`GenerateRequest`).

    The header is :class:`GenerateRequest`'s with :data:`STREAMS_FLAG` added to the mode;
    each prompt follows as its length (u8, 1 to 255) and its character ids.
    """
    prompts: tuple              # of tuples of character ids
    n: int
    shift: int = None
    seed: int = 0xACE1

    HEADER = GenerateRequest.HEADER
    STREAMS_FLAG = 0x10

    def encode(self):
        if not self.prompts:
            raise ClockpropError("no prompt; give one per stream (at least one)")
        if any(not 1 <= len(p) <= 0xFF for p in self.prompts):
            raise ClockpropError("each prompt of a GENERATE request to several streams has 1 "
                                 "to 255 characters")
        head = GenerateRequest(tuple(self.prompts[0]), self.n, self.shift, self.seed).encode()
        body = b"".join(bytes([len(p)]) + bytes(int(c) for c in p) for p in self.prompts)
        for p in self.prompts:
            GenerateRequest(tuple(p), self.n).encode()          # the ids' own check
        return bytes([head[0] | self.STREAMS_FLAG]) + head[1:self.HEADER] + body

    @classmethod
    def decode(cls, payload):
        if len(payload) <= cls.HEADER or payload[0] & ~1 != cls.STREAMS_FLAG:
            raise ClockpropError(f"malformed GENERATE (streams) payload of {len(payload)} "
                                 f"bytes")
        base = GenerateRequest.decode(bytes([payload[0] & 1]) + payload[1:cls.HEADER] + b"\0")
        prompts, k = [], cls.HEADER
        while k < len(payload):
            length = payload[k]
            if not length or k + 1 + length > len(payload):
                raise ClockpropError("malformed GENERATE (streams) payload: a prompt's length "
                                     "does not match the bytes")
            prompts.append(tuple(payload[k + 1:k + 1 + length]))
            k += 1 + length
        return cls(tuple(prompts), base.n, base.shift, base.seed)


@dataclass(frozen=True)
class TextReply:
    """``TEXT`` payload: the board's cycle counts and the generated text."""
    prime_cycles: int           # first prompt character into the core .. last, inclusive
    gen_cycles: int             # first generated character out of the core .. last, inclusive
    text: str

    HEADER = 8

    def encode(self):
        return (self.prime_cycles.to_bytes(4, "little") + self.gen_cycles.to_bytes(4, "little")
                + self.text.encode("utf-8"))

    @classmethod
    def decode(cls, payload):
        if len(payload) < cls.HEADER:
            raise ClockpropError(f"TEXT payload of {len(payload)} bytes is shorter than its "
                                 f"{cls.HEADER}-byte header")
        try:
            text = bytes(payload[cls.HEADER:]).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ClockpropError(f"the board sent text that is not valid UTF-8 ({e})") from None
        return cls(int.from_bytes(payload[0:4], "little"),
                   int.from_bytes(payload[4:8], "little"), text)

    @property
    def chars_per_clock(self):
        """Generated characters per clock of the generation (1.0 for the core)."""
        return len(self.text) / self.gen_cycles if self.gen_cycles else float("nan")


# On-chip training (the training top, ``boards/train_top.py``) -------------------------------

WEIGHTS_CHUNK = 32          # weights per ``WEIGHTS`` frame


def encode_train(label, lr, activations, bits):
    """``TRAIN`` payload: label (u8), lr (u8), then the activations bit-packed."""
    if not 0 <= int(label) <= 0xFF or not 0 <= int(lr) <= 0xFF:
        raise ClockpropError(f"TRAIN label {label} and lr {lr} must each fit in a byte")
    return bytes([int(label), int(lr)]) + pack_bits(activations, bits)


def encode_train_stored(lr, count):
    """``TRAIN_STORED`` payload: lr (u8), count (u16)."""
    if not 0 <= int(lr) <= 0xFF or not 1 <= int(count) <= 0xFFFF:
        raise ClockpropError(f"TRAIN_STORED takes an lr in 0..255 and a count in 1..65535, "
                             f"got {lr}, {count}")
    return bytes([int(lr)]) + int(count).to_bytes(2, "little")


def decode_weights(payload):
    """``WEIGHTS`` payload: ``(first index, list of signed 16-bit weights)``."""
    if len(payload) < 2 or len(payload) % 2:
        raise ClockpropError(f"WEIGHTS frame with {len(payload)} payload bytes: want 2, then "
                             f"2 per weight")
    start = int.from_bytes(payload[:2], "little")
    return start, unpack_bits(payload[2:], 16, (len(payload) - 2) // 2, signed=True)


@dataclass(frozen=True)
class TrainAck:
    """``TRAIN_ACK`` payload: the board's step count, the correct classes of the request, the
    rounding LFSR's state, the last class and flags (bit 0: a sample was refused)."""
    steps: int
    correct: int
    lfsr: int
    cls: int
    flags: int = 0

    SIZE = 12

    @property
    def refused(self):
        return bool(self.flags & 1)

    def encode(self):
        return (self.steps.to_bytes(4, "little") + self.correct.to_bytes(4, "little") +
                self.lfsr.to_bytes(2, "little") + bytes([self.cls, self.flags]))

    @classmethod
    def decode(cls, payload):
        if len(payload) != cls.SIZE:
            raise ClockpropError(f"TRAIN_ACK payload must be {cls.SIZE} bytes, got "
                                 f"{len(payload)}")
        b = bytes(payload)
        return cls(int.from_bytes(b[0:4], "little"), int.from_bytes(b[4:8], "little"),
                   int.from_bytes(b[8:10], "little"), b[10], b[11])
