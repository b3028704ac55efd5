"""Reading the ``reply:`` block of an adapter file into a :class:`~loadgen.adapters.spec.ReplySpec`, every problem
named by file, line and field (the rest of the file is :mod:`loadgen.adapters.loader`).

Keys, by protocol and format (see README.md, "Testing your own service")::

    format: ndjson              # REST only: json | sse | ndjson | text (default json)
    text: message.content       # where the text is: the whole reply (json), each chunk's piece (the others)
    join: ""                    # texts a [*] path finds are joined with this (default: nothing between them)
    events: [content_block_delta]   # sse: only these events carry text (default: every event)
    end: {field: done}          # what marks the last piece: {field: PATH} (ndjson, sse, amqp),
                                #   {event: NAME} or {data: "[DONE]"} (sse); default: the end of the body
    error: {field: error.message, code: error.type, event: error, kinds: {overloaded_error: overloaded}}
    usage: {prompt_tokens: PATH, completion_tokens: PATH}
    tokens: PATH                # how many tokens one chunk carries
    chunked: true               # amqp: several reply messages, the last one marked by `end` (false: one message)
    seq: PATH                   # amqp: a counter from 0 on each reply message
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from yaml.nodes import MappingNode, Node, SequenceNode

from loadgen.adapters.node_checks import AdapterNodes
from loadgen.adapters.paths import Path
from loadgen.adapters.spec import EndSpec, ErrorSpec, Format, Protocol, ReplySpec
from loadgen.wire.status import Failure

_COMMON: Final = ("text", "join", "error", "usage", "tokens")
#: The keys each protocol's reply may have, and (REST) each format.
REPLY_KEYS: Final = {
    Protocol.REST: ("format", "text", "join", "events", "end", "error", "usage", "tokens"),
    Protocol.GRPC: ("text", "join", "usage", "tokens"),
    Protocol.AMQP: ("chunked", "text", "join", "end", "error", "usage", "tokens", "seq"),
}
FORMAT_KEYS: Final = {
    Format.JSON: ("format", "text", "join", "error", "usage"),
    Format.SSE: ("format", *_COMMON, "events", "end"),
    Format.NDJSON: ("format", *_COMMON, "end"),
    Format.TEXT: ("format",),
}
#: Which end markers each reply may use.
END_KEYS: Final = {Format.SSE: ("field", "event", "data"), Format.NDJSON: ("field",), "amqp": ("field",)}
USAGE_KEYS: Final = ("prompt_tokens", "completion_tokens")
ERROR_KEYS: Final = ("field", "code", "event", "kinds")
FAILURES: Final = tuple(f.value for f in Failure)


@dataclass
class ReplyChecks(AdapterNodes):
    """The ``reply:`` checks, mixed into the adapter file's reader."""

    def reply(self, node: Node, path: str, protocol: Protocol) -> ReplySpec | None:
        entries = self.mapping(node, path, REPLY_KEYS[protocol], "a mapping such as {format: ndjson, text: PATH}")
        if not isinstance(node, MappingNode):
            return None
        before = len(self.problems)
        fmt = self._format(entries, path) if protocol is Protocol.REST else Format.JSON
        if fmt is None:
            return None
        if protocol is Protocol.REST:
            for key, (key_node, _) in entries.items():
                if key not in FORMAT_KEYS[fmt]:
                    self.problem(key_node, f"{path}.{key}", f"is not used with format {fmt}; leave it out")
        chunked = self._flag(entries, "chunked", path, default=True)
        text = self._text_path(node, entries, path, needed=fmt is not Format.TEXT)
        end = self._end(entries, path, "amqp" if protocol is Protocol.AMQP else fmt)
        usage = self._usage(entries, path)
        if protocol is Protocol.AMQP and chunked and end is None and "end" not in entries:
            where = self._keys.get(id(node), node)
            self.problem(where, f"{path}.end", "is missing; chunked replies need {field: PATH} marking the last one")
        spec = ReplySpec(
            format=fmt,
            text=text,
            join=self._join(entries, path),
            events=self._events(entries, path),
            end=end,
            error=self._error(entries, path, fmt),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            tokens=self._path_of(entries, "tokens", path),
            chunked=chunked,
            seq=self._path_of(entries, "seq", path),
        )
        return spec if len(self.problems) == before else None

    def _format(self, entries: dict[str, tuple[Node, Node]], path: str) -> Format | None:
        if "format" not in entries:
            return Format.JSON
        node = entries["format"][1]
        value = self.text(node, f"{path}.format", what=f"one of {', '.join(Format)}")
        if value is None:
            return None
        try:
            return Format(value)
        except ValueError:
            self.problem(node, f"{path}.format", f"unknown format {value!r}; expected one of {', '.join(Format)}")
            return None

    def _path_of(self, entries: dict[str, tuple[Node, Node]], key: str, path: str) -> Path | None:
        return self.parse(entries[key][1], f"{path}.{key}") if key in entries else None

    def _text_path(self, node: Node, entries: dict[str, tuple[Node, Node]], path: str, *, needed: bool) -> Path | None:
        if "text" not in entries:
            if needed:
                where = self._keys.get(id(node), node)
                self.problem(where, f"{path}.text", "is missing; expected the path to the reply's text")
            return None
        return self._path_of(entries, "text", path)

    def _flag(self, entries: dict[str, tuple[Node, Node]], key: str, path: str, *, default: bool) -> bool:
        if key not in entries:
            return default
        node = entries[key][1]
        value = self.scalar(node)
        if not isinstance(value, bool):
            self.problem(node, f"{path}.{key}", f"is {self.describe_node(node)}; expected true or false")
            return default
        return value

    def _join(self, entries: dict[str, tuple[Node, Node]], path: str) -> str:
        if "join" not in entries:
            return ""
        value = self.text(entries["join"][1], f"{path}.join", what='text (e.g. "\\n")')
        return value or ""

    def _events(self, entries: dict[str, tuple[Node, Node]], path: str) -> frozenset[str] | None:
        if "events" not in entries:
            return None
        node = entries["events"][1]
        if not isinstance(node, SequenceNode) or not node.value:
            self.problem(node, f"{path}.events", f"is {self.describe_node(node)}; expected a list of event names")
            return None
        names = [self.text(item, f"{path}.events", what="an event name") for item in node.value]
        return frozenset(n for n in names if n)

    def _end(self, entries: dict[str, tuple[Node, Node]], path: str, kind: Format | str) -> EndSpec | None:
        if "end" not in entries:
            return None
        allowed = END_KEYS.get(kind, ())
        sub = f"{path}.end"
        node = entries["end"][1]
        marks = self.mapping(node, sub, allowed, f"one of {{{': ..., '.join(allowed)}: ...}}")
        if len(marks) != 1:
            if marks:
                self.problem(node, sub, f"gives {len(marks)} end markers; give one of {', '.join(allowed)}")
            return None
        key, (_, value_node) = next(iter(marks.items()))
        if key == "field":
            field = self.parse(value_node, f"{sub}.field")
            return EndSpec(field=field) if field is not None else None
        value = self.text(value_node, f"{sub}.{key}", what="an event name" if key == "event" else "the data text")
        if not value:
            return None
        return EndSpec(event=value) if key == "event" else EndSpec(data=value)

    def _error(self, entries: dict[str, tuple[Node, Node]], path: str, fmt: Format) -> ErrorSpec | None:
        if "error" not in entries:
            return None
        sub = f"{path}.error"
        node = entries["error"][1]
        keys = ERROR_KEYS if fmt is Format.SSE else tuple(k for k in ERROR_KEYS if k != "event")
        fields = self.mapping(node, sub, keys, "a mapping such as {field: error.message, code: error.code}")
        if "field" not in fields and "event" not in fields:
            if fields:
                self.problem(node, sub, "needs `field:` (where an error's message is) or `event:` (sse)")
            return None
        event = self.text(fields["event"][1], f"{sub}.event", what="an event name") if "event" in fields else None
        kinds = self._kinds(fields["kinds"][1], f"{sub}.kinds") if "kinds" in fields else {}
        return ErrorSpec(
            field=self._path_of(fields, "field", sub),
            code=self._path_of(fields, "code", sub),
            event=event,
            kinds=MappingProxyType(kinds),
        )

    def _kinds(self, node: Node, path: str) -> dict[str, Failure]:
        out: dict[str, Failure] = {}
        for code, (_, value_node) in self.mapping(node, path, None, "a mapping of error code -> failure").items():
            value = self.text(value_node, f"{path}.{code}", what=f"one of {', '.join(FAILURES)}")
            if value is None:
                continue
            if value not in FAILURES:
                self.problem(value_node, f"{path}.{code}", f"unknown failure {value!r}; expected one of "
                             f"{', '.join(FAILURES)}")  # fmt: skip
                continue
            out[code] = Failure(value)
        return out

    def _usage(self, entries: dict[str, tuple[Node, Node]], path: str) -> dict[str, Path]:
        if "usage" not in entries:
            return {}
        sub = f"{path}.usage"
        fields = self.mapping(entries["usage"][1], sub, USAGE_KEYS, "{prompt_tokens: PATH, completion_tokens: PATH}")
        if "prompt_tokens" in fields and "completion_tokens" not in fields:
            self.problem(entries["usage"][1], sub, "prompt_tokens needs completion_tokens (a prompt count alone is "
                         "not kept)")  # fmt: skip
        return {name: p for name in fields if (p := self._path_of(fields, name, sub)) is not None}


__all__ = ["END_KEYS", "ERROR_KEYS", "FORMAT_KEYS", "REPLY_KEYS", "USAGE_KEYS", "ReplyChecks"]
