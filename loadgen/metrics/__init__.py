"""Metrics: the only package that touches hdrhistogram.

Values are integer microseconds. A :class:`MetricsBatch` is a set of histograms, integer counts and
fractional totals keyed by :class:`SeriesKey` (transport x dialogue x turn x metric); batches merge exactly
(HDR encode/decode), which is how Locust workers ship their figures to the master.

- ``keys``: the vocabulary of series names (:class:`Metric`, ``Count``, ``Total``, ``FailureReason``
  ``reason:<kind>:<text>``, ``ContextMetric`` ``<metric>@ctx<bucket>``), built and parsed there only;
- ``histograms``: HDR histograms with a range per metric; ``batch``: the unit of recording and shipping;
- ``turns``: one finished turn into histograms and counters; ``aggregator``: the run's totals, intervals,
  windows and outages, none of which grows with the run's length;
- ``windows``: per-window figures and their drift; ``outages``: outage events per process, merged exactly;
  ``recovery``: the run's outages settled as they age;
- ``summary``, ``rundir``, ``console``: ``summary.json``, the run folder (``intervals.jsonl`` appended,
  checkpoints rewritten), the end-of-run table; ``lag``: the generator's own lag.
"""

from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.histograms import METRIC_RANGES, Metric, TrackedHistogram
from loadgen.metrics.keys import ALL, SeriesKey

__all__ = ["ALL", "METRIC_RANGES", "Metric", "MetricsBatch", "SeriesKey", "TrackedHistogram"]
