"""The run's outages kept at constant cost (loadgen.metrics.recovery): settled as they age, exactly as one look
at every event would find them."""

from __future__ import annotations

import json
import random

import pytest

from loadgen.metrics.outages import OutageEvents, OutageRecorder, find_outages
from loadgen.metrics.recovery import MAX_LISTED, OutageTracker

T0 = 1_000_000.0
HORIZON_S = 20.0


def _night(seed: int, users: int = 12, until: float = 600.0) -> list[tuple[str, float, float, bool]]:
    """Turns of ``users`` users (think 1-3 s, turns 0.3 s) against a service down at 100-130 s, stalled at
    250-260 s (turns time out after 8 s), erratic at 400-420 s, with a third of the users recovering 3 s late."""
    rng = random.Random(seed)
    turns = []
    for user in range(users):
        t = rng.uniform(0, 2)
        while t < until:
            took, ok = 0.3, True
            if 100 <= t < 130 or (user % 3 == 0 and 130 <= t < 133):
                took, ok = 0.01, False
            elif 250 <= t < 260:
                took, ok = 8.0, False
            elif 400 <= t < 420 and rng.random() < 0.3:
                ok = False
            turns.append((f"u{user}", T0 + t, T0 + t + took, ok))
            t += took + rng.uniform(1, 3)
    return sorted(turns, key=lambda turn: turn[2])


def _feed(recorders: list[OutageRecorder], turns: list[tuple[str, float, float, bool]]) -> None:
    for user, sent, done, ok in turns:
        recorders[int(user[1:]) % len(recorders)].turn("rest", user, sent, done, ok)


def _all_at_once(turns: list[tuple[str, float, float, bool]]) -> list[dict[str, object]]:
    recorder = OutageRecorder()
    _feed([recorder], turns)
    events = OutageEvents()
    events.merge_wire(recorder.take_wire())
    return [o.to_json(T0) for o in find_outages("rest", events.of("rest"))]


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_settling_as_the_run_goes_finds_what_one_look_at_every_event_finds(processes: int) -> None:
    turns = _night(seed=3)
    expected = _all_at_once(turns)
    assert len(expected) >= 3
    recorders = [OutageRecorder() for _ in range(processes)]
    tracker = OutageTracker(HORIZON_S)
    now = T0
    for step in range(0, 640, 3):  # reports every 3 s, through JSON as workers ship them; a settle each time
        now = T0 + step
        _feed(recorders, [t for t in turns if now - 3 < t[2] <= now])
        for recorder in recorders:
            tracker.merge_wire(json.loads(json.dumps(recorder.take_wire())))
        tracker.settle(now)
    outages, recovery, warnings = tracker.to_json(T0)
    assert outages == expected
    assert warnings == []
    ended = [o["recovery_s"] for o in expected if o["recovery_s"] is not None]
    assert recovery["rest"]["outages"] == len(expected)
    assert recovery["rest"]["max_s"] == pytest.approx(max(ended), abs=0.002)
    # what is settled is gone from the events: a night keeps only the last horizon's
    assert len(tracker.events.of("rest").failures) == 0


def test_a_service_down_for_hours_is_folded_into_one_open_outage() -> None:
    tracker = OutageTracker(HORIZON_S)
    recorder = OutageRecorder()
    recorder.turn("rest", "a", T0, T0 + 0.1, True)
    users = [f"u{i}" for i in range(50)]
    t = T0 + 1
    while t < T0 + 4 * 3600:  # 50 users failing every second for four hours
        for user in users:
            recorder.turn("rest", user, t, t + 0.01, False)
        t += 1
        if int(t) % 30 == 0:
            tracker.merge_wire(recorder.take_wire())
            tracker.settle(t)
    tracker.merge_wire(recorder.take_wire())
    tracker.settle(t)
    assert len(tracker.events.of("rest").failures) <= 50 * (HORIZON_S + 31)  # not 720,000
    (outage,) = tracker.to_json(T0)[0]
    assert outage["end_s"] is None and outage["recovery_s"] is None
    assert (outage["start_s"], outage["failed_turns"], outage["users"]) == (1.01, 50 * 4 * 3600 - 50, 50)
    # and when it comes back, the outage ends where one look at everything would end it
    recorder.turn("rest", "u0", t + 1, t + 1.2, True)
    tracker.merge_wire(recorder.take_wire())
    (back,) = tracker.to_json(T0)[0]
    assert back["end_s"] == pytest.approx(t + 1.2 - T0) and back["failed_turns"] == outage["failed_turns"]


def test_a_flapping_service_lists_the_first_outages_and_counts_them_all() -> None:
    tracker = OutageTracker(HORIZON_S)
    recorder = OutageRecorder()
    n = MAX_LISTED + 40
    for k in range(n):  # one failed turn, then a success 0.5 s later (recovery 0), every 2 s
        at = T0 + 2 * k
        recorder.turn("rest", "a", at, at + 0.1, False)
        recorder.turn("rest", "a", at + 0.5, at + 0.6, True)
        if k % 10 == 0:
            tracker.merge_wire(recorder.take_wire())
            tracker.settle(at)
    tracker.merge_wire(recorder.take_wire())
    tracker.settle(T0 + 2 * n + 100)
    outages, recovery, warnings = tracker.to_json(T0)
    assert len(outages) == MAX_LISTED
    assert recovery == {"rest": {"outages": n, "max_s": 0.0, "p50_s": 0.0}}
    assert warnings == [f"rest: {n} outages, the first {MAX_LISTED} listed in summary.json"]


def test_no_failures_no_outages() -> None:
    tracker = OutageTracker(HORIZON_S)
    recorder = OutageRecorder()
    recorder.turn("rest", "a", T0, T0 + 0.2, True)
    tracker.merge_wire(recorder.take_wire())
    tracker.settle(T0 + 100)
    assert tracker.to_json(T0) == ([], {}, [])
    assert tracker.is_empty()
