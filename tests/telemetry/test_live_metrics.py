"""``--metrics-port`` in real headless runs against the embedded reference server: /metrics answers over HTTP while
the users run, parses with prometheus-client's parser, and a scrape taken after the run folder's last write
(``final_scrape.py``, at ``quit``) equals summary.json exactly: turns, failures by kind, retention checks, tokens,
latency counts and means, and the very bucket counts of histograms.json; with ``--processes 2`` too. A master with
two worker processes of their own serves it from the master only. A busy port stops the run with one line and
exit 2 before any user starts."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from harness import LOCUSTFILE, start_locust
from prometheus_client.parser import text_string_to_metric_families

from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import Metric
from loadgen.telemetry.endpoint import ANNOUNCE
from loadgen.telemetry.prometheus import Snapshot
from tests.deploy.test_master_workers import run_master_and_two_workers

pytestmark = pytest.mark.e2e

LISTENER = Path(__file__).with_name("final_scrape.py")
FINAL_SCRAPE = "final-metrics.prom"
ANNOUNCED = re.compile(re.escape(ANNOUNCE).replace(re.escape("{url}"), r"(http://\S+)"))

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(transport: str, dialogue: str, turn: int | str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"transport": transport, "dialogue": dialogue, "turn": str(turn), **more}.items()))


def metrics_url(log: str) -> str | None:
    match = ANNOUNCED.search(log)
    return match.group(1) if match else None


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return parse(response.read().decode())


def assert_equals_summary(samples: Samples, summary: dict[str, Any], histograms: dict[str, Any]) -> None:
    """Every figure of summary.json that /metrics shows, equal; and the buckets equal histograms.json's."""
    rows = [(r["transport"], r["dialogue"], r["turn"], r) for r in summary["turns"]]
    rows += [(t, "all", "all", figures) for t, figures in summary["transports"].items()]
    assert rows
    for transport, dialogue, turn, row in rows:
        at = labels(transport, dialogue, turn)
        what = f"{transport}/{dialogue}/{turn}"
        assert samples[("chat_loadgen_turns_total", at)] == row["count"], what
        kinds = {k: samples.get(("chat_loadgen_failures_total", labels(transport, dialogue, turn, kind=k)), 0.0)
                 for k in ("transport", "retention", "session")}  # fmt: skip
        assert kinds == {k: float(v) for k, v in row["failures_by_kind"].items()}, what
        assert sum(kinds.values()) == row["failures"], what
        assert samples.get(("chat_loadgen_retention_checked_total", at), 0) == row["retention"]["checked"], what
        assert samples.get(("chat_loadgen_retention_passed_total", at), 0) == row["retention"]["passed"], what
        assert round(samples.get(("chat_loadgen_output_tokens_total", at), 0.0), 1) == row["output_tokens"], what
        latencies = [m.value for m in Metric if f"{m.value}_ms" in row]  # every latency block the summary has
        assert {"e2e", "ttft", "itl", "schedule_lag"} <= set(latencies)
        for metric in latencies:
            block = row[f"{metric}_ms"]
            count = samples.get((f"chat_loadgen_{metric}_seconds_count", at), 0.0)
            assert count == block["count"], (what, metric)
            if count:
                total_us = round(samples[(f"chat_loadgen_{metric}_seconds_sum", at)] * 1_000_000)  # exact
                assert round(total_us / count / 1000.0, 3) == block["mean"], (what, metric)
    cut_off = sum(v for (name, _), v in samples.items() if name == "chat_loadgen_cut_off_turns_total")
    assert cut_off == (summary["run"].get("cut_off_turns") or 0)
    lag = summary["generator_lag_ms"]["count"]
    assert samples.get(("chat_loadgen_generator_lag_seconds_count", labels("all", "all", "all")), 0) == lag
    batch = MetricsBatch()
    batch.merge_wire(histograms)
    expected = parse_families(Snapshot.read(batch))
    buckets = {k: v for k, v in samples.items() if k[0].endswith("_bucket")}
    assert buckets == {k: v for k, v in expected.items() if k[0].endswith("_bucket")}


def parse_families(snapshot: Snapshot) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value for family in snapshot.families() for s in family.samples
    }


#: Failed turns of two kinds: server errors (transport) and, sessions kept by the server, lost ones (session).
FAULTS = ("--history", "server", "--exit-code-on-error", "0",
          "--embedded-server-args", "--faults '0s+60s error 15%; 3s forget-sessions'")  # fmt: skip


@pytest.mark.parametrize("processes", [None, "2"], ids=["one-process-with-faults", "processes-2"])
def test_metrics_are_served_during_the_run_and_equal_the_summary_at_the_end(tmp_path: Path, processes: str) -> None:
    more = ("--processes", processes) if processes else FAULTS
    run = start_locust(tmp_path, "-f", f"{LOCUSTFILE},{LISTENER}", "--metrics-port", "0", *more, users=4,
                       spawn_rate=4, run_time="8s")  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline and run.proc.poll() is None:
            url = metrics_url(run.output())
            time.sleep(0.1)
        assert url is not None and url.startswith("http://127.0.0.1:"), run.output()[-3000:]
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(url.replace("/metrics", "/elsewhere"), timeout=5)
        during: list[Samples] = []
        while run.proc.poll() is None:
            try:
                during.append(scrape(url))
            except (OSError, http.client.HTTPException):
                break  # the run is ending: the server has closed, or the process exited in the middle of a reply
            time.sleep(0.25)
        finished = run.finish(timeout=120)
    finally:
        run.stop()
    assert finished.returncode == 0, finished.output[-3000:]
    assert finished.output.count("chat-loadgen: Prometheus metrics on ") == 1
    live = [s for s in during if s.get(("chat_loadgen_users", ()), 0) > 0]
    assert live, "no scrape answered while the users ran"
    agg = labels("rest", "all", "all")
    assert any(s.get(("chat_loadgen_turns_total", agg), 0) > 0 for s in live)
    final = parse((tmp_path / FINAL_SCRAPE).read_text())
    histograms = json.loads((finished.run_dir / "histograms.json").read_text())
    assert_equals_summary(final, finished.summary, histograms)
    if not processes:
        kinds = {dict(k[1])["kind"] for k, v in final.items() if k[0] == "chat_loadgen_failures_total" and v}
        assert {"transport", "session"} <= kinds, kinds
    last = during[-1]  # the last scrape over HTTP, just before the end: never more than the final figures
    assert 0 < last[("chat_loadgen_turns_total", agg)] <= final[("chat_loadgen_turns_total", agg)]
    locust_requests = sum(n for n, _ in finished.locust_requests().values())
    assert final[("chat_loadgen_turns_total", agg)] == locust_requests


@pytest.mark.parametrize("given", ["option", "environment"])
def test_a_busy_port_stops_the_run_before_any_user_starts(tmp_path: Path, given: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        if given == "option":
            run = start_locust(tmp_path, "--metrics-port", str(port), run_time="30s")
        else:
            run = start_locust(tmp_path, run_time="30s", env={"LOADGEN_METRICS_PORT": str(port)})
        try:
            finished = run.finish(timeout=90)
        finally:
            run.stop()
    assert finished.returncode == 2, finished.output[-3000:]
    lines = [line for line in finished.output.splitlines() if line.startswith("chat-loadgen: --metrics-port")]
    assert lines == [f"chat-loadgen: --metrics-port {port}: 127.0.0.1:{port} is in use; choose another port, or 0 "
                     "for any free one"], finished.output[-3000:]  # fmt: skip
    assert not (tmp_path / "reports" / "run").exists()


def test_the_master_serves_the_merged_figures_and_the_workers_nothing(tmp_path: Path) -> None:
    run = run_master_and_two_workers(tmp_path, (LISTENER,), master_args=("--metrics-port", "0"))
    assert run.master_rc == 0, run.logs
    master_log = (tmp_path / "master.log").read_text(errors="replace")
    assert metrics_url(master_log) is not None, run.logs
    for worker in ("worker1", "worker2"):
        assert metrics_url((tmp_path / f"{worker}.log").read_text(errors="replace")) is None
    assert run.summary["workers"]["reported"] == 2
    final = parse((tmp_path / FINAL_SCRAPE).read_text())
    histograms = json.loads((tmp_path / "reports" / "run" / "histograms.json").read_text())
    assert_equals_summary(final, run.summary, histograms)
    logged = sum(len(lines) for lines in run.turn_logs.values())
    assert final[("chat_loadgen_turns_total", labels("rest", "all", "all"))] == logged > 0
