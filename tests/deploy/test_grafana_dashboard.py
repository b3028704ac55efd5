"""deploy/grafana's dashboard plots what /metrics serves: every series a query names is one a scrape shows, every
quantile is read from a histogram's buckets grouped by ``le``, and the panels the soak needs are there."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, Count, Metric, SeriesKey, Total
from loadgen.telemetry.prometheus import RunCollector, registry_for
from tests.conftest import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "chat-loadgen-dashboard.json"
SERIES = re.compile(r"\b(chat_loadgen_[a-z0-9_]+)")
QUANTILE = re.compile(r"histogram_quantile\(([0-9.]+), sum by \(([^)]*)\) \(rate\((chat_loadgen_[a-z0-9_]+)\{")


def _served_names() -> set[str]:
    batch = MetricsBatch()
    base = SeriesKey.series("rest")
    for metric in Metric:
        batch.record(base.with_metric(metric), 1000)
    for count in Count:
        batch.counts[base.with_metric(count)] += 1
    batch.totals[base.with_metric(Total.OUTPUT_TOKENS)] += 1.0
    batch.record(SeriesKey(ALL, ALL, 0, str(Metric.GENERATOR_LAG)), 1000)
    agg = RunAggregator()
    agg.merge(batch)
    text = generate_latest(registry_for(RunCollector(lambda: agg, lambda: 3))).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_every_query_names_a_served_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    served = _served_names()
    exprs = _exprs(dashboard)
    assert exprs
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), expr
        for name in SERIES.findall(expr):
            assert name in served, (name, expr)


def test_quantiles_are_read_from_buckets_grouped_by_le() -> None:
    quantiles = [m for expr in _exprs(json.loads(DASHBOARD.read_text())) for m in QUANTILE.findall(expr)]
    assert {(q, name) for q, _, name in quantiles} >= {
        ("0.5", "chat_loadgen_e2e_seconds_bucket"),
        ("0.99", "chat_loadgen_e2e_seconds_bucket"),
        ("0.5", "chat_loadgen_ttft_seconds_bucket"),
        ("0.99", "chat_loadgen_ttft_seconds_bucket"),
        ("0.99", "chat_loadgen_generator_lag_seconds_bucket"),
    }
    for _, by, _ in quantiles:
        assert "le" in [label.strip() for label in by.split(",")]


def test_the_soak_panels_are_there_with_unique_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    text = " ".join(_exprs(dashboard))
    for needed in ("chat_loadgen_turns_total", "chat_loadgen_failures_total", "chat_loadgen_retention_passed_total",
                   "chat_loadgen_retention_checked_total", "chat_loadgen_users", "by (transport, kind)"):  # fmt: skip
        assert needed in text, needed
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "transport"}
