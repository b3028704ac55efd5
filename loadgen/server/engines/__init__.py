"""Engines behind the reference server: ``sim`` (a cost model) and ``torch`` (a real decoder, optional)."""

from __future__ import annotations

import importlib

from loadgen.errors import ConfigError
from loadgen.server.config import ServerConfig, SimEngineConfig, TorchEngineConfig
from loadgen.server.engines.base import Engine

ENGINES = ("sim", "torch")


def make_engine(config: ServerConfig) -> Engine:
    """The engine ``config.engine`` names, built (not started). Raises :class:`ConfigError` otherwise."""
    if config.engine == "sim":
        from loadgen.server.engines.sim import SimEngine

        try:
            return SimEngine(config.sim or SimEngineConfig())
        except ValueError as exc:
            raise ConfigError(f"sim engine: {exc}") from None
    if config.engine == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ConfigError("engine 'torch' needs PyTorch: pip install 'chat-loadgen[gpu]'") from None
        # imported by name: the torch engine is optional and heavy
        module = importlib.import_module("loadgen.server.engines.torch_engine")
        engine: Engine = module.TorchEngine(config.torch or TorchEngineConfig())
        return engine
    raise ConfigError(f"unknown engine {config.engine!r}: choose one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "make_engine"]
