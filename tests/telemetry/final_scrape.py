"""A locustfile added after scenarios/multiturn.py in the tests: at ``quit``, after chat-loadgen's own listener has
written the run folder for the last time, it takes one more scrape of the run's figures (the collector /metrics
serves, read directly: nothing here may switch greenlets) into ``final-metrics.prom`` in the working folder."""

from pathlib import Path
from typing import Any

from locust import events
from prometheus_client import generate_latest

from loadgen.locust_plugin.runtime import get_runtime
from loadgen.telemetry.prometheus import RunCollector, registry_for

FINAL_SCRAPE = "final-metrics.prom"


def _final_scrape(**_: Any) -> None:
    rt = get_runtime()
    if rt.aggregator is None:
        return  # a worker: it serves nothing
    Path(FINAL_SCRAPE).write_bytes(generate_latest(registry_for(RunCollector(lambda: rt.aggregator))))


_locust_events: Any = events
_locust_events.quit.add_listener(_final_scrape)
