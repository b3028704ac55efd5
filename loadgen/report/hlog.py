"""HdrHistogram interval logs (``.hlog``): the standard log format other HdrHistogram tools read
(HistogramLogAnalyzer, HdrHistogram's ``HistogramLogProcessor``, ``hdrh.log.HistogramLogReader``).

One file per transport x latency metric, from the run's interval snapshots (``intervals.jsonl``, or
``intervals.json`` in an older folder): ``<transport>.<metric>.hlog`` (e.g. ``rest.ttft.hlog``) plus
``generator_lag.hlog``. Values are integer microseconds; each line's ``Interval_Max`` column is in milliseconds.
Timestamps are seconds relative to the ``#[BaseTime: ...]`` header (the run's start); every interval is written,
an empty one as an empty histogram, so the log's timeline has no holes. The intervals are read once, in order,
for every file at the same time (a long run's thousands of intervals are never all in memory).
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any

from hdrh.log import HistogramLogWriter

from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, SeriesKey
from loadgen.report.rundata import LATENCY_METRICS, RunData

#: Interval_Max column unit: values are microseconds, the column shows milliseconds.
_US_PER_MS = 1000.0


def hlog_series(data: RunData) -> list[tuple[str, SeriesKey]]:
    """(file name, aggregate series key) of every .hlog file the run gets."""
    out = [
        (f"{transport}.{metric}.hlog", SeriesKey(transport, ALL, 0, metric))
        for transport in data.transports()
        for metric in LATENCY_METRICS
    ]
    out.append(("generator_lag.hlog", SeriesKey(ALL, ALL, 0, Metric.GENERATOR_LAG)))
    return out


def _writer(data: RunData, key: SeriesKey, base_text: str) -> tuple[io.StringIO, Any]:
    buf = io.StringIO()
    writer = HistogramLogWriter(buf)
    writer.output_log_format_version()
    writer.output_comment(f"[chat-loadgen run {data.run_id}: {key.transport} {key.metric}, values in microseconds]")
    # HistogramLogWriter.output_start_time formats the date wrongly; the header line is written by hand
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(base_text)))
    writer.output_comment(f"[StartTime: {base_text} (seconds since epoch), {stamp} UTC]")
    writer.output_comment(f"[BaseTime: {base_text} (seconds since epoch)]")
    writer.output_legend()
    writer.base_time = float(base_text) * 1000.0
    return buf, writer


def render_hlogs(data: RunData, keys: Sequence[SeriesKey]) -> list[str]:
    """The text of one log per key, in one pass over the intervals. Deterministic for a given run folder."""
    # StartTime and BaseTime must be the same number as read back: a reader that sees StartTime a hair later than
    # BaseTime puts the first interval before the start and skips it. Whole milliseconds, one text for both.
    base_text = f"{data.time_origin():.3f}"
    base = float(base_text)
    outputs = [_writer(data, key, base_text) for key in keys]
    wanted = {key.encode(): i for i, key in enumerate(keys)}
    for item in data.iter_raw_intervals():
        start_s = max(0.0, float(item["start"]) - base)
        end_s = max(start_s, float(item["end"]) - base)
        found: dict[int, list[Any]] = {wanted[k]: entry for k, entry in item.get("h", {}).items() if k in wanted}
        for i, key in enumerate(keys):
            hist = TrackedHistogram(key.metric)
            if i in found:
                hist.add_encoded(found[i][0])
            # the writer reads these stamps when the start is 0 (it treats 0 as "not given")
            hist.hist.set_start_time_stamp((base + start_s) * 1000.0)
            hist.hist.set_end_time_stamp((base + end_s) * 1000.0)
            outputs[i][1].output_interval_histogram(hist.hist, start_s, end_s, max_value_unit_ratio=_US_PER_MS)
    return [buf.getvalue() for buf, _ in outputs]


def render_hlog(data: RunData, key: SeriesKey) -> str:
    """One log's text."""
    return render_hlogs(data, [key])[0]
