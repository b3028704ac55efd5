"""Declarative adapters: point the tool at a chat API that is neither OpenAI's nor ours, with a YAML file, no code.

An adapter file (``--adapter FILE``, or ``--adapter NAME`` for a shipped profile in ``scenarios/adapters/``;
``loadgen adapters check FILE`` checks one) says which protocol the target speaks (REST, gRPC or AMQP), how one
turn's request is written (templates with ``{message}``, ``{history}``, ``{session_id}``, ``{max_tokens}``...:
:mod:`loadgen.adapters.template`) and where the reply's text, end, errors and token counts are (a small path
language: :mod:`loadgen.adapters.paths`; the reading: :mod:`loadgen.adapters.decode`). The file format is in
:mod:`loadgen.adapters.loader` and :mod:`loadgen.adapters.reply_checks`, and in README.md ("Testing your own
service").

Each protocol's adapter runs on a transport of its own (``adapter-rest``, ``adapter-grpc``, ``adapter-amqp`` in
:mod:`loadgen.transports`), the built-in transport of that protocol with the adapter's request and reply in place
of ours: the same connections, timing, deadlines and error table, so a turn over an adapter is one Locust event
with the same metrics (TTFT = the first non-empty text, ITL per chunk), retention checks on the decoded text and
failure kinds as the status table maps them. A bad adapter stops the run before any user starts, with one line.
"""

from __future__ import annotations

from loadgen.adapters.loader import AdapterError, adapter_file, load_adapter, shipped_profiles
from loadgen.adapters.run import AdapterConfig, adapter_of, adapter_option, resolve_transport, with_adapter
from loadgen.adapters.spec import PROTOCOL_TRANSPORTS, Adapter, Format, Protocol

__all__ = [
    "PROTOCOL_TRANSPORTS",
    "Adapter",
    "AdapterConfig",
    "AdapterError",
    "Format",
    "Protocol",
    "adapter_file",
    "adapter_of",
    "adapter_option",
    "load_adapter",
    "resolve_transport",
    "shipped_profiles",
    "with_adapter",
]
