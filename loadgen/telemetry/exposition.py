"""A registry's text exposition in small chunks, with a pause between two, for a server that shares its process
with the users (Locust's gevent hub).

prometheus_client's ``make_wsgi_app`` formats the whole exposition in one go: about 35 us per line, 25 ms of hub
time for a run of 200 (dialogue, turn) series, in which no user's turn is measured on time. Here each family is
formatted by prometheus_client's own :func:`~prometheus_client.exposition.generate_latest`, :data:`CHUNK_SAMPLES`
lines at a time (the family's ``# HELP``/``# TYPE`` lines once, before its first chunk), and ``pause`` (e.g.
``gevent.sleep(0)``) runs after each chunk: the same text, byte for byte, in steps of a few milliseconds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.registry import Collector

from loadgen.metrics.batch import Pause

#: Lines formatted between two pauses (~1.5 ms).
CHUNK_SAMPLES = 50
#: What the chunks are: Prometheus's text format 0.0.4, which every Prometheus version reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class _One(Collector):
    """A collector of one family (part of one)."""

    def __init__(self, family: Family) -> None:
        self._family = family

    def collect(self) -> Iterable[Family]:
        return [self._family]


def exposition_chunks(
    registry: Collector, pause: Pause | None = None, samples_per_chunk: int = CHUNK_SAMPLES
) -> Iterator[bytes]:
    """The text ``generate_latest(registry)`` gives, in chunks of at most ``samples_per_chunk`` sample lines (see
    the module doc); ``pause`` after each."""
    for family in registry.collect():
        samples = family.samples
        for start in range(0, max(len(samples), 1), samples_per_chunk):
            part = copy.copy(family)
            part.samples = samples[start : start + samples_per_chunk]
            text = generate_latest(_One(part))
            if start:
                text = text.split(b"\n", 2)[2]  # the family's HELP and TYPE lines come once, before its first chunk
            yield text
            if pause is not None:
                pause()
