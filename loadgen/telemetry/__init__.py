"""Telemetry for dashboards and traces: what a run exports while it goes.

- :mod:`~loadgen.telemetry.tracing` (and ``locust_tracing``, ``serve_tracing``): OpenTelemetry spans per turn.
- :mod:`~loadgen.telemetry.buckets`: fixed Prometheus bucket bounds for LLM latencies and token counts, and the
  cumulative bucket counts of an HDR histogram at them.
- :mod:`~loadgen.telemetry.prometheus`: a Prometheus collector that reads the run's totals from the aggregator at
  scrape time (the figures summary.json is written from, so the two agree exactly).
- :mod:`~loadgen.telemetry.exposition` and :mod:`~loadgen.telemetry.endpoint`: ``/metrics`` served from a gevent
  WSGI server (``--metrics-port``), in chunks that let the users run between them.
"""
