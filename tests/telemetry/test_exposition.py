"""The chunked exposition is prometheus_client's own text, byte for byte, with a pause after every chunk of at most
the given number of sample lines."""

from __future__ import annotations

import time

from prometheus_client import generate_latest

from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, Count, Metric, SeriesKey, Total
from loadgen.telemetry.exposition import CHUNK_SAMPLES, exposition_chunks
from loadgen.telemetry.prometheus import RunCollector, registry_for


def _registry(dialogues: int, turns: int) -> tuple[RunAggregator, RunCollector]:
    batch = MetricsBatch()
    for d in range(dialogues):
        for t in range(1, turns + 1):
            base = SeriesKey.series("rest", f"dialogue-{d}", t)
            for i, metric in enumerate(Metric):
                batch.record(base.with_metric(metric), 1000 * (d + t + i) + 7)
            batch.counts[base.with_metric(Count.TURNS)] += t
            batch.counts[base.with_metric(Count.SESSION_FAILURES)] += 1
            batch.totals[base.with_metric(Total.OUTPUT_TOKENS)] += 10.5
    batch.record(SeriesKey(ALL, ALL, 0, str(Metric.GENERATOR_LAG)), 300)
    agg = RunAggregator()
    agg.merge(batch)
    return agg, RunCollector(lambda: agg, lambda: 4)


def test_the_chunks_are_the_whole_exposition_byte_for_byte() -> None:
    _, collector = _registry(3, 4)
    registry = registry_for(collector)
    whole = generate_latest(registry)
    for size in (1, 7, 100, 10_000):
        chunks = list(exposition_chunks(registry, samples_per_chunk=size))
        assert b"".join(chunks) == whole, size
        assert all(c.count(b"\n") <= size + 2 for c in chunks)  # + a family's HELP and TYPE lines


def test_a_pause_after_every_chunk_keeps_each_stretch_short() -> None:
    _, collector = _registry(20, 10)  # 200 (dialogue, turn) series: thousands of lines
    registry = registry_for(collector)
    stretches: list[float] = []
    last = time.perf_counter()

    def pause() -> None:
        nonlocal last
        now = time.perf_counter()
        stretches.append(now - last)
        last = now

    text = b"".join(exposition_chunks(registry, pause))
    lines = text.count(b"\n")
    assert lines > 20_000 and len(stretches) >= lines // (CHUNK_SAMPLES + 2)
    # loose bound, for a loaded machine: the whole text would take ~0.5 s in one go
    assert sorted(stretches)[len(stretches) // 2] < 0.05
