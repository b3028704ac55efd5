"""Prometheus histogram buckets computed from HDR histograms, at fixed bounds chosen for LLM latencies.

Latency histograms (microseconds in the HDR histograms, seconds in Prometheus) share one set of bounds,
:data:`LATENCY_BOUNDS_S`: 1 ms to 120 s, log-spaced in 1-2.5-5 steps, so that an inter-token latency of a few
milliseconds and a 90 s reply of a slow model each land between two bounds. Token histograms (per-turn prompt
and reply lengths) use :data:`TOKEN_BOUNDS`, powers of 4 from 1 to 65536.

A bucket ``le=B`` counts every sample of the HDR bucket that holds ``B`` and every one below it: exactly the
samples <= B where the HDR histogram records each value apart (below 2048 us, i.e. up to 2 ms, with the 3
significant digits of the latency histograms), and otherwise at most one HDR bucket's width past ``B`` too (0.1 %
of ``B``: a 5 ms bound may count a sample of 5.003 ms). A value above a histogram's range is counted at its top;
``+Inf`` is the histogram's count, ``_sum`` its exact sum.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

from loadgen.metrics.histograms import TrackedHistogram

#: Upper bounds of the latency buckets, seconds (documented in README.md, "Watching a soak on your dashboards").
LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 120.0,
)  # fmt: skip
#: Upper bounds of the token-count buckets (prompt and reply lengths per turn).
TOKEN_BOUNDS: tuple[float, ...] = tuple(float(4**k) for k in range(9))
#: HDR histogram values per Prometheus unit: latencies are recorded in microseconds, shown in seconds.
MICROSECONDS_PER_SECOND = 1_000_000


def bucket_counts(hist: TrackedHistogram, bounds: tuple[float, ...], scale: int) -> list[int]:
    """Cumulative counts of ``hist`` at ``bounds`` (in units of ``scale`` recorded values each: 1_000_000 for a
    microsecond histogram shown in seconds, 1 for tokens): element ``i`` counts the samples up to ``bounds[i]``
    (see the module doc for the resolution). The counters are read as one buffer, summed in C per stretch
    between two bounds, up to the highest value's counter."""
    hdr: HdrHistogram = hist.hist  # drains what record_later kept
    if hdr.get_total_count() == 0:
        return [0] * len(bounds)
    counts = memoryview(hdr.counts).cast("B").cast("Q")
    top = hdr.get_counts_array_index(hdr.get_max_value())
    out: list[int] = []
    running = 0
    start = 0
    for bound in bounds:
        value = round(bound * scale)
        end = top + 1 if value >= hdr.get_max_value() else min(hdr.get_counts_array_index(value), top) + 1
        if end > start:
            running += sum(counts[start:end])
            start = end
        out.append(running)
    return out
