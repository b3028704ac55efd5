"""Command-line options (through Locust's own parser) and their validated form."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import ConfigError
from loadgen.transports import TRANSPORTS
from loadgen.types import HistoryMode

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def add_arguments(parser: Any) -> None:
    """Register our options on Locust's parser (``init_command_line_parser``)."""
    group = parser.add_argument_group("chat-loadgen", "Conversational load: dialogues, transport, metrics")
    group.add_argument(
        "--transport",
        choices=sorted(TRANSPORTS),
        default="rest",
        env_var="LOADGEN_TRANSPORT",
        help="wire protocol to the chat service (default rest)",
    )
    group.add_argument(
        "--dialogues",
        default="scenarios/dialogues",
        env_var="LOADGEN_DIALOGUES",
        help="dialogue scripts: files or folders, comma-separated (default scenarios/dialogues)",
    )
    group.add_argument(
        "--history",
        choices=[m.value for m in HistoryMode],
        default="client",
        env_var="LOADGEN_HISTORY",
        help="client: send the whole history every turn; server: session id + new message only",
    )
    group.add_argument(
        "--think-min",
        type=float,
        default=None,
        env_var="LOADGEN_THINK_MIN",
        help="override every dialogue's minimum think time between turns (s)",
    )
    group.add_argument(
        "--think-max",
        type=float,
        default=None,
        env_var="LOADGEN_THINK_MAX",
        help="override every dialogue's maximum think time between turns (s)",
    )
    group.add_argument(
        "--no-stream",
        action="store_true",
        default=False,
        env_var="LOADGEN_NO_STREAM",
        help="ask for whole replies instead of streamed tokens (no TTFT/ITL then)",
    )
    group.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        env_var="LOADGEN_MAX_TOKENS",
        help="override the reply length asked for in every turn",
    )
    group.add_argument(
        "--model",
        default="loadgen-sim",
        env_var="LOADGEN_MODEL",
        help="model name sent with each request (default loadgen-sim)",
    )
    group.add_argument(
        "--turn-timeout",
        type=float,
        default=60.0,
        env_var="LOADGEN_TURN_TIMEOUT",
        help="seconds one turn may take before it fails as a timeout (default 60)",
    )
    group.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        env_var="LOADGEN_CONNECT_TIMEOUT",
        help="seconds to establish a connection (default 10)",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=None,
        env_var="LOADGEN_SEED",
        help="seed for dialogue choice and faker slots (reproducible conversations)",
    )
    group.add_argument("--locale", default="en_US", env_var="LOADGEN_LOCALE", help="faker locale (default en_US)")
    group.add_argument(
        "--tls-insecure",
        action="store_true",
        default=False,
        env_var="LOADGEN_TLS_INSECURE",
        help="do not verify the target's TLS certificate",
    )
    group.add_argument(
        "--amqp-url",
        default=DEFAULT_AMQP_URL,
        env_var="LOADGEN_AMQP_URL",
        help="broker for the embedded server's AMQP front when --host is not given",
    )
    group.add_argument(
        "--embedded-server-args",
        default="",
        env_var="LOADGEN_EMBEDDED_SERVER_ARGS",
        help="extra `loadgen serve` arguments for the embedded reference server (no --host), "
        "e.g. '--fixed --fixed-ttft-ms 50' or '--engine torch --model tiny'",
    )
    group.add_argument(
        "--reports-dir",
        default="reports",
        env_var="LOADGEN_REPORTS_DIR",
        help="where run folders are written (default reports)",
    )
    group.add_argument(
        "--run-id",
        default=None,
        env_var="LOADGEN_RUN_ID",
        help="name of this run's folder (default: time stamp + transport)",
    )
    group.add_argument(
        "--interval",
        type=float,
        default=5.0,
        env_var="LOADGEN_INTERVAL",
        help="seconds per interval histogram (latency over time, .hlog) (default 5)",
    )


@dataclass(frozen=True)
class LoadgenOptions:
    transport: str
    dialogue_paths: tuple[str, ...]
    history: HistoryMode
    think_min: float | None
    think_max: float | None
    stream: bool
    max_tokens: int | None
    model: str
    turn_timeout: float
    connect_timeout: float
    seed: int | None
    locale: str
    tls_insecure: bool
    amqp_url: str
    embedded_server_args: tuple[str, ...]
    reports_dir: str
    run_id: str | None
    interval_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_parsed(parsed: Any) -> LoadgenOptions:
        def get(name: str, default: Any = None) -> Any:
            return getattr(parsed, name, default)

        think_min, think_max = get("think_min"), get("think_max")
        for name, value in (("--think-min", think_min), ("--think-max", think_max)):
            if value is not None and value < 0:
                raise ConfigError(f"{name} {value}: must be >= 0 seconds")
        if think_min is not None and think_max is not None and think_min > think_max:
            raise ConfigError(f"--think-min {think_min} is larger than --think-max {think_max}")
        timeout = float(get("turn_timeout", 60.0))
        if timeout <= 0:
            raise ConfigError(f"--turn-timeout {timeout}: must be > 0 seconds")
        max_tokens = get("max_tokens")
        if max_tokens is not None and not 1 <= max_tokens <= 4096:
            raise ConfigError(f"--max-tokens {max_tokens}: must be between 1 and 4096")
        interval = float(get("interval", 5.0))
        if interval <= 0:
            raise ConfigError(f"--interval {interval}: must be > 0 seconds")
        try:
            server_args = tuple(shlex.split(get("embedded_server_args", "") or ""))
        except ValueError as exc:
            raise ConfigError(f"--embedded-server-args: cannot split {exc}") from exc
        paths = tuple(p.strip() for p in str(get("dialogues", "scenarios/dialogues")).split(",") if p.strip())
        if not paths:
            raise ConfigError("--dialogues is empty: give dialogue files or folders, comma-separated")
        return LoadgenOptions(
            transport=str(get("transport", "rest")),
            dialogue_paths=paths,
            history=HistoryMode(get("history", "client")),
            think_min=think_min,
            think_max=think_max,
            stream=not get("no_stream", False),
            max_tokens=max_tokens,
            model=str(get("model", "loadgen-sim")),
            turn_timeout=timeout,
            connect_timeout=float(get("connect_timeout", 10.0)),
            seed=get("seed"),
            locale=str(get("locale", "en_US")),
            tls_insecure=bool(get("tls_insecure", False)),
            amqp_url=str(get("amqp_url", DEFAULT_AMQP_URL)),
            embedded_server_args=server_args,
            reports_dir=str(get("reports_dir", "reports")),
            run_id=get("run_id"),
            interval_s=interval,
        )


def drop_inherited_json_file(parsed: Any) -> None:
    """A ``--processes`` worker inherits ``--json-file`` and, at exit, overwrites the master's file with its own
    (reset, near-empty) stats: whichever process exits last wins. Locust clears ``--csv`` and ``--html`` in forked
    workers but not ``--json-file``; clear it here so the file holds the master's merged figures."""
    if getattr(parsed, "processes", None) and getattr(parsed, "json_file", None):
        parsed.json_file = None
