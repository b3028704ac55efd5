"""HTTP/2 framing (RFC 9113 section 4 and 6) for the gRPC transport's own client, with no I/O.

Writing: :func:`frame` and the few frames a client sends (:func:`settings`, :func:`window_update`,
:func:`rst_stream`, :func:`ping_ack`, :func:`header_frames` for a header block split into HEADERS and
CONTINUATION frames, :func:`data_frames` for a body split at the peer's frame size).

Reading: :class:`FrameDecoder` takes bytes as they come off a socket (:meth:`FrameDecoder.feed`, any split) and
hands back whole frames as :class:`Frame` tuples ``(type, flags, stream_id, payload)``, padding and priority
fields already stripped, a header block and its CONTINUATION frames joined into one HEADERS frame (its flags
those of the HEADERS frame, ``END_HEADERS`` set). A frame past the size limit, a CONTINUATION out of place or
padding longer than its frame is an :class:`H2ProtocolError` (the connection cannot be used any more).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

#: The connection preface a client sends first.
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20

SETTINGS_HEADER_TABLE_SIZE: Final = 0x1
SETTINGS_ENABLE_PUSH: Final = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS: Final = 0x3
SETTINGS_INITIAL_WINDOW_SIZE: Final = 0x4
SETTINGS_MAX_FRAME_SIZE: Final = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE: Final = 0x6

#: Error codes (section 7) the client sends or names.
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
ENHANCE_YOUR_CALM: Final = 0xB
INADEQUATE_SECURITY: Final = 0xC

#: Frame size every peer accepts (SETTINGS_MAX_FRAME_SIZE's initial value); the window every stream starts with.
DEFAULT_MAX_FRAME_SIZE: Final = 16_384
DEFAULT_WINDOW: Final = 65_535
MAX_WINDOW: Final = 2**31 - 1

_HEAD = struct.Struct(">I B I")  # 24-bit length in the top of the first word (shifted), type, flags, stream
_PACK_HEAD = struct.Struct(">HBBBI")  # length high 16 bits, length low 8 bits, type, flags, stream id


class H2ProtocolError(Exception):
    """The peer broke the framing: the connection is finished."""


class Frame(NamedTuple):
    type: int
    flags: int
    stream_id: int
    payload: bytes


def frame(type_: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame on the wire."""
    length = len(payload)
    return _PACK_HEAD.pack(length >> 8, length & 0xFF, type_, flags, stream_id & MAX_WINDOW) + payload


def settings(pairs: dict[int, int]) -> bytes:
    """A SETTINGS frame carrying ``pairs`` (identifier: value)."""
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs.items()))


def settings_ack() -> bytes:
    return frame(SETTINGS, ACK, 0)


def ping_ack(opaque: bytes) -> bytes:
    """The answer to a PING: its 8 bytes back, with ACK."""
    return frame(PING, ACK, 0, opaque)


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment & MAX_WINDOW))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def header_frames(stream_id: int, block: bytes, max_frame_size: int, *, end_stream: bool = False) -> bytes:
    """A header block as one HEADERS frame and as many CONTINUATION frames as ``max_frame_size`` needs."""
    first, rest = block[:max_frame_size], block[max_frame_size:]
    flags = END_STREAM if end_stream else 0
    if not rest:
        return frame(HEADERS, flags | END_HEADERS, stream_id, first)
    parts = [frame(HEADERS, flags, stream_id, first)]
    while rest:
        piece, rest = rest[:max_frame_size], rest[max_frame_size:]
        parts.append(frame(CONTINUATION, 0 if rest else END_HEADERS, stream_id, piece))
    return b"".join(parts)


def data_frames(stream_id: int, data: bytes, max_frame_size: int, *, end_stream: bool) -> bytes:
    """``data`` as DATA frames of at most ``max_frame_size`` bytes, the last one with END_STREAM if asked."""
    if len(data) <= max_frame_size:
        return frame(DATA, END_STREAM if end_stream else 0, stream_id, data)
    parts: list[bytes] = []
    for start in range(0, len(data), max_frame_size):
        piece = data[start : start + max_frame_size]
        last = start + max_frame_size >= len(data)
        parts.append(frame(DATA, END_STREAM if end_stream and last else 0, stream_id, piece))
    return b"".join(parts)


def parse_settings(payload: bytes) -> dict[int, int]:
    """The identifier: value pairs of a SETTINGS frame's payload."""
    if len(payload) % 6:
        raise H2ProtocolError("SETTINGS frame with a length that is not a multiple of 6")
    return {k: v for k, v in struct.iter_unpack(">HI", payload)}


def parse_u32(payload: bytes, what: str) -> int:
    """The 31- or 32-bit number a RST_STREAM or WINDOW_UPDATE frame carries."""
    if len(payload) != 4:
        raise H2ProtocolError(f"{what} frame of {len(payload)} bytes (4 expected)")
    value: int = struct.unpack(">I", payload)[0]
    return value


def parse_goaway(payload: bytes) -> tuple[int, int, bytes]:
    """(last stream id, error code, debug data) of a GOAWAY frame."""
    if len(payload) < 8:
        raise H2ProtocolError("GOAWAY frame shorter than 8 bytes")
    last, code = struct.unpack(">II", payload[:8])
    return last & MAX_WINDOW, code, payload[8:]


class FrameDecoder:
    """Whole frames out of bytes fed in any split (see the module's docstring). ``max_frame_size`` is what this
    side advertised (frames longer than that are refused)."""

    __slots__ = ("_block", "_block_head", "_buf", "flow_bytes", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buf = b""
        self.max_frame_size = max_frame_size
        self._block: list[bytes] | None = None  # a header block waiting for its CONTINUATION frames
        self._block_head: tuple[int, int] = (0, 0)  # its HEADERS frame's flags and stream
        #: bytes of every DATA frame read (padding included): what flow control counts
        self.flow_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held: the start of a frame not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Every frame ``data`` completed (with what was held before it), in order."""
        buf = self._buf + data if self._buf else data
        pos = 0
        end = len(buf)
        unpack = _HEAD.unpack_from
        limit = self.max_frame_size
        frames: list[Frame] = []
        try:
            while end - pos >= 9:
                word, flags, stream = unpack(buf, pos)
                length = word >> 8
                type_ = word & 0xFF
                if length > limit:
                    raise H2ProtocolError(f"frame of {length} bytes is larger than the {limit} allowed")
                stop = pos + 9 + length
                if stop > end:
                    break
                payload = buf[pos + 9 : stop]
                pos = stop
                stream &= MAX_WINDOW
                if type_ == DATA:
                    self.flow_bytes += length
                got = self._frame(type_, flags, stream, payload)
                if got is not None:
                    frames.append(got)
        finally:
            self._buf = buf[pos:] if pos else buf
        return frames

    def _frame(self, type_: int, flags: int, stream: int, payload: bytes) -> Frame | None:
        if self._block is not None:
            if type_ != CONTINUATION or stream != self._block_head[1]:
                raise H2ProtocolError("a header block was interrupted by another frame")
            self._block.append(payload)
            if not flags & END_HEADERS:
                return None
            block, self._block = b"".join(self._block), None
            head_flags, head_stream = self._block_head
            return Frame(HEADERS, head_flags | END_HEADERS, head_stream, block)
        if type_ == DATA:
            if flags & PADDED:
                payload = _unpad(payload)
            return Frame(DATA, flags, stream, payload)
        if type_ in (HEADERS, PUSH_PROMISE):
            if flags & PADDED:
                payload = _unpad(payload)
            if type_ == HEADERS and flags & PRIORITY_FLAG:
                if len(payload) < 5:
                    raise H2ProtocolError("HEADERS frame too short for its priority fields")
                payload = payload[5:]
            if not flags & END_HEADERS:
                self._block = [payload]
                self._block_head = (flags & ~(PADDED | PRIORITY_FLAG), stream)
                return None
            return Frame(type_, flags & ~(PADDED | PRIORITY_FLAG), stream, payload)
        if type_ == CONTINUATION:
            raise H2ProtocolError("CONTINUATION frame without a header block before it")
        return Frame(type_, flags, stream, payload)


def _unpad(payload: bytes) -> bytes:
    if not payload:
        raise H2ProtocolError("padded frame without its pad length")
    pad = payload[0]
    if pad >= len(payload):
        raise H2ProtocolError("padding longer than its frame")
    return payload[1 : len(payload) - pad]


__all__ = [
    "ACK",
    "CANCEL",
    "CONTINUATION",
    "DATA",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_WINDOW",
    "END_HEADERS",
    "END_STREAM",
    "ENHANCE_YOUR_CALM",
    "GOAWAY",
    "HEADERS",
    "INADEQUATE_SECURITY",
    "MAX_WINDOW",
    "PADDED",
    "PING",
    "PREFACE",
    "PRIORITY",
    "PRIORITY_FLAG",
    "PUSH_PROMISE",
    "REFUSED_STREAM",
    "RST_STREAM",
    "SETTINGS",
    "WINDOW_UPDATE",
    "Frame",
    "FrameDecoder",
    "H2ProtocolError",
    "data_frames",
    "frame",
    "header_frames",
    "parse_goaway",
    "parse_settings",
    "parse_u32",
    "ping_ack",
    "rst_stream",
    "settings",
    "settings_ack",
    "window_update",
]
