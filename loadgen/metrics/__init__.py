"""Metrics: the only package that touches hdrhistogram.

Values are integer microseconds. A :class:`MetricsBatch` is a set of histograms and counters keyed by
:class:`SeriesKey` (transport x dialogue x turn x metric); batches merge exactly (HDR encode/decode), which
is how Locust workers ship their figures to the master.
"""

from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import METRIC_RANGES, Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, SeriesKey

__all__ = ["ALL", "METRIC_RANGES", "Metric", "MetricsBatch", "SeriesKey", "TrackedHistogram"]
