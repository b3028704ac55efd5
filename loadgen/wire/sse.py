"""Server-Sent Events: the framing of the REST stream, both ways, with no I/O.

Reading (the REST transport): :class:`LineSplitter` cuts the raw bytes into lines (``\n``, ``\r\n`` or
``\r``, split anywhere, even between a ``\r`` and its ``\n``); :class:`SSEParser` follows the WHATWG
event-stream rules: ``field: value`` lines, one optional space after the colon, ``data:`` lines joined with
``\n``, ``:`` comments ignored, an event dispatched on a blank line, an unfinished event at the end of the stream
dropped. Neither keeps any timing: the caller stamps each piece when it arrives, before any parsing. A line
with no end past :attr:`LineSplitter.MAX_LINE_BYTES` is a :class:`~loadgen.errors.ProtocolError`.

Writing (the REST front): :func:`encode_event` frames one event; :data:`DATA_FRAME` is the bytes before and after
the data of a plain ``data:`` event, for encoders that pre-encode their pieces (:mod:`loadgen.wire.openai`).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from loadgen.errors import ProtocolError

#: The media type of an event stream.
CONTENT_TYPE: Final = "text/event-stream"
#: What stands before and after the data of an event with one ``data:`` line and no name.
DATA_FRAME: Final = (b"data: ", b"\n\n")


class SSEEvent(NamedTuple):
    """One dispatched event. ``event`` is ``"message"`` when the stream named none."""

    data: str
    event: str = "message"
    id: str | None = None
    retry_ms: int | None = None


class LineSplitter:
    """Cuts a byte stream into lines at ``\\n``, ``\\r\\n`` or ``\\r`` (the event-stream line ends), across
    pieces that split anywhere, even between a ``\\r`` and its ``\\n``. Lines come out without their ends.

    Linear in the bytes fed, however long a line: the unfinished line is kept as a list of pieces and only each
    new piece is scanned for a line end; the pieces are joined once, when the line ends."""

    __slots__ = ("_after_cr", "_parts", "_size")

    #: A line longer than this (no line end in sight) is a protocol error, not a reason to grow without end.
    MAX_LINE_BYTES = 16 * 1024 * 1024

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # the unfinished line, as it came
        self._size = 0
        self._after_cr = False

    def feed(self, piece: bytes) -> list[bytes]:
        if self._after_cr:
            self._after_cr = False
            if piece.startswith(b"\n"):
                piece = piece[1:]  # the \n of a \r\n cut in two
        if not piece:
            return []
        parts = self._parts
        if parts:
            if b"\n" not in piece and b"\r" not in piece:  # the line goes on: keep the piece, scan nothing old
                parts.append(piece)
                self._size += len(piece)
                self._check(self._size)
                return []
            parts.append(piece)
            data = b"".join(parts)  # once per line end: linear
            parts.clear()
            self._size = 0
        else:
            data = piece
        lines = data.splitlines()  # bytes split at \n, \r\n and \r only
        last = data[-1]
        if last == 13:  # \r: its \n may open the next piece
            self._after_cr = True
        elif last != 10:  # no line end: the last line is unfinished
            partial = lines.pop()
            self._check(len(partial))
            parts.append(partial)
            self._size = len(partial)
        return lines

    def _check(self, size: int) -> None:
        if size > self.MAX_LINE_BYTES:
            raise ProtocolError(f"an event-stream line ran past {self.MAX_LINE_BYTES // (1024 * 1024)} MiB")


class SSEParser:
    """Incremental event-stream parser: feed it one line at a time (with or without its line ending)."""

    __slots__ = ("_data", "_event", "_last_id", "_retry_ms", "_started")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        self._retry_ms: int | None = None
        self._started = False

    @property
    def idle(self) -> bool:
        """True between events once the stream has started: no data, no event name held."""
        return self._started and not self._data and not self._event

    @property
    def pending(self) -> bool:
        """True while an event has data lines but no blank line has dispatched it yet."""
        return bool(self._data)

    def feed_line(self, line: str) -> SSEEvent | None:
        """Take one line; return the event it completes (a blank line after data), else ``None``."""
        if line.startswith("data: ") and self._started and not line.endswith(("\n", "\r")):
            self._data.append(line[6:])  # the hot path: one per streamed token
            return None
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
        if not self._started:
            self._started = True
            if line.startswith("\ufeff"):
                line = line[1:]
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry_ms = int(value)
        # any other field name is ignored, as the standard says
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
        event = SSEEvent(data, self._event or "message", self._last_id, self._retry_ms)
        self._data = []
        self._event = ""
        return event


def encode_event(data: str, *, event: str | None = None) -> bytes:
    """One event: an ``event:`` line when named, one ``data:`` line per line of ``data``, then a blank line.

    :class:`SSEParser` gives back ``SSEEvent(data, event or "message")`` (line ends in ``data`` read as ``\n``).
    """
    if event is not None and ("\n" in event or "\r" in event):
        raise ValueError("an event name is one line")
    head = f"event: {event}\n" if event is not None else ""
    lines = "".join(f"data: {line}\n" for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return (head + lines + "\n").encode()


__all__ = ["CONTENT_TYPE", "DATA_FRAME", "LineSplitter", "SSEEvent", "SSEParser", "encode_event"]
