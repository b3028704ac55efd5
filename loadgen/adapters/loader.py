"""Read and check an adapter file (YAML): every problem named by file, line and field, before any load starts.

:func:`load_adapter` takes a file, or the name of a shipped profile (``openai``, ``ollama``, ``anthropic``,
``rasa-rest``, ``example-grpc``: the files in ``scenarios/adapters/``), and gives an
:class:`~loadgen.adapters.spec.Adapter` or raises :class:`AdapterError` (a :class:`~loadgen.errors.ConfigError`
whose ``problems`` read ``FILE:LINE: field `reply.text`: what is wrong; what is expected``). Line numbers come
from PyYAML's node tree (:mod:`loadgen.dialogues.yaml_nodes`). The ``reply:`` block is read by
:mod:`loadgen.adapters.reply_checks`; a gRPC adapter's ``.proto`` is compiled and its method, request template and
reply paths are checked against it here (:mod:`loadgen.adapters.grpc_checks`).

File format (README.md, "Testing your own service")::

    name: ollama                    # letters, digits, '-', '_', '.'
    description: ...                # optional
    protocol: rest                  # rest | grpc | amqp
    history:                        # optional: how {history} is written, and the history mode the API needs
      mode: server                  #   the run must use --history server (or client)
      item: {role: "{role}", content: "{content}"}    # each message (this is the default)
      roles: {assistant: bot, system: null}           # rename roles; null leaves that role's messages out
    request:
      # rest: method (default POST), path, headers, body, body_whole (the body of a --no-stream request)
      # grpc: method (package.Service/Method), proto (a file, relative to this one) or reflection: true,
      #       include (import folders), metadata, body (the request message in protobuf's JSON form)
      # amqp: exchange (default ""), routing_key (the request queue with the default exchange), headers, body
    reply: {...}                    # see loadgen.adapters.reply_checks
    reply_whole: {...}              # rest only: the reply of a --no-stream run, when it differs
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from yaml.nodes import MappingNode, Node, ScalarNode

from loadgen.adapters.grpc_checks import GRPC_KEYS, GrpcChecks
from loadgen.adapters.spec import Adapter, AmqpRequest, HistoryShape, Protocol, RestRequest
from loadgen.adapters.template import ITEM_NAMES, TURN_NAMES, mapping_template, text_template
from loadgen.dialogues.model import Problem
from loadgen.dialogues.yaml_nodes import MISSING, read_root
from loadgen.errors import ConfigError
from loadgen.types import HistoryMode

SUFFIXES: Final = (".yaml", ".yml")
#: Where the shipped profiles are, relative to the working directory or to the folder above the package.
PROFILES_DIR: Final = Path("scenarios") / "adapters"
TOP_KEYS: Final = ("name", "description", "protocol", "history", "request", "reply", "reply_whole")
REQUEST_KEYS: Final = {
    Protocol.REST: ("method", "path", "headers", "body", "body_whole"),
    Protocol.GRPC: GRPC_KEYS,
    Protocol.AMQP: ("exchange", "routing_key", "headers", "body"),
}
HISTORY_KEYS: Final = ("mode", "item", "roles")
METHODS: Final = ("POST", "PUT", "PATCH", "GET")
NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_ITEM: Final = mapping_template([("role", text_template("{role}", ITEM_NAMES)),
                                        ("content", text_template("{content}", ITEM_NAMES))])  # fmt: skip


class AdapterError(ConfigError):
    """One or more problems in an adapter file; ``str()`` gives them one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.format() for p in problems))

    def first_line(self) -> str:
        """The first problem, and how many more (what a run prints: one line)."""
        more = len(self.problems) - 1
        tail = f" (and {more} more: run `loadgen adapters check {self.problems[0].file}`)" if more else ""
        return self.problems[0].format() + tail


def profiles_dirs() -> list[Path]:
    """Where shipped profiles are looked for: ``./scenarios/adapters``, then the one beside the package."""
    return [Path.cwd() / PROFILES_DIR, Path(__file__).resolve().parents[2] / PROFILES_DIR]


def shipped_profiles() -> dict[str, Path]:
    """Profile name -> file, for every shipped profile (the first folder that has a name wins)."""
    found: dict[str, Path] = {}
    for folder in reversed(profiles_dirs()):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.iterdir()) if p.suffix in SUFFIXES})
    return dict(sorted(found.items()))


def adapter_file(ref: str) -> Path:
    """The file ``ref`` names: a path, or a shipped profile's name (:class:`ConfigError` for neither)."""
    path = Path(ref)
    if path.suffix in SUFFIXES or path.exists() or "/" in ref:
        return path
    profiles = shipped_profiles()
    if ref in profiles:
        return profiles[ref]
    raise ConfigError(f"--adapter {ref!r}: no such file, and no shipped profile of that name "
                      f"(shipped: {', '.join(profiles) or 'none'})")  # fmt: skip


def load_adapter(ref: str) -> Adapter:
    """The adapter in a file, or a shipped profile by name (:class:`AdapterError` listing every problem)."""
    path = adapter_file(ref)
    problems: list[Problem] = []
    if not path.is_file():
        raise AdapterError([Problem(str(path), None, "", "no such file; expected an adapter .yaml file")])
    read = read_root(str(path), problems)
    if read is None:
        raise AdapterError([_for_adapters(p) for p in problems])
    loader, root = read
    reader = _AdapterReader(str(path), loader, "", base_dir=path.parent)
    try:
        adapter = reader.read(root)
    finally:
        loader.dispose()
    if reader.problems or adapter is None:
        problems = sorted(reader.problems, key=lambda p: p.line or 0)  # stable: the order found on each line
        raise AdapterError(problems or [Problem(str(path), None, "", "is not a valid adapter")])
    return adapter


def _for_adapters(problem: Problem) -> Problem:
    if problem.message.startswith("is empty"):
        return Problem(problem.file, problem.line, "", "is empty; expected a mapping with `name:`, `protocol:`, "
                       "`request:` and `reply:`")  # fmt: skip
    return problem


@dataclass
class _AdapterReader(GrpcChecks):
    """Walks one adapter file's node tree, collecting problems."""

    def read(self, root: Node) -> Adapter | None:
        top = self.mapping(root, "", TOP_KEYS, "a mapping with `name:`, `protocol:`, `request:` and `reply:`")
        if not isinstance(root, MappingNode):
            return None
        name = self._name(root, top)
        protocol = self._protocol(root, top)
        description = self.text(top["description"][1], "description") if "description" in top else ""
        history = self._history(top["history"][1]) if "history" in top else HistoryShape(DEFAULT_ITEM, {})
        if protocol is None:
            return None
        request = self.required(root, top, "request", "a mapping with the request's fields")
        reply = self.required(root, top, "reply", "a mapping saying where the reply's text is")
        if "reply_whole" in top and protocol is not Protocol.REST:
            self.problem(top["reply_whole"][0], "reply_whole", "is for rest adapters only; leave it out")
        if request is None or reply is None or name is None or history is None:
            return None
        parts: dict[str, Any] = {}
        if protocol is Protocol.REST:
            parts["rest"] = self._rest(request, reply, top.get("reply_whole"))
        elif protocol is Protocol.GRPC:
            parts["grpc"] = self.grpc_request(request, reply, history)
        else:
            parts["amqp"] = self._amqp(request, reply)
        if self.problems or None in parts.values():
            return None
        return Adapter(name, self.path, protocol, history, description=description or "", **parts)

    def _name(self, root: Node, top: dict[str, tuple[Node, Node]]) -> str | None:
        node = self.required(root, top, "name", "the adapter's name")
        value = None if node is None else self.text(node, "name", what="a name")
        if node is not None and value is not None and not NAME_RE.match(value):
            self.problem(node, "name", f"{value!r} is not a name; use letters, digits, '-', '_' and '.'")
            return None
        return value

    def _protocol(self, root: Node, top: dict[str, tuple[Node, Node]]) -> Protocol | None:
        node = self.required(root, top, "protocol", f"one of {', '.join(Protocol)}")
        value = None if node is None else self.text(node, "protocol", what=f"one of {', '.join(Protocol)}")
        if node is None or value is None:
            return None
        if value not in tuple(Protocol):
            self.problem(node, "protocol", f"unknown protocol {value!r}; expected one of {', '.join(Protocol)}")
            return None
        return Protocol(value)

    def _history(self, node: Node) -> HistoryShape | None:
        entries = self.mapping(node, "history", HISTORY_KEYS, "a mapping with mode, item or roles")
        before = len(self.problems)
        mode: HistoryMode | None = None
        if "mode" in entries:
            value = self.text(entries["mode"][1], "history.mode", what="client or server")
            if value is not None and value not in tuple(HistoryMode):
                self.problem(entries["mode"][1], "history.mode", f"{value!r}: expected client or server")
            elif value is not None:
                mode = HistoryMode(value)
        item = self.template(entries["item"][1], "history.item", ITEM_NAMES) if "item" in entries else DEFAULT_ITEM
        roles: dict[str, str | None] = {}
        if "roles" in entries:
            for role, (_, value_node) in self.mapping(entries["roles"][1], "history.roles", None, "a mapping").items():
                value = self.scalar(value_node) if isinstance(value_node, ScalarNode) else MISSING
                if value is not None and not isinstance(value, str):
                    self.problem(value_node, f"history.roles.{role}", "expected the role's new name, or null")
                    continue
                roles[role] = value
        if item is None or len(self.problems) != before:
            return None
        return HistoryShape(item, MappingProxyType(roles), mode)

    # -- the protocols ---------------------------------------------------------------------------------------------

    def _rest(self, request: Node, reply: Node, reply_whole: tuple[Node, Node] | None) -> RestRequest | None:
        entries = self.mapping(request, "request", REQUEST_KEYS[Protocol.REST], "a mapping with path:, body: ...")
        method = "POST"
        if "method" in entries:
            method = (self.text(entries["method"][1], "request.method", what="an HTTP method") or "").upper()
            if method not in METHODS:
                self.problem(entries["method"][1], "request.method", f"expected one of {', '.join(METHODS)}")
        path_node = self.required(request, entries, "path", "the path under the target, e.g. /api/chat", "request")
        path_text = self.text(path_node, "request.path", what="a path") if path_node is not None else None
        path = None
        if path_node is not None and path_text is not None:
            path = self.template(path_node, "request.path", TURN_NAMES, escape=True)
        if path_node is not None and path_text is not None and not path_text.startswith("/"):
            self.problem(path_node, "request.path", f"{path_text!r} must start with /")
        headers = self.headers(entries["headers"][1], "request.headers") if "headers" in entries else ()
        body = self.template(entries["body"][1], "request.body", TURN_NAMES) if "body" in entries else None
        whole = self.template(entries["body_whole"][1], "request.body_whole", TURN_NAMES) if (
            "body_whole" in entries) else None  # fmt: skip
        for key in ("body", "body_whole"):
            if method == "GET" and key in entries:
                self.problem(entries[key][0], f"request.{key}", "a GET request has no body; put values in the path")
        spec = self.reply(reply, "reply", Protocol.REST)
        spec_whole = self.reply(reply_whole[1], "reply_whole", Protocol.REST) if reply_whole is not None else None
        if path is None or path_text is None or headers is None or spec is None or self.problems:
            return None
        return RestRequest(method, path, path_text, headers, body, spec, spec_whole, body_whole=whole)

    def _amqp(self, request: Node, reply: Node) -> AmqpRequest | None:
        entries = self.mapping(request, "request", REQUEST_KEYS[Protocol.AMQP], "a mapping with routing_key:, body:")
        exchange = self.text(entries["exchange"][1], "request.exchange", what="an exchange name") if (
            "exchange" in entries) else ""  # fmt: skip
        key_node = self.required(request, entries, "routing_key", "the request queue (or a routing key)", "request")
        routing_key = self.text(key_node, "request.routing_key", what="a routing key") if key_node else None
        if key_node is not None and routing_key is not None and not 0 < len(routing_key.encode()) <= 255:
            self.problem(key_node, "request.routing_key", "expected 1 to 255 bytes")
        headers = self.headers(entries["headers"][1], "request.headers") if "headers" in entries else ()
        body_node = self.required(request, entries, "body", "the request message (a mapping)", "request")
        body = self.template(body_node, "request.body", TURN_NAMES) if body_node is not None else None
        spec = self.reply(reply, "reply", Protocol.AMQP)
        if routing_key is None or exchange is None or headers is None or body is None or spec is None:
            return None
        return AmqpRequest(routing_key, body, headers, spec, exchange=exchange)


__all__ = ["PROFILES_DIR", "AdapterError", "adapter_file", "load_adapter", "profiles_dirs", "shipped_profiles"]
