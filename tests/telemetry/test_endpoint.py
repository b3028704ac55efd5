"""The /metrics server in a gevent process of its own (as Locust runs it): a scrape of a large run over HTTP gives
the registry's whole text, while a greenlet waiting on a 10 ms timer (a user's think time, the lag probe) keeps
ticking through it instead of waiting for its end; a second server on the same port is refused with one line."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT

SCRIPT = r"""
from gevent import monkey; monkey.patch_all()
import json, time, urllib.request
import gevent
from prometheus_client import generate_latest
from loadgen.errors import ConfigError
from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import Count, Metric, SeriesKey
from loadgen.telemetry.endpoint import serve_metrics

batch = MetricsBatch()
for d in range(20):
    for t in range(1, 11):  # 200 (dialogue, turn) series: a scrape of ~25,000 lines
        base = SeriesKey.series("rest", f"dialogue-{d}", t)
        for i, metric in enumerate(Metric):
            for v in range(50):
                batch.record(base.with_metric(metric), 1000 + 997 * v * (i + 1))
        batch.counts[base.with_metric(Count.TURNS)] += 50
agg = RunAggregator()
agg.merge(batch)
said = []
endpoint = serve_metrics(0, "127.0.0.1", lambda: agg, lambda: 9, announce=said.append)
ticks = []
def tick():
    while True:
        gevent.sleep(0.01)
        ticks.append(time.perf_counter())
ticker = gevent.spawn(tick)
gevent.sleep(0.05)
began = time.perf_counter()
text = urllib.request.urlopen(endpoint.url, timeout=60).read()
ended = time.perf_counter()
ticker.kill()
try:
    serve_metrics(endpoint.port, "127.0.0.1", lambda: agg, lambda: 9, announce=said.append)
    refused = None
except ConfigError as exc:
    refused = str(exc)
print(json.dumps({
    "said": said, "port": endpoint.port, "same": text == generate_latest(endpoint.registry), "lines": text.count(b"\n"),
    "took_s": ended - began, "ticks": sum(began < t < ended for t in ticks), "refused": refused,
}))
"""


def test_a_scrape_streams_the_whole_text_while_timers_keep_ticking() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    port = got["port"]
    assert got["said"] == [f"chat-loadgen: Prometheus metrics on http://127.0.0.1:{port}/metrics"]
    assert got["same"] and got["lines"] > 20_000
    # a timer of 10 ms fires ~100 times a second; a scrape that never let the event loop turn would see none
    expected = got["took_s"] / 0.01
    assert got["ticks"] >= max(3, expected / 4), got
    in_use = f"127.0.0.1:{port} is in use; choose another port, or 0 for any free one"
    assert got["refused"] == f"--metrics-port {port}: {in_use}"
