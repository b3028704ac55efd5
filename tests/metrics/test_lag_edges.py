"""The generator lag probe (loadgen.metrics.lag): how late each tick is recorded (exact microseconds from a scripted
clock, never below 0, the tick asked for), and the probe's greenlet in gevent's loop: one per probe, started
again once dead, and a stop that never yields to other greenlets."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import gevent
import gevent.event
import pytest

from loadgen.metrics import lag
from loadgen.metrics.lag import TICK_S, LagProbe


class _Stop(Exception):
    pass


def _scripted(monkeypatch: pytest.MonkeyPatch, times: list[float], ticks: int) -> list[float]:
    """perf_counter reads ``times`` in turn; gevent.sleep returns ``ticks`` times, then stops the loop."""
    read: Iterator[float] = iter(times)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) > ticks:
            raise _Stop

    monkeypatch.setattr(lag, "time", SimpleNamespace(perf_counter=lambda: next(read)))
    monkeypatch.setattr(lag, "gevent", SimpleNamespace(sleep=sleep))
    return slept


def test_each_tick_records_how_late_it_woke_in_microseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    # tick 0.25 s: woke 1.5 s late, on time, early (recorded as 0), 2 us late
    times = [100.0, 101.75, 200.0, 200.25, 300.0, 300.125, 400.0, 400.250002]
    slept = _scripted(monkeypatch, [*times, 500.0], ticks=4)
    got: list[int] = []
    probe = LagProbe(got.append, tick_s=0.25)
    with pytest.raises(_Stop):
        probe._run()
    assert got == [1_500_000, 0, 0, 2]
    assert all(type(us) is int for us in got)
    assert slept == [0.25] * 5


def test_the_default_tick_is_10_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = _scripted(monkeypatch, [10.0, 10.0125, 20.0], ticks=1)
    got: list[int] = []
    with pytest.raises(_Stop):
        LagProbe(got.append)._run()
    assert TICK_S == 0.010
    assert slept == [0.010, 0.010]
    assert got == [2500]


def test_one_greenlet_per_probe_started_again_once_dead_and_a_stop_that_does_not_yield() -> None:
    seen: list[tuple[int, gevent.Greenlet]] = []
    ticked = gevent.event.Event()

    def record(us: int) -> None:
        seen.append((us, gevent.getcurrent()))
        if len(seen) >= 3:
            ticked.set()

    probe = LagProbe(record, tick_s=0.001)
    assert not probe.running
    probe.stop()  # nothing to stop
    assert not probe.running
    probe.start()
    assert probe.running
    probe.start()  # running already: the same greenlet goes on
    assert ticked.wait(timeout=5)
    first = seen[0][1]
    assert all(g is first for _, g in seen)
    assert all(type(us) is int and us >= 0 for us, _ in seen)

    first.kill()  # dead by other means: the probe says so and starts a new greenlet
    assert first.dead and not probe.running
    seen.clear()
    ticked.clear()
    probe.start()
    assert probe.running
    assert ticked.wait(timeout=5)
    second = seen[0][1]
    assert second is not first and all(g is second for _, g in seen)

    other: list[str] = []
    gevent.spawn(other.append, "ran")
    probe.stop()  # does not wait for the greenlet to die: no other greenlet ran meanwhile
    assert other == []
    assert not probe.running
    second.join(timeout=5)
    assert second.dead and other == ["ran"]
