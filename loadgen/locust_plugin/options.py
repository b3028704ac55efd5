"""chat-loadgen's options to Locust, stated once in :data:`OPTIONS`, and their validated form :class:`LoadgenOptions`.

Each option is also an environment variable ``LOADGEN_<NAME>`` (``--think-min`` -> ``LOADGEN_THINK_MIN``), except
``--threshold``. Defaults come from where the values are used (the request defaults of
:class:`~loadgen.dialogues.history.RequestSettings`, the time-outs of
:class:`~loadgen.transports.base.TransportConfig`) or are written here, once. Bad values stop the run before any
user starts, with one line naming the option (a :class:`ConfigError`; Locust's process exits with code 2).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, fields, replace
from typing import Any

from loadgen.adapters import Adapter, adapter_option, resolve_transport
from loadgen.dialogues.accounting import DEFAULT_TOLERANCE
from loadgen.dialogues.fakers import DEFAULT_LOCALE
from loadgen.dialogues.history import RequestSettings
from loadgen.dialogues.model import MAX_TOKENS_LIMIT, ThinkTime
from loadgen.dialogues.prefix import MAX_PREFIX_TOKENS, SharedPrefixes, shared_prefixes
from loadgen.dialogues.shapes import TokenShape, TokenTarget, parse_target
from loadgen.errors import ConfigError
from loadgen.load.arrivals import ArrivalKind
from loadgen.load.slo import Objective, parse_objectives
from loadgen.metrics.rundir import check_run_id
from loadgen.option_table import Option, add_options, at_least, between, duration, port, read_options
from loadgen.report.thresholds import THRESHOLD_OPTIONS
from loadgen.server.config import LOCAL_AMQP_URL
from loadgen.transports import check_name as check_transport
from loadgen.transports.base import DEFAULT_MAX_REPLY_BYTES, TransportConfig
from loadgen.types import HistoryMode
from loadgen.units import byte_size, format_bytes

RUN_GROUP = "chat-loadgen"
REPORT_GROUP = "chat-loadgen reports"
GROUPS: dict[str, str | None] = {
    RUN_GROUP: "Conversational load: dialogues, transport, metrics",
    REPORT_GROUP: "Report files, CI gates and the per-turn log",
}

_REQUEST = RequestSettings()
_TRANSPORT_DEFAULTS = {f.name: f.default for f in fields(TransportConfig)}


def _dialogue_paths(value: str, flag: str) -> tuple[str, ...]:
    paths = tuple(p.strip() for p in str(value).split(",") if p.strip())
    if not paths:
        raise ConfigError(f"{flag} is empty: give dialogue files or folders, comma-separated")
    return paths


def _dataset_paths(value: str | None, flag: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    paths = tuple(p.strip() for p in str(value).split(",") if p.strip())
    if not paths:
        raise ConfigError(f"{flag} is empty: give JSONL dataset files, comma-separated")
    return paths


def _server_args(value: str, flag: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(value or ""))
    except ValueError as exc:
        raise ConfigError(f"{flag}: cannot split {exc}") from exc


def _run_id(value: str | None, flag: str) -> str | None:
    return None if not value else check_run_id(value, what=flag)


def _not(value: bool, flag: str) -> bool:
    return not value


def _input_tokens(value: str | None, flag: str) -> TokenTarget | None:
    return None if value is None else parse_target(value, flag)


def _output_tokens(value: str | None, flag: str) -> TokenTarget | None:
    return None if value is None else parse_target(value, flag, high=MAX_TOKENS_LIMIT)


_SECONDS = at_least(0, unit=" seconds")
_POSITIVE_SECONDS = at_least(0, strict=True, unit=" seconds")


def _grouped(group: str, *options: Option) -> tuple[Option, ...]:
    return tuple(replace(o, group=group) for o in options)


#: Every option, in the order ``--help`` lists them.
OPTIONS: tuple[Option, ...] = (
    *_grouped(
    RUN_GROUP,
    Option("--transport", "wire protocol to the chat service: rest, grpc, amqp, an installed plug-in (`loadgen "
           "transports` lists them) or package.module:Class (default %(default)s)", "rest", metavar="TRANSPORT",
           validate=check_transport),
    Option("--adapter", "an adapter file describing your own chat API (REST, gRPC or AMQP), or the name of a shipped "
           "profile (openai, ollama, anthropic, rasa-rest, example-grpc); needs --host", metavar="FILE|NAME",
           validate=adapter_option),
    Option("--dialogues", "dialogue scripts: files or folders, comma-separated (default %(default)s)",
           "scenarios/dialogues", attr="dialogue_paths", validate=_dialogue_paths),
    Option("--dataset", "replay conversations from JSONL files instead of the dialogues (OpenAI `messages` or ShareGPT "
           "`conversations` lines, .jsonl or .jsonl.gz, comma-separated): each one's user turns in order, the "
           "server's replies as history", attr="dataset_paths", metavar="FILE", validate=_dataset_paths),
    Option("--dataset-history", "with --dataset: replies: the server's replies become the history; recorded: the "
           "dataset's recorded replies are sent as the history instead (fixed context; needs --history client) "
           "(default %(default)s)", "replies", choices=("replies", "recorded")),
    Option("--plant-probes", "with --dataset: plant a generated fact in each conversation's first turn and ask for "
           "it in an appended last turn, checked as a retention probe", False, type=None),
    Option("--history", "client: send the whole history every turn; server: session id + new message only "
           "(default %(default)s)", _REQUEST.history.value, choices=tuple(m.value for m in HistoryMode),
           validate=lambda value, _: HistoryMode(value)),
    Option("--think-min", "override every dialogue's minimum think time between turns (s)", type=float,
           validate=_SECONDS),
    Option("--think-max", "override every dialogue's maximum think time between turns (s)", type=float,
           validate=_SECONDS),
    Option("--no-stream", "ask for whole replies instead of streamed tokens (no TTFT/ITL then)", not _REQUEST.stream,
           type=None, attr="stream", validate=_not),
    Option("--max-tokens", "override the reply length asked for in every turn", _REQUEST.max_tokens, type=int,
           validate=between(1, MAX_TOKENS_LIMIT)),
    Option("--input-tokens", "token-length shape of the user messages: N or N±S (also N+-S) tokens, filler appended "
           "to each turn's own text; overrides the dialogues' input_tokens", metavar="N[±S]",
           validate=_input_tokens),
    Option("--output-tokens", "token-length shape of the replies: M or M±S tokens, asked as max_tokens = min_tokens "
           "= M with ignore_eos (not with --max-tokens); overrides the dialogues' output_tokens", metavar="M[±S]",
           validate=_output_tokens),
    Option("--tokenizer", "a local tokenizer file (tokenizer.json, the `tokenizers` package; nothing is downloaded) "
           "to count tokens with where a reply carries no usage, to shape turns with and to check the server's "
           "usage against (default: the estimate, ~4 characters a token, no usage check)", metavar="FILE"),
    Option("--token-tolerance", "how far (a fraction of the local count) the server's usage may be from the local "
           "count, or a locally counted reply below the length asked, before a turn is counted as a usage mismatch "
           "or a short reply (default %(default)s)", DEFAULT_TOLERANCE, type=float, validate=between(0, 1)),
    Option("--model", "model name sent with each request (default %(default)s)", _REQUEST.model),
    Option("--shared-prefix-tokens", "begin conversations with a shared system prompt of K generated tokens (prefix "
           "caching shows in TTFT by turn)", type=int, metavar="K", validate=between(1, MAX_PREFIX_TOKENS)),
    Option("--shared-prefix-share", "the fraction of conversations that get the shared prefix, 0 to 1 (default 1)",
           type=float, metavar="F", validate=between(0, 1)),
    Option("--prefix-count", "P distinct shared prefixes, the conversations spread over them at random (default 1)",
           type=int, metavar="P", validate=at_least(1)),
    Option("--turn-timeout", "seconds one turn may take before it fails as a timeout (default %(default)s)",
           _TRANSPORT_DEFAULTS["timeout_s"], type=float, validate=_POSITIVE_SECONDS),
    Option("--connect-timeout", "seconds to establish a connection (default %(default)s)",
           _TRANSPORT_DEFAULTS["connect_timeout_s"], type=float, validate=_POSITIVE_SECONDS),
    Option("--max-reply-bytes", "a reply larger than this (bytes off the wire, e.g. 8MiB) fails its turn as a "
           f"protocol error (default {format_bytes(DEFAULT_MAX_REPLY_BYTES)})", DEFAULT_MAX_REPLY_BYTES,
           type=byte_size),
    Option("--accept-unstreamed", "accept a whole (non-streamed) reply to a streaming request, flagged, instead of "
           "failing the turn (its TTFT is then the whole reply's time)", False, type=None),
    Option("--seed", "seed for dialogue choice and faker slots (reproducible conversations)", type=int),
    Option("--locale", "faker locale (default %(default)s)", DEFAULT_LOCALE),
    Option("--tls-insecure", "do not verify the target's TLS certificate", False, type=None),
    Option("--amqp-url", "broker for the embedded server's AMQP front when --host is not given", LOCAL_AMQP_URL),
    Option("--embedded-server-args", "extra `loadgen serve` arguments for the embedded reference server (no --host), "
           "e.g. '--fixed --fixed-ttft-ms 50' or '--engine torch --torch-model tiny'", "", validate=_server_args),
    Option("--reports-dir", "where run folders are written (default %(default)s)", "reports"),
    Option("--run-id", "name of this run's folder: letters, digits, '.', '_' and '-' (default: time stamp + "
           "transport)", validate=_run_id),
    Option("--interval", "seconds per interval histogram (latency over time, .hlog) (default %(default)s)", 5.0,
           type=float, attr="interval_s", validate=_POSITIVE_SECONDS),
    Option("--checkpoint-interval", "seconds between two writes of summary.json and histograms.json while the run "
           "goes: a crash loses at most about this much (default %(default)s)", 5.0, type=float,
           attr="checkpoint_s", validate=_POSITIVE_SECONDS),
    Option("--drift-window", "length of the windows the drift of latency, errors and retention is measured over, "
           "e.g. 1h or 600 (default: 1 h, or the run time / 8 for shorter runs)", type=duration, attr="drift_window_s",
           validate=_POSITIVE_SECONDS),
    Option("--warmup", "turns started in the first DURATION of the test (e.g. 30s, 1m) go to the interval log only, "
           "not to the summary's figures, thresholds and comparisons (default 0)", 0.0, type=duration,
           attr="warmup_s", metavar="DURATION", validate=_SECONDS),
    Option("--cooldown", "turns started in the last DURATION before the planned end (-t) are left out of the "
           "summary's figures like the warm-up's (default 0; needs -t)", 0.0, type=duration, attr="cooldown_s",
           metavar="DURATION", validate=_SECONDS),
    Option("--slo", "a service-level objective on a turn's latency, e.g. 'ttft.p99 < 500ms' (repeatable): each "
           "turn is checked against it (goodput, SLO attainment) and it is evaluated over the run; informative, "
           "gate with --threshold 'slo_attainment >= 99%%'", repeat=True, metavar="EXPR", attr="slo",
           validate=lambda value, flag: parse_objectives(value, flag=flag)),
    Option("--allow-worker-loss", "a worker lost during the run is a warning only, not a non-zero exit", False,
           type=None),
    Option("--arrival-rate", "open model: start this many new conversations per second over the whole run (all "
           "processes together), whatever the service does; the users (-u) are then conversation slots, the cap on "
           "live conversations (default: the closed model, each user chats again when its chat ends)", type=float,
           metavar="R", validate=at_least(0, strict=True, unit=" conversations/s")),
    Option("--arrival", "open model: how arrivals are spaced: poisson (random, exponential gaps) or constant "
           "(default %(default)s)", ArrivalKind.POISSON.value, choices=tuple(k.value for k in ArrivalKind),
           validate=lambda value, _: ArrivalKind(value)),
    Option("--max-in-flight", "open model: the most conversations live at once (the cap; arrivals beyond it are "
           "dropped and counted, never delayed); sets the user count (-u) the same", type=int, metavar="N",
           validate=at_least(1)),
    Option("--metrics-port", "serve the run's live figures as Prometheus metrics at http://BIND:PORT/metrics (0: any "
           "free port, printed at start; the master serves them in distributed mode; default: off)", type=port,
           metavar="PORT"),
    Option("--metrics-bind", "address --metrics-port listens on (default %(default)s; 0.0.0.0 for a scraper on "
           "another host)", "127.0.0.1", metavar="ADDRESS"),
    ),
    *_grouped(
    REPORT_GROUP,
    *THRESHOLD_OPTIONS,
    Option("--turn-log", "write one JSON line per turn (conversation id, turn, timings, verdict); workers write PATH "
           "with their pid inserted, e.g. turns.12345.jsonl", metavar="PATH"),
    Option("--no-html", "do not write report.html into the run folder (turns.csv and .hlog files are still written)",
           False, type=None, attr="html", validate=_not),
    ),
)  # fmt: skip


def add_arguments(parser: Any) -> None:
    """Register every option on Locust's parser (``init_command_line_parser``)."""
    add_options(parser, OPTIONS, GROUPS, env_vars=True)


@dataclass(frozen=True)
class LoadgenOptions:
    """The options of a run, validated; one field per entry of :data:`OPTIONS` (same name or its ``attr``)."""

    transport: str
    adapter: Adapter | None
    dialogue_paths: tuple[str, ...]
    dataset_paths: tuple[str, ...] | None
    plant_probes: bool
    dataset_history: str
    history: HistoryMode
    think_min: float | None
    think_max: float | None
    stream: bool
    max_tokens: int | None
    input_tokens: TokenTarget | None
    output_tokens: TokenTarget | None
    tokenizer: str | None
    token_tolerance: float
    model: str
    shared_prefix_tokens: int | None
    shared_prefix_share: float | None
    prefix_count: int | None
    turn_timeout: float
    connect_timeout: float
    max_reply_bytes: int
    accept_unstreamed: bool
    seed: int | None
    locale: str
    tls_insecure: bool
    amqp_url: str
    embedded_server_args: tuple[str, ...]
    reports_dir: str
    run_id: str | None
    interval_s: float
    checkpoint_s: float
    drift_window_s: float | None
    warmup_s: float
    cooldown_s: float
    slo: tuple[Objective, ...]
    allow_worker_loss: bool
    arrival_rate: float | None
    arrival: ArrivalKind
    max_in_flight: int | None
    metrics_port: int | None
    metrics_bind: str
    thresholds: list[str]
    thresholds_files: list[str]
    turn_log: str | None
    html: bool

    @staticmethod
    def from_parsed(parsed: Any) -> LoadgenOptions:
        """The options ``parsed`` holds (an option it lacks takes its default); :class:`ConfigError` if bad."""
        options = LoadgenOptions(**read_options(parsed, OPTIONS))
        options = replace(options, transport=resolve_transport(options.adapter, options.transport, options.history,
                                                               parsed))  # fmt: skip
        if options.max_tokens is not None and options.output_tokens is not None:
            raise ConfigError("--max-tokens and --output-tokens both set the reply length: give one of them")
        low, high = options.think_min, options.think_max
        if low is not None and high is not None and low > high:
            raise ConfigError(f"--think-min {low} is larger than --think-max {high}")
        options.shared_prefixes()  # a share or a count without a length stops the run here
        if options.plant_probes and options.dataset_paths is None:
            raise ConfigError("--plant-probes needs --dataset FILE: it plants facts into replayed dataset "
                              "conversations (dialogues have their own probes)")  # fmt: skip
        if options.dataset_history == "recorded":
            if options.dataset_paths is None:
                raise ConfigError("--dataset-history recorded needs --dataset FILE: it sends a dataset's recorded "
                                  "replies as the history")  # fmt: skip
            if options.history is not HistoryMode.CLIENT:
                raise ConfigError("--dataset-history recorded needs --history client: in server mode the server keeps "
                                  "its own history")  # fmt: skip
        run_s = getattr(parsed, "run_time", None)
        if run_s and options.warmup_s + options.cooldown_s >= float(run_s):
            raise ConfigError(
                f"--warmup {options.warmup_s:g}s + --cooldown {options.cooldown_s:g}s leave nothing of the run time "
                f"({float(run_s):g}s): shorten them or give a longer -t"
            )
        check_open_model(options, parsed)
        return options

    def shared_prefixes(self) -> SharedPrefixes | None:
        """The shared prefixes conversations begin with (``--shared-prefix-tokens``), or None."""
        return shared_prefixes(self.shared_prefix_tokens, self.shared_prefix_share, self.prefix_count)

    def request_settings(self) -> RequestSettings:
        """What every request of the run asks for besides its messages."""
        return RequestSettings(history=self.history, stream=self.stream, model=self.model, max_tokens=self.max_tokens)

    def token_shape(self) -> TokenShape:
        """The token-length shape the command line asks for (empty: the dialogues' own, if any)."""
        return TokenShape(self.input_tokens, self.output_tokens)

    def think_range(self, think: ThinkTime) -> tuple[float, float]:
        """The think time to draw from before a turn: the dialogue's, where --think-min/--think-max do not say."""
        low = think.min_s if self.think_min is None else self.think_min
        high = think.max_s if self.think_max is None else self.think_max
        return low, max(low, high)


#: The options a test reads again when it starts: a worker's are the master's by then (its spawn message).
_TEST_OPTIONS = ("--warmup", "--cooldown", "--slo")
#: The attribute a master adds to its parsed options for its workers: the planned run time (Locust clears a
#: worker's ``run_time``; the master's custom options reach its workers with each spawn message).
RUN_S_ATTR = "loadgen_run_s"


def test_options(parsed: Any) -> tuple[float, float, tuple[Objective, ...], float | None]:
    """(warm-up s, cool-down s, SLO objectives, planned run time s or None) of the test about to start."""
    values = read_options(parsed, [o for o in OPTIONS if o.flag in _TEST_OPTIONS])
    run_s = getattr(parsed, "run_time", None) or getattr(parsed, RUN_S_ATTR, None) or None
    return values["warmup_s"], values["cooldown_s"], values["slo"], None if run_s is None else float(run_s)


def check_open_model(options: LoadgenOptions, parsed: Any) -> None:
    """--max-in-flight needs --arrival-rate, and with it the users are the slots: -u must agree and be >= 1."""
    users = getattr(parsed, "num_users", None)
    cap = options.max_in_flight
    if options.arrival_rate is None:
        if cap is not None:
            raise ConfigError(f"--max-in-flight {cap}: caps open-model conversations, give --arrival-rate too")
        return
    if getattr(parsed, "worker", False):
        return  # a worker's slots are what the master gives it
    if cap is not None and users is not None and users != cap:
        raise ConfigError(f"--max-in-flight {cap} and -u {users} disagree: with --arrival-rate the users are the "
                          "conversation slots; give one of the two")  # fmt: skip
    if users is not None and users < 1:
        raise ConfigError(f"-u {users}: --arrival-rate needs at least one conversation slot (-u N or "
                          "--max-in-flight N, N >= 1)")  # fmt: skip


def drop_inherited_json_file(parsed: Any) -> None:
    """A ``--processes`` worker inherits ``--json-file`` and, at exit, overwrites the master's file with its own
    (reset, near-empty) stats: whichever process exits last wins. Locust clears ``--csv`` and ``--html`` in forked
    workers but not ``--json-file``; clear it here so the file holds the master's merged figures."""
    if getattr(parsed, "processes", None) and getattr(parsed, "json_file", None):
        parsed.json_file = None
