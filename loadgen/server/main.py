"""``loadgen serve``: the reference model server (REST, gRPC and AMQP fronts over one engine).

Prints ``loadgen-ready {"rest": "http://127.0.0.1:8000", ...}`` on stdout (one line, flushed) once every
front accepts requests (an AMQP URL without its password: ``amqp://guest@host:5672/?queue=NAME``), and with
``--faults`` one ``loadgen-fault {"fault": "30s+10s down", "kind": "down", "edge": "start", "at": <time.time()>}``
line per fault edge (:mod:`loadgen.server.fault_control`); logs go to stderr. SIGTERM or SIGINT stops it cleanly
(exit code 0). A front that cannot start (a port taken, a broker that refuses) is one line and exit code 2.

Options are one table (:data:`OPTIONS`). Where Locust gives a flag another meaning, the server's has its own
name: ``--bind`` (the address the fronts listen on; Locust's ``--host`` is the target), ``--torch-model`` (the
torch engine's size; Locust's ``--model`` is the model name a request asks for) and ``--weight-seed`` (Locust's
``--seed`` seeds the conversations). The old spellings ``--host``, ``--model`` and ``--seed`` are refused with
one line naming the new one (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Any

from loadgen.errors import ConfigError
from loadgen.option_table import Option, add_options, non_negative, port, positive_int, whole_number
from loadgen.server.config import AMQP_COALESCE, COALESCE_MODES, ServerConfig, SimEngineConfig, TorchEngineConfig
from loadgen.server.fault_control import FAULT_PREFIX
from loadgen.server.faults import parse_faults
from loadgen.server.fronts import READY_PREFIX
from loadgen.units import byte_size, format_bytes
from loadgen.wire.text import without_password

AMQP_URL_ENV = "LOADGEN_AMQP_URL"
_DEFAULTS = ServerConfig()
_SIM = SimEngineConfig()
_TORCH = TorchEngineConfig()

GROUPS: dict[str, str | None] = dict.fromkeys(
    (
        "fronts",
        "conversation",
        "engine",
        "sim engine (a cost model with a batching step loop)",
        "torch engine (a real Llama-style decoder; pip install 'chat-loadgen[gpu]')",
        "process",
    )
)
_FRONTS, _CONVERSATION, _ENGINE, _SIM_ENGINE, _TORCH_ENGINE, _PROCESS = GROUPS


def _opt(group: str, flag: str, help: str, default: Any = None, **kwargs: Any) -> Option:
    return Option(flag, help, default, group=group, env=False, **kwargs)


#: Every option of ``loadgen serve``, in the order ``--help`` lists them; defaults from :mod:`loadgen.server.config`.
#: Flags whose names Locust gives another meaning are spelled apart (``--bind``, ``--torch-model``, ``--weight-seed``).
OPTIONS: tuple[Option, ...] = (
    _opt(_FRONTS, "--bind", "address every front binds (default %(default)s)", _DEFAULTS.host, metavar="ADDRESS",
         renamed_from="--host"),
    _opt(_FRONTS, "--rest-port", "REST port, 0 for any free one (default %(default)s)", _DEFAULTS.rest_port, type=port),
    _opt(_FRONTS, "--no-rest", "no REST front", False, type=None),
    _opt(_FRONTS, "--grpc-port", "serve gRPC on this port (0: any free one); off by default", type=port),
    _opt(_FRONTS, "--amqp-url", f"serve over AMQP: consume chat requests from this broker (default: the environment "
         f"variable {AMQP_URL_ENV}); off by default"),
    _opt(_FRONTS, "--amqp-queue", "request queue name (default %(default)s)", _DEFAULTS.amqp_queue),
    _opt(_FRONTS, "--ws-port", "serve WebSocket chat streaming on this port (0: any free one); off by default",
         type=port),
    _opt(_FRONTS, "--amqp-prefetch", "unacknowledged requests taken at once (default %(default)s)",
         _DEFAULTS.amqp_prefetch, type=positive_int),
    _opt(_FRONTS, "--amqp-coalesce", "streamed AMQP replies: 'ready' puts every token chunk the engine had ready at "
         "the same moment in one message (a chunk that had to be waited for goes out alone, at once: a paced stream "
         "stays one message per token), 'off' sends one message per chunk (default %(default)s)",
         _DEFAULTS.amqp_coalesce, choices=AMQP_COALESCE),
    _opt(_FRONTS, "--grpc-coalesce", "streamed gRPC replies (Chat): 'ready' puts every token chunk the engine had "
         "ready at the same moment in one ChatChunk (its tokens their sum; a paced stream stays one message per "
         "token), 'off' sends one ChatChunk per chunk (default %(default)s)",
         _DEFAULTS.grpc_coalesce, choices=COALESCE_MODES),
    _opt(_FRONTS, "--api-key-env", "require the API key held in environment variable NAME on every front (the key "
         "is never printed)", metavar="NAME"),
    _opt(_CONVERSATION, "--session-capacity", "server-side sessions kept (LRU); an evicted session loses its history "
         "(default %(default)s)", _DEFAULTS.session_capacity, type=positive_int),
    _opt(_CONVERSATION, "--session-ttl", "seconds an idle session is kept (default %(default)s)",
         _DEFAULTS.session_ttl_s, type=float),
    _opt(_CONVERSATION, "--session-memory", "bytes of history kept across all sessions, e.g. 256MiB; past it the "
         f"least recently used sessions go (default {format_bytes(_DEFAULTS.session_max_bytes)})",
         _DEFAULTS.session_max_bytes, type=byte_size, metavar="SIZE"),
    _opt(_CONVERSATION, "--context-window", "tokens of context per request; the oldest turns are dropped to fit "
         "(default %(default)s)", _DEFAULTS.context_window, type=positive_int),
    _opt(_CONVERSATION, "--default-max-tokens", "reply length when a request gives no max_tokens (default %(default)s)",
         _DEFAULTS.default_max_tokens, type=positive_int),
    _opt(_ENGINE, "--engine", "default %(default)s", _DEFAULTS.engine, choices=("sim", "torch")),
    _opt(_ENGINE, "--max-batch", f"sequences decoded together per step (default sim {_SIM.max_batch}, torch "
         f"{_TORCH.max_batch})", type=positive_int),
    _opt(_ENGINE, "--queue-limit", f"waiting requests before new ones get 429 (default sim {_SIM.queue_limit}, torch "
         f"{_TORCH.queue_limit})", type=int),
    _opt(_SIM_ENGINE, "--prefill-us-per-token", "prefill cost per prompt token, µs (default %(default)s)",
         _SIM.prefill_us_per_token, type=non_negative),
    _opt(_SIM_ENGINE, "--step-base-us", "decode step time at batch 1, µs (default %(default)s)", _SIM.step_base_us,
         type=non_negative),
    _opt(_SIM_ENGINE, "--step-per-seq-us", "step time added per sequence in the batch, µs (default %(default)s)",
         _SIM.step_per_seq_us, type=non_negative),
    _opt(_SIM_ENGINE, "--prefix-cache-tokens", "prefix cache capacity in tokens (LRU, 64-token blocks keyed on the "
         "prompt's beginning): a hit skips the prefill of the cached part; 0: off (default %(default)s; fixed timing "
         "has none)", _SIM.prefix_cache_tokens, type=whole_number, metavar="N"),
    _opt(_SIM_ENGINE, "--fixed", "exact timing instead: first token --fixed-ttft-ms after the front received the "
         "request, then one every --fixed-itl-ms, no batching", _SIM.fixed, type=None),
    _opt(_SIM_ENGINE, "--fixed-ttft-ms", "default %(default)s", _SIM.fixed_ttft_ms, type=non_negative),
    _opt(_SIM_ENGINE, "--fixed-itl-ms", "default %(default)s", _SIM.fixed_itl_ms, type=non_negative),
    _opt(_TORCH_ENGINE, "--device", "cpu | cuda (default %(default)s)", _TORCH.device),
    _opt(_TORCH_ENGINE, "--torch-model", "the torch engine's model size: tiny | 1b (default %(default)s)", _TORCH.model,
         renamed_from="--model"),
    _opt(_TORCH_ENGINE, "--batching", "default %(default)s", _TORCH.batching, choices=("continuous", "static")),
    _opt(_TORCH_ENGINE, "--window", "sliding-window attention in tokens (default: full attention)", _TORCH.window,
         type=positive_int),
    _opt(_TORCH_ENGINE, "--kv-tokens", "KV cache budget in tokens across running sequences (default %(default)s)",
         _TORCH.kv_tokens, type=positive_int),
    _opt(_TORCH_ENGINE, "--static-batch-timeout-ms", "static batching: longest wait for a full batch (default "
         "%(default)s)", _TORCH.static_batch_timeout_ms, type=non_negative),
    _opt(_TORCH_ENGINE, "--weight-seed", "seed the torch model's weights are drawn from (default %(default)s)",
         _TORCH.seed, type=int, renamed_from="--seed"),
    _opt(_PROCESS, "--faults", "inject faults on a schedule, times from when every front is ready, e.g. "
         "'30s+10s down; 60s+5s stall; 90s+20s error 5%%; 120s+10s slow 3x; 150s forget-sessions'; each edge is "
         f"printed as a '{FAULT_PREFIX.strip()} {{...}}' line and served at GET /faults", metavar="SPEC"),
    _opt(_PROCESS, "--otel", "trace every request with OpenTelemetry, continuing the client's trace (traceparent); "
         "exporters from the OTEL_* environment variables (pip install 'chat-loadgen[otel]'); off by default",
         _DEFAULTS.otel, type=None),
    _opt(_PROCESS, "--loop", "event loop implementation (default %(default)s; uvloop is faster, asyncio times sleeps "
         "more finely)", "asyncio", choices=("asyncio", "uvloop")),
    _opt(_PROCESS, "--log-level", "default %(default)s", "info", choices=("debug", "info", "warning", "error")),
)  # fmt: skip


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        f"Once every front accepts requests, one stdout line '{READY_PREFIX}{{\"rest\": URL, ...}}' says where; "
        "logs go to stderr. SIGTERM/SIGINT stop it (exit 0)."
    )
    add_options(parser, OPTIONS, GROUPS)


def build_config(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` the parsed options describe (raises :class:`ConfigError`)."""
    api_key: str | None = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env) or None
        if api_key is None:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty")
    if args.session_ttl <= 0:
        raise ConfigError(f"--session-ttl must be positive, got {args.session_ttl}")
    if args.faults is not None:
        parse_faults(args.faults)  # a bad schedule stops the server before it starts
    queue_limit = args.queue_limit
    if queue_limit is not None and queue_limit < 0:
        raise ConfigError(f"--queue-limit must not be negative, got {queue_limit}")
    sim = SimEngineConfig(
        max_batch=args.max_batch or _SIM.max_batch,
        queue_limit=_SIM.queue_limit if queue_limit is None else queue_limit,
        prefill_us_per_token=args.prefill_us_per_token,
        step_base_us=args.step_base_us,
        step_per_seq_us=args.step_per_seq_us,
        fixed=args.fixed,
        prefix_cache_tokens=args.prefix_cache_tokens,
        fixed_ttft_ms=args.fixed_ttft_ms,
        fixed_itl_ms=args.fixed_itl_ms,
    )
    torch = TorchEngineConfig(
        device=args.device,
        model=args.torch_model,
        batching=args.batching,
        max_batch=args.max_batch or _TORCH.max_batch,
        kv_tokens=args.kv_tokens,
        queue_limit=_TORCH.queue_limit if queue_limit is None else queue_limit,
        static_batch_timeout_ms=args.static_batch_timeout_ms,
        window=args.window,
        seed=args.weight_seed,
    )
    return ServerConfig(
        host=args.bind,
        rest_port=None if args.no_rest else args.rest_port,
        grpc_port=args.grpc_port,
        amqp_url=args.amqp_url or os.environ.get(AMQP_URL_ENV) or None,
        amqp_queue=args.amqp_queue,
        amqp_prefetch=args.amqp_prefetch,
        amqp_coalesce=args.amqp_coalesce,
        grpc_coalesce=args.grpc_coalesce,
        ws_port=args.ws_port,
        engine=args.engine,
        sim=sim,
        torch=torch,
        session_capacity=args.session_capacity,
        session_ttl_s=args.session_ttl,
        session_max_bytes=args.session_memory,
        context_window=args.context_window,
        default_max_tokens=args.default_max_tokens,
        api_key=api_key,
        faults=args.faults,
        otel=args.otel,
    )


def _announce(urls: dict[str, str]) -> None:
    # never a password on stdout: the AMQP URL goes without it (the broker's default password, guest, still works;
    # whoever started the server with another one puts it back: loadgen.wire.text.with_password_of)
    shown = {front: without_password(url) for front, url in urls.items()}
    sys.stdout.write(READY_PREFIX + json.dumps(shown) + "\n")
    sys.stdout.flush()


def _announce_fault(edge: dict[str, Any]) -> None:
    sys.stdout.write(FAULT_PREFIX + json.dumps(edge) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from loadgen.server.app import serve

    try:
        config = build_config(args)
        runner: Any = asyncio.run
        if args.loop == "uvloop":
            try:
                import uvloop
            except ImportError:
                raise ConfigError("--loop uvloop: uvloop is not installed (pip install uvloop)") from None
            runner = uvloop.run
        runner(serve(config, on_ready=_announce, on_fault=_announce_fault))
    except ConfigError as exc:
        print(f"loadgen serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadgen serve", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
