"""Where the WebSocket plug-in package of this repository lives, and its transport importable by name in tests.

The package is not installed into the development environment (``pip install -e .[dev]`` installs chat-loadgen
only): in-process tests put its ``src`` folder on ``sys.path`` and name the class as ``package.module:Class``;
``test_installed_plugin.py`` installs it for real, into a temporary venv, and finds it by its entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO_ROOT / "plugins" / "chat-loadgen-websocket"
PLUGIN_SRC = PLUGIN_DIR / "src"
#: The plug-in's transport, as --transport names a class.
WEBSOCKET = "chat_loadgen_websocket:WebSocketTransport"


def add_plugin_to_path() -> None:
    if str(PLUGIN_SRC) not in sys.path:
        sys.path.insert(0, str(PLUGIN_SRC))
