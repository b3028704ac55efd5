"""The embedded default target: see :mod:`loadgen.server.launcher` (kept here for the plugin's imports)."""

from loadgen.server.launcher import EmbeddedServer, server_command, start_embedded_server

__all__ = ["EmbeddedServer", "server_command", "start_embedded_server"]
