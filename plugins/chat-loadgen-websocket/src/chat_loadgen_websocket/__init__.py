"""chat-loadgen-websocket: WebSocket chat streaming as a chat-loadgen transport plug-in.

Registered under the entry point group ``chat_loadgen.transports`` as ``websocket`` (see this package's
``pyproject.toml``), so ``--transport websocket`` finds it once the package is installed; ``--transport
chat_loadgen_websocket:WebSocketTransport`` names it without the entry point.
"""

from __future__ import annotations

from chat_loadgen_websocket.transport import WebSocketTransport

__version__ = "0.1.0"

__all__ = ["WebSocketTransport", "__version__"]
