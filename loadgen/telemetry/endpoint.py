"""``/metrics`` over HTTP (``--metrics-port``), served by a gevent WSGI server in the process that holds the run's
aggregator: the only process, or the master (``--master``, ``--processes``); workers serve nothing.

The server runs in the Locust process's gevent hub, beside the users: a scrape is one greenlet, which pauses
between groups of histograms while it reads them (:class:`~loadgen.telemetry.prometheus.RunCollector`) and
between chunks of the text it sends (:mod:`loadgen.telemetry.exposition`), so the users are never held up for
long. It is bound at start-up, before any user starts: a port in use stops the run with one line (exit 2). Port 0
takes any free port; the address is printed on one line either way,
``chat-loadgen: Prometheus metrics on http://HOST:PORT/metrics``."""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer
from prometheus_client.registry import CollectorRegistry

from loadgen.errors import ConfigError
from loadgen.metrics.aggregator import RunAggregator
from loadgen.telemetry.exposition import CONTENT_TYPE, exposition_chunks
from loadgen.telemetry.prometheus import RunCollector, registry_for

#: The line that tells where the metrics are (``{url}``); tests and scripts read the port from it.
ANNOUNCE = "chat-loadgen: Prometheus metrics on {url}"
PATH = "/metrics"


class MetricsEndpoint:
    """A started ``/metrics`` server (:func:`serve_metrics`): its address, its registry, :meth:`close`."""

    def __init__(self, server: WSGIServer, registry: CollectorRegistry, host: str) -> None:
        self._server = server
        self.registry = registry
        self.host = host

    @property
    def port(self) -> int:
        port: int = self._server.server_port
        return port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"

    def close(self) -> None:
        """Stop accepting scrapes (no greenlet switch: safe in Locust's ``quit``)."""
        self._server.close()


def _pause() -> None:
    """Let the users run between chunks of a scrape: ``gevent.idle()`` returns once the event loop has polled and
    run what was due (a user's think-time timer or reply, the lag probe), ~2 us when nothing was. ``gevent.sleep(0)``
    only runs greenlets already ready (one waiting for a timer or a socket waited for the whole scrape, 30-50 ms
    measured); ``gevent.sleep(0.0001)`` served them too but cost ~1 ms a pause (the loop's millisecond timers)."""
    gevent.idle()


def _metrics_app(registry: CollectorRegistry) -> Callable[..., Any]:
    """The WSGI app: ``registry``'s exposition at /metrics (and /), streamed in chunks with pauses
    (:mod:`loadgen.telemetry.exposition`); 404 elsewhere."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") not in (PATH, "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"not found: metrics are at {PATH}\n".encode()]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
        return exposition_chunks(registry, _pause)

    return app


def serve_metrics(
    port: int,
    bind: str,
    aggregator: Callable[[], RunAggregator | None],
    users: Callable[[], int | None],
    *,
    announce: Callable[[str], None] | None = None,
) -> MetricsEndpoint:
    """Start serving ``/metrics`` on ``bind:port`` (0: any free port) and say where (``announce``, by default a
    line on stderr); :class:`ConfigError` naming ``--metrics-port`` when the port cannot be had."""
    registry = registry_for(RunCollector(aggregator, users, pause=_pause))
    # SERVER_NAME given: gevent would look the address up (a DNS query, a greenlet switch, in Locust's init)
    server = WSGIServer((bind, port), _metrics_app(registry), log=None, error_log=logging.getLogger("loadgen"),
                        environ={"SERVER_NAME": bind})  # fmt: skip
    try:
        server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            what = f"{bind}:{port} is in use; choose another port, or 0 for any free one"
        else:
            what = f"cannot listen on {bind}:{port} ({exc.strerror or exc}); check --metrics-bind"
        raise ConfigError(f"--metrics-port {port}: {what}") from exc
    endpoint = MetricsEndpoint(server, registry, bind)
    line = ANNOUNCE.format(url=endpoint.url)
    if announce is None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    else:
        announce(line)
    return endpoint
