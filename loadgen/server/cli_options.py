"""The options of a command that starts the reference server for its runs (``loadgen sweep``,
``loadgen compare-transports``): its arguments and its AMQP broker, declared and read in one place."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Callable
from typing import Any

from loadgen.errors import ConfigError
from loadgen.server.config import LOCAL_AMQP_URL
from loadgen.server.main import AMQP_URL_ENV


def add_reference_server_options(add: Callable[..., Any], example: str) -> None:
    """``--embedded-server-args`` (``example`` ends its help: e.g. "'--max-batch 4'") and ``--amqp-url``."""
    add(
        "--embedded-server-args",
        default="",
        metavar="ARGS",
        help=f"`loadgen serve` arguments for the reference server, e.g. {example}",
    )
    add(
        "--amqp-url",
        default=None,
        help=f"broker of the reference server's AMQP front (default: ${AMQP_URL_ENV} or {LOCAL_AMQP_URL})",
    )


def reference_server_args(args: argparse.Namespace) -> list[str]:
    """``--embedded-server-args`` split as a shell would (:class:`ConfigError` on unbalanced quotes)."""
    try:
        return shlex.split(args.embedded_server_args or "")
    except ValueError as exc:
        raise ConfigError(f"--embedded-server-args: {exc}") from exc


def reference_amqp_url(args: argparse.Namespace) -> str:
    """The broker: ``--amqp-url``, else the environment's, else the local one."""
    return str(args.amqp_url or os.environ.get(AMQP_URL_ENV) or LOCAL_AMQP_URL)
