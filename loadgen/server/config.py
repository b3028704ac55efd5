"""Settings of the reference server, shared by every front and engine (``loadgen serve --help``)."""

from __future__ import annotations

from dataclasses import dataclass

#: The local RabbitMQ (guest/guest) an embedded or benchmarked reference server uses for its AMQP front.
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
#: The values of ``--amqp-coalesce`` and ``--grpc-coalesce`` (:attr:`ServerConfig.amqp_coalesce`, ``grpc_coalesce``).
COALESCE_MODES = ("ready", "off")
AMQP_COALESCE = COALESCE_MODES


@dataclass
class SimEngineConfig:
    max_batch: int = 64  # sequences decoded together in one step
    queue_limit: int = 2048  # waiting sequences before new ones are refused (backpressure)
    prefill_us_per_token: float = 20.0  # prefill cost per prompt token
    step_base_us: float = 4000.0  # decode step time at batch 1
    step_per_seq_us: float = 150.0  # added per sequence in the batch
    fixed: bool = False  # exact timing for measurement tests: TTFT and a per-token interval, no batching
    fixed_ttft_ms: float = 50.0
    fixed_itl_ms: float = 10.0
    #: Prefix cache capacity in tokens (LRU, 64-token blocks, :mod:`loadgen.server.prefix_cache`); 0: off. A hit
    #: skips the prefill of the cached part of a prompt (batching mode; fixed timing is unaffected).
    prefix_cache_tokens: int = 0


@dataclass
class TorchEngineConfig:
    device: str = "cpu"  # "cuda" | "cpu"
    model: str = "tiny"  # "tiny" | "1b"
    batching: str = "continuous"  # "continuous" | "static"
    max_batch: int = 16
    kv_tokens: int = 65536  # KV cache budget in tokens across all running sequences
    queue_limit: int = 1024
    static_batch_timeout_ms: float = 50.0
    window: int | None = None  # sliding-window attention (tokens); None = full attention
    seed: int = 0


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    rest_port: int | None = 8000  # None: no REST front; 0: pick a free port
    grpc_port: int | None = None  # None: no gRPC front; 0: pick a free port
    amqp_url: str | None = None  # None: no AMQP front
    ws_port: int | None = None  # None: no WebSocket front; 0: pick a free port
    amqp_queue: str = "loadgen.chat.requests"
    amqp_prefetch: int = 64
    #: "ready": one reply message carries every token chunk the engine had ready at the same moment (a chunk that
    #: had to be waited for goes out alone, at once); "off": one message per chunk (loadgen.wire.amqp)
    amqp_coalesce: str = "ready"
    #: the same for the gRPC front's ``Chat`` stream: "ready", one ChatChunk of every token chunk the engine had
    #: ready at the same moment (its ``tokens`` their sum); "off", one ChatChunk per engine chunk
    grpc_coalesce: str = "ready"
    engine: str = "sim"  # "sim" | "torch"
    sim: SimEngineConfig | None = None
    torch: TorchEngineConfig | None = None
    session_capacity: int = 10000  # server-side sessions kept (LRU); eviction is a real context loss
    session_ttl_s: float = 900.0
    session_max_bytes: int = 256 * 1024 * 1024  # history kept across all sessions; past it the LRU ones go
    context_window: int = 4096  # tokens of context kept per request; the oldest turns are dropped
    default_max_tokens: int = 64
    api_key: str | None = None  # if set, every front requires it
    faults: str | None = None  # a --faults schedule (loadgen.server.faults)
    otel: bool = False  # --otel: a span per request, continuing the client's trace (loadgen.telemetry.serve_tracing)

    def __post_init__(self) -> None:
        for name, value in (("amqp_coalesce", self.amqp_coalesce), ("grpc_coalesce", self.grpc_coalesce)):
            if value not in COALESCE_MODES:
                raise ValueError(f"{name} must be one of {', '.join(COALESCE_MODES)}, got {value!r}")
        if self.sim is None:
            self.sim = SimEngineConfig()
        if self.torch is None:
            self.torch = TorchEngineConfig()
