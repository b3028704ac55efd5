"""``loadgen serve``: the reference model server (REST, gRPC and AMQP fronts over one engine).

Prints ``loadgen-ready {"rest": "http://127.0.0.1:8000", ...}`` on stdout (one line, flushed) once every
front accepts requests; logs go to stderr. SIGTERM or SIGINT stops it cleanly (exit code 0).
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
from loadgen.server.config import ServerConfig, SimEngineConfig, TorchEngineConfig
from loadgen.server.fronts import READY_PREFIX

AMQP_URL_ENV = "LOADGEN_AMQP_URL"
_DEFAULTS = ServerConfig(sim=SimEngineConfig(), torch=TorchEngineConfig())
_SIM = SimEngineConfig()
_TORCH = TorchEngineConfig()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0: any free port), got {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        f"Once every front accepts requests, one stdout line '{READY_PREFIX}{{\"rest\": URL, ...}}' says where; "
        "logs go to stderr. SIGTERM/SIGINT stop it (exit 0)."
    )
    g = parser.add_argument_group("fronts")
    g.add_argument("--host", default=_DEFAULTS.host, help="address every front binds (default %(default)s)")
    g.add_argument(
        "--rest-port",
        type=_port,
        default=_DEFAULTS.rest_port,
        help="REST port, 0 for any free one (default %(default)s)",
    )
    g.add_argument("--no-rest", action="store_true", help="no REST front")
    g.add_argument(
        "--grpc-port", type=_port, default=None, help="serve gRPC on this port (0: any free one); off by default"
    )
    g.add_argument(
        "--amqp-url",
        default=os.environ.get(AMQP_URL_ENV) or None,
        help=f"serve over AMQP: consume chat requests from this broker (env {AMQP_URL_ENV}); off by default",
    )
    g.add_argument("--amqp-queue", default=_DEFAULTS.amqp_queue, help="request queue name (default %(default)s)")
    g.add_argument(
        "--amqp-prefetch",
        type=_positive_int,
        default=_DEFAULTS.amqp_prefetch,
        help="unacknowledged requests taken at once (default %(default)s)",
    )
    g.add_argument(
        "--api-key-env",
        metavar="NAME",
        default=None,
        help="require the API key held in environment variable NAME on every front (the key is never printed)",
    )

    g = parser.add_argument_group("conversation")
    g.add_argument(
        "--session-capacity",
        type=_positive_int,
        default=_DEFAULTS.session_capacity,
        help="server-side sessions kept (LRU); an evicted session loses its history (default %(default)s)",
    )
    g.add_argument(
        "--session-ttl",
        type=float,
        default=_DEFAULTS.session_ttl_s,
        help="seconds an idle session is kept (default %(default)s)",
    )
    g.add_argument(
        "--context-window",
        type=_positive_int,
        default=_DEFAULTS.context_window,
        help="tokens of context per request; the oldest turns are dropped to fit (default %(default)s)",
    )
    g.add_argument(
        "--default-max-tokens",
        type=_positive_int,
        default=_DEFAULTS.default_max_tokens,
        help="reply length when a request gives no max_tokens (default %(default)s)",
    )

    g = parser.add_argument_group("engine")
    g.add_argument("--engine", choices=("sim", "torch"), default=_DEFAULTS.engine, help="default %(default)s")
    g.add_argument(
        "--max-batch",
        type=_positive_int,
        default=None,
        help=f"sequences decoded together per step (default sim {_SIM.max_batch}, torch {_TORCH.max_batch})",
    )
    g.add_argument(
        "--queue-limit",
        type=int,
        default=None,
        help=f"waiting requests before new ones get 429 (default sim {_SIM.queue_limit}, torch {_TORCH.queue_limit})",
    )

    g = parser.add_argument_group("sim engine (a cost model with a batching step loop)")
    g.add_argument(
        "--prefill-us-per-token",
        type=_non_negative,
        default=_SIM.prefill_us_per_token,
        help="prefill cost per prompt token, µs (default %(default)s)",
    )
    g.add_argument(
        "--step-base-us",
        type=_non_negative,
        default=_SIM.step_base_us,
        help="decode step time at batch 1, µs (default %(default)s)",
    )
    g.add_argument(
        "--step-per-seq-us",
        type=_non_negative,
        default=_SIM.step_per_seq_us,
        help="step time added per sequence in the batch, µs (default %(default)s)",
    )
    g.add_argument(
        "--fixed",
        action="store_true",
        help="exact timing instead: first token --fixed-ttft-ms after the front received the request, then one "
        "every --fixed-itl-ms, no batching",
    )
    g.add_argument("--fixed-ttft-ms", type=_non_negative, default=_SIM.fixed_ttft_ms, help="default %(default)s")
    g.add_argument("--fixed-itl-ms", type=_non_negative, default=_SIM.fixed_itl_ms, help="default %(default)s")

    g = parser.add_argument_group("torch engine (a real Llama-style decoder; pip install 'chat-loadgen[gpu]')")
    g.add_argument("--device", default=_TORCH.device, help="cpu | cuda (default %(default)s)")
    g.add_argument("--model", default=_TORCH.model, help="tiny | 1b (default %(default)s)")
    g.add_argument("--batching", choices=("continuous", "static"), default=_TORCH.batching, help="default %(default)s")
    g.add_argument(
        "--window",
        type=_positive_int,
        default=_TORCH.window,
        help="sliding-window attention in tokens (default: full attention)",
    )
    g.add_argument(
        "--kv-tokens",
        type=_positive_int,
        default=_TORCH.kv_tokens,
        help="KV cache budget in tokens across running sequences (default %(default)s)",
    )
    g.add_argument(
        "--static-batch-timeout-ms",
        type=_non_negative,
        default=_TORCH.static_batch_timeout_ms,
        help="static batching: longest wait for a full batch (default %(default)s)",
    )
    g.add_argument("--seed", type=int, default=_TORCH.seed, help="weight seed (default %(default)s)")

    g = parser.add_argument_group("process")
    g.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop implementation (default %(default)s; uvloop is faster, asyncio times sleeps more finely)",
    )
    g.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"), help="default %(default)s"
    )


def build_config(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` the parsed options describe (raises :class:`ConfigError`)."""
    api_key: str | None = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env) or None
        if api_key is None:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty")
    if args.session_ttl <= 0:
        raise ConfigError(f"--session-ttl must be positive, got {args.session_ttl}")
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
        fixed_ttft_ms=args.fixed_ttft_ms,
        fixed_itl_ms=args.fixed_itl_ms,
    )
    torch = TorchEngineConfig(
        device=args.device,
        model=args.model,
        batching=args.batching,
        max_batch=args.max_batch or _TORCH.max_batch,
        kv_tokens=args.kv_tokens,
        queue_limit=_TORCH.queue_limit if queue_limit is None else queue_limit,
        static_batch_timeout_ms=args.static_batch_timeout_ms,
        window=args.window,
        seed=args.seed,
    )
    return ServerConfig(
        host=args.host,
        rest_port=None if args.no_rest else args.rest_port,
        grpc_port=args.grpc_port,
        amqp_url=args.amqp_url or None,
        amqp_queue=args.amqp_queue,
        amqp_prefetch=args.amqp_prefetch,
        engine=args.engine,
        sim=sim,
        torch=torch,
        session_capacity=args.session_capacity,
        session_ttl_s=args.session_ttl,
        context_window=args.context_window,
        default_max_tokens=args.default_max_tokens,
        api_key=api_key,
    )


def _announce(urls: dict[str, str]) -> None:
    sys.stdout.write(READY_PREFIX + json.dumps(urls) + "\n")
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
        runner(serve(config, on_ready=_announce))
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
