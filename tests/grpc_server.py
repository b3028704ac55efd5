"""A reference server with only its gRPC front, for the gRPC tests (fast fixed timing by default)."""

from __future__ import annotations

from typing import Any

from loadgen.server.app import RunningServer, run_in_thread
from loadgen.server.config import ServerConfig, SimEngineConfig

FAST = SimEngineConfig(fixed=True, fixed_ttft_ms=2, fixed_itl_ms=1)


def grpc_server(**fields: Any) -> RunningServer:
    fields.setdefault("rest_port", None)
    fields.setdefault("grpc_port", 0)
    fields.setdefault("sim", FAST)
    return run_in_thread(ServerConfig(**fields))
