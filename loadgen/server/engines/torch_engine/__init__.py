"""The ``torch`` engine: a real Llama-style transformer behind the reference server (``pip install torch``).

Import this package only when the torch engine is asked for: it imports PyTorch.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # a CPU wheel without NumPy warns at import; the engine never converts to NumPy
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch  # noqa: F401

from loadgen.server.engines.torch_engine.engine import TokenStream, TorchEngine

__all__ = ["TokenStream", "TorchEngine"]
