"""The run aggregator (loadgen.metrics.aggregator) held to exact values: what a new one and ``begin`` start from,
the window length and outage horizon it is built with, the ``updates`` count every change bumps (and every
non-change leaves alone), which series the totals and the intervals keep, when an interval closes and what its
snapshot holds, ``reset_figures``, and the sections summary.json reads."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.metrics.aggregator import EVENT_DELAY_S, IntervalSnapshot, RunAggregator
from loadgen.metrics.batch import PAUSE_EVERY, WIRE_VERSION, MetricsBatch
from loadgen.metrics.keys import Count, Metric, SeriesKey
from loadgen.metrics.outages import OutageRecorder
from loadgen.metrics.windows import drift_of

T0 = 1000.0
REST = SeriesKey.series("rest")  # the transport's aggregate series (dialogue "*")
TRAVEL = SeriesKey.series("rest", "travel", 2)  # one dialogue's turn 2
NOTHING = {"windows": {"window_s": 5.0, "rows": []}, "drift": {}, "outages": [], "recovery": {}}


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _batch(turns: int = 1, *, dialogue_turns: int = 0, e2e_us: tuple[int, ...] = ()) -> MetricsBatch:
    batch = MetricsBatch()
    if turns:
        batch.counts[REST.with_metric(Count.TURNS)] += turns
    if dialogue_turns:
        batch.counts[TRAVEL.with_metric(Count.TURNS)] += dialogue_turns
    for us in e2e_us:
        batch.record(REST.with_metric(Metric.E2E), us)
        batch.record(TRAVEL.with_metric(Metric.E2E), us)
    return batch


def _outage_events(fail_at: float, back_at: float, user: str = "u1") -> dict[str, Any]:
    recorder = OutageRecorder()
    recorder.turn("rest", user, fail_at, fail_at + 0.5, False)
    recorder.turn("rest", user, back_at, back_at + 0.25, True)
    return recorder.take_wire()


def test_a_new_aggregator_starts_at_its_clock_with_nothing_recorded() -> None:
    agg = RunAggregator(clock=Clock())
    assert agg.interval_s == 5.0
    assert agg.started_at == T0 and agg.now == T0
    assert agg.updates == 0
    assert agg.intervals == [] and agg.intervals_closed == 0
    assert agg.total.is_empty()
    assert agg.on_interval is None
    # outage events may arrive a turn's time-out (60 s by default) plus EVENT_DELAY_S after they happened
    assert EVENT_DELAY_S == 15.0
    assert agg.outages.horizon_s == 75.0
    assert RunAggregator(clock=Clock(), turn_timeout_s=30.0).outages.horizon_s == 45.0
    # no run length, no --drift-window: windows start one interval long and may double
    assert (agg.windows.started_at, agg.windows.window_s, agg.windows.may_double) == (T0, 5.0, True)
    assert agg.sections() == (NOTHING, [])


@pytest.mark.parametrize(
    ("kwargs", "window_s", "may_double"),
    [
        ({}, 5.0, True),
        ({"drift_window_s": 30.0}, 30.0, False),  # --drift-window as given
        ({"drift_window_s": 2.0}, 5.0, False),  # never shorter than an interval
        ({"run_s": 800.0}, 100.0, False),  # a run of known length: an eighth of it
        ({"run_s": 800.0, "drift_window_s": 30.0}, 30.0, False),
    ],
)
def test_the_window_length_comes_from_the_drift_window_or_the_run_length(
    kwargs: dict[str, float], window_s: float, may_double: bool
) -> None:
    clock = Clock()
    agg = RunAggregator(interval_s=5.0, clock=clock, **kwargs)
    assert (agg.windows.started_at, agg.windows.window_s, agg.windows.may_double) == (T0, window_s, may_double)
    # a later test (begin) and Locust's "reset stats" (reset_figures) build their windows the same way
    agg.begin(2000.0)
    assert (agg.windows.started_at, agg.windows.window_s, agg.windows.may_double) == (2000.0, window_s, may_double)
    clock.t = 3000.0
    agg.reset_figures()
    assert (agg.windows.started_at, agg.windows.window_s, agg.windows.may_double) == (3000.0, window_s, may_double)
    assert agg.sections()[0]["windows"] == {"window_s": window_s, "rows": []}


def test_every_change_bumps_updates_once_and_nothing_else_does() -> None:
    agg = RunAggregator(interval_s=3600.0, clock=Clock())
    assert agg.updates == 0
    agg.merge(MetricsBatch())  # empty: no change
    assert agg.updates == 0
    agg.merge(_batch(2))
    assert agg.updates == 1
    agg.merge(_batch(2))
    assert agg.updates == 2
    agg.merge_wire(_batch(1).to_wire())
    assert agg.updates == 3
    agg.merge_unsteady(MetricsBatch())  # empty: no change
    assert agg.updates == 3
    agg.merge_unsteady(_batch(1))
    assert agg.updates == 4
    agg.merge_unsteady_wire(_batch(1).to_wire())
    assert agg.updates == 5
    agg.merge_outages_wire({"v": 1, "t": {}})  # no events: no change
    agg.merge_outages_wire(OutageRecorder().take_wire())
    assert agg.updates == 5
    agg.merge_outages_wire(_outage_events(T0 + 1, T0 + 2))
    assert agg.updates == 6
    agg.maybe_roll(force=True)  # an interval closing is no change of the figures
    agg.settle()
    assert agg.updates == 6
    agg.reset_figures()
    assert agg.updates == 7
    agg.begin(T0 + 10)  # a new test: never goes back
    assert agg.updates == 8
    agg.begin(T0 + 20)
    assert agg.updates == 9


def test_totals_keep_every_series_and_intervals_only_the_aggregate_ones() -> None:
    clock = Clock()
    agg = RunAggregator(interval_s=5.0, clock=clock)
    agg.merge(_batch(2, dialogue_turns=2, e2e_us=(1000,)))
    agg.merge_wire(_batch(3, dialogue_turns=3, e2e_us=(2000, 3000)).to_wire())
    agg.merge_unsteady(_batch(5, dialogue_turns=5, e2e_us=(4000,)))
    agg.merge_unsteady_wire(_batch(7, dialogue_turns=7, e2e_us=(5000,)).to_wire())
    turns, e2e = REST.with_metric(Count.TURNS), REST.with_metric(Metric.E2E)
    travel_turns, travel_e2e = TRAVEL.with_metric(Count.TURNS), TRAVEL.with_metric(Metric.E2E)
    # the totals: the steady turns only, every series
    assert dict(agg.total.counts) == {turns: 5, travel_turns: 5}
    assert agg.total.histograms[e2e].count == 3 and agg.total.histograms[travel_e2e].count == 3
    clock.t = T0 + 5
    agg.maybe_roll()
    [interval] = agg.intervals
    # the interval: steady and unsteady turns, the aggregate series only
    assert interval.wire["v"] == WIRE_VERSION
    assert interval.wire["c"] == {turns.encode(): 2 + 3 + 5 + 7}
    assert list(interval.wire["h"]) == [e2e.encode()]
    again = MetricsBatch()
    again.merge_wire(interval.wire)
    assert again.histograms[e2e].count == 5 and again.histograms[e2e].value_sum == 15000


def test_a_merge_pauses_between_groups_of_histograms_of_the_totals() -> None:
    batch = MetricsBatch()
    for metric in (Metric.E2E, Metric.TTFT, Metric.ITL, Metric.TPOT):
        batch.record(REST.with_metric(metric), 1000)
    paused: list[int] = []
    agg = RunAggregator(interval_s=3600.0, clock=Clock())
    agg.merge(batch, pause=lambda: paused.append(len(agg.total.histograms)))
    assert PAUSE_EVERY == 2
    assert paused == [2, 4]  # after every second histogram added to the totals, none for the interval
    assert len(agg.total.histograms) == 4


def test_an_interval_closes_once_it_is_interval_s_long_and_an_empty_one_is_not_kept() -> None:
    clock = Clock()
    agg = RunAggregator(interval_s=5.0, clock=clock)
    clock.t = T0 + 4.5
    agg.merge(_batch(2))  # 4.5 s: still open
    assert agg.intervals == [] and agg.intervals_closed == 0
    clock.t = T0 + 5.0
    agg.maybe_roll()  # exactly 5 s: closes
    [first] = agg.intervals
    assert (first.start, first.end) == (T0, T0 + 5.0)
    assert first.wire == {"v": WIRE_VERSION, "h": {}, "c": {"rest|*|0|count": 2}}
    assert first.to_json() == {"start": T0, "end": T0 + 5.0, "v": WIRE_VERSION, "h": {}, "c": {"rest|*|0|count": 2}}
    assert agg.intervals_closed == 1
    clock.t = T0 + 11.0
    agg.maybe_roll()  # 6 s with nothing in it: not kept, but the next interval starts now
    assert len(agg.intervals) == 1 and agg.intervals_closed == 1
    clock.t = T0 + 12.0
    agg.merge(_batch(3))
    assert len(agg.intervals) == 1  # 1 s since the last roll
    clock.t = T0 + 16.0
    agg.merge(_batch(1))  # 5 s since the last roll: this merge closes it
    second = agg.intervals[-1]
    assert (second.start, second.end, second.wire["c"]) == (T0 + 11.0, T0 + 16.0, {"rest|*|0|count": 4})
    assert agg.intervals_closed == 2
    clock.t = T0 + 17.0
    agg.maybe_roll(force=True)  # forced: closes even with nothing in it
    third = agg.intervals[-1]
    assert (third.start, third.end, third.wire) == (T0 + 16.0, T0 + 17.0, {"v": WIRE_VERSION, "h": {}, "c": {}})
    assert agg.intervals_closed == 3 and len(agg.intervals) == 3
    # every closed interval with data went into the windows (one interval each: 5 s windows)
    rows = agg.sections()[0]["windows"]["rows"]
    assert [(r["start_s"], r["end_s"], r["transports"]["rest"]["turns"]) for r in rows] == [
        (0.0, 5.0, 2),
        (11.0, 16.0, 4),
    ]


def test_an_interval_sink_gets_the_snapshots_and_none_is_kept() -> None:
    clock = Clock()
    got: list[IntervalSnapshot] = []
    agg = RunAggregator(interval_s=5.0, clock=clock, on_interval=got.append)
    agg.merge(_batch(2))
    clock.t = T0 + 6.0
    agg.maybe_roll()
    clock.t = T0 + 7.0
    agg.maybe_roll(force=True)
    assert agg.intervals == []
    assert [(s.start, s.end, s.wire["c"]) for s in got] == [
        (T0, T0 + 6.0, {"rest|*|0|count": 2}),
        (T0 + 6.0, T0 + 7.0, {}),
    ]
    assert agg.intervals_closed == 2


def test_outage_events_are_merged_only_when_there_are_some() -> None:
    agg = RunAggregator(interval_s=5.0, clock=Clock())
    agg.merge_outages_wire({})  # nothing at all: not even a version to check
    agg.merge_outages_wire({"v": 99, "t": {}})
    assert agg.updates == 0
    with pytest.raises(ValueError, match="outage events wire version 99 is not 1"):
        agg.merge_outages_wire({"v": 99, "t": {"rest": {"f": [], "c": []}}})
    agg.merge_outages_wire(_outage_events(T0 + 20.0, T0 + 30.0))
    sections, warnings = agg.sections()
    assert sections["outages"] == [
        {
            "transport": "rest",
            "start_s": 20.5,
            "end_s": 30.25,
            "duration_s": 9.75,
            "failed_turns": 1,
            "users": 1,
            "recovery_s": 0.0,
        }
    ]
    assert sections["recovery"] == {"rest": {"outages": 1, "max_s": 0.0, "p50_s": 0.0}}
    assert warnings == []


def test_settling_outages_keeps_the_figures_and_drops_the_events() -> None:
    clock = Clock()
    agg = RunAggregator(interval_s=5.0, clock=clock, turn_timeout_s=30.0)
    agg.merge_outages_wire(_outage_events(T0 + 20.0, T0 + 30.0))
    before = agg.sections()[0]
    # the failure was done at 20.5 s: within the horizon (30 s + EVENT_DELAY_S) nothing is settled nor folded
    clock.t = T0 + 20.5 + 45.0 - 0.5
    agg.settle()
    assert agg.outages.events.of("rest").failures == [(T0 + 20.0, T0 + 20.5, "u1")]
    # the outage settles once its users are back (30.25 s) and its longest turn (0.5 s) is past the horizon
    clock.t = T0 + 30.75 + 45.0 + 0.25
    agg.settle()
    assert agg.outages.events.of("rest").failures == []
    assert agg.outages.events.of("rest").comebacks == []
    assert agg.sections()[0] == before


def test_sections_are_the_windows_their_drift_and_the_outages_from_the_runs_start() -> None:
    clock = Clock()
    agg = RunAggregator(interval_s=5.0, clock=clock, drift_window_s=10.0)
    failed = MetricsBatch()
    failed.counts[REST.with_metric(Count.TURNS)] += 4
    failed.counts[REST.with_metric(Count.FAILURES)] += 1
    failed.record(REST.with_metric(Metric.E2E), 2000)
    agg.merge(failed)
    clock.t = T0 + 5.0
    agg.maybe_roll()
    agg.merge(_batch(4))
    clock.t = T0 + 10.0
    agg.maybe_roll()  # two intervals: the first 10 s window closes
    clock.t = T0 + 12.0
    agg.merge(_batch(2))
    clock.t = T0 + 15.0
    agg.maybe_roll()  # into the open window (10 s -)
    agg.merge_outages_wire(_outage_events(T0 + 20.0, T0 + 30.0))
    clock.t = T0 + 17.0
    sections, warnings = agg.sections()
    assert list(sections) == ["windows", "drift", "outages", "recovery"]
    windows = sections["windows"]
    assert windows["window_s"] == 10.0
    rows = windows["rows"]
    # times from the run's start; the open window up to now
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(0.0, 10.0), (10.0, 17.0)]
    assert rows[0]["transports"]["rest"]["turns"] == 8 and rows[0]["transports"]["rest"]["error_rate"] == 0.125
    assert rows[0]["transports"]["rest"]["e2e_ms"] == {"p50": 2.0, "p99": 2.0}
    assert rows[1]["transports"]["rest"]["turns"] == 2 and rows[1]["transports"]["rest"]["error_rate"] == 0.0
    assert sections["drift"] == drift_of(rows) and list(sections["drift"]) == ["rest"]
    assert [(o["start_s"], o["end_s"]) for o in sections["outages"]] == [(20.5, 30.25)]
    assert sections["recovery"] == {"rest": {"outages": 1, "max_s": 0.0, "p50_s": 0.0}}
    assert warnings == []
    clock.t = T0 + 19.0
    assert agg.sections()[0]["windows"]["rows"][1]["end_s"] == 19.0  # read at the clock's time each call


def test_reset_figures_drops_totals_windows_and_outages_but_intervals_go_on() -> None:
    clock = Clock()
    agg = RunAggregator(interval_s=5.0, clock=clock, turn_timeout_s=30.0)
    agg.merge(_batch(3, dialogue_turns=3))
    agg.merge_outages_wire(_outage_events(T0 + 1.0, T0 + 2.0))
    clock.t = T0 + 5.0
    agg.maybe_roll()
    clock.t = T0 + 100.0
    agg.maybe_roll()  # nothing since: the next interval starts at 100 s
    agg.reset_figures()
    assert agg.total.is_empty()
    assert agg.started_at == T0
    assert len(agg.intervals) == 1 and agg.intervals_closed == 1
    assert agg.outages.horizon_s == 45.0
    assert agg.sections() == (NOTHING, [])
    agg.merge_outages_wire(_outage_events(T0 + 101.0, T0 + 102.0))
    agg.settle()
    clock.t = T0 + 102.0
    agg.merge(_batch(2))
    clock.t = T0 + 105.0
    agg.maybe_roll()
    assert dict(agg.total.counts) == {REST.with_metric(Count.TURNS): 2}
    sections = agg.sections()[0]
    # windows now count from the reset; outages still from the run's start
    assert [(r["start_s"], r["end_s"]) for r in sections["windows"]["rows"]] == [(0.0, 5.0)]
    assert [o["start_s"] for o in sections["outages"]] == [101.5]
    assert [(s.start, s.end) for s in agg.intervals] == [(T0, T0 + 5.0), (T0 + 100.0, T0 + 105.0)]
    # windows still double: 17 windows of 5 s with data become 9 of 10 s
    for i in range(2, 18):
        agg.merge(_batch(1))
        clock.t = T0 + 100.0 + 5.0 * i
        agg.maybe_roll()
    windows = agg.sections()[0]["windows"]
    assert windows["window_s"] == 10.0 and len(windows["rows"]) == 9


def test_begin_starts_a_new_test_afresh() -> None:
    clock = Clock()
    agg = RunAggregator(interval_s=5.0, clock=clock)
    agg.merge(_batch(3))
    agg.merge_unsteady(_batch(1))
    agg.merge_outages_wire(_outage_events(T0 + 1.0, T0 + 2.0))
    clock.t = T0 + 5.0
    agg.maybe_roll()
    agg.merge(_batch(4))  # in the open interval
    agg.begin(T0 + 50.0)
    assert agg.started_at == T0 + 50.0
    assert agg.total.is_empty() and agg.intervals == [] and agg.intervals_closed == 0
    assert agg.sections()[0]["outages"] == []
    clock.t = T0 + 51.0
    agg.maybe_roll(force=True)  # the interval open before is gone: this one starts at the new start
    [snapshot] = agg.intervals
    assert (snapshot.start, snapshot.end, snapshot.wire["c"]) == (T0 + 50.0, T0 + 51.0, {})


def test_held_keeps_merges_off() -> None:
    agg = RunAggregator(interval_s=5.0, clock=Clock())
    with agg.held():
        assert agg._lock.locked()
    assert not agg._lock.locked()
