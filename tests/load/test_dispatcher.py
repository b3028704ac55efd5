"""The open model's dispatcher: due arrivals go to idle slots with their intended time, or are dropped and counted,
never delayed; live conversations are integrated over time. Driven with a hand-moved clock; the slots are real
greenlets."""

from __future__ import annotations

import time
from collections import Counter

import gevent
import pytest

from loadgen.load.arrivals import ArrivalClock, ArrivalKind
from loadgen.load.dispatcher import Dispatcher
from loadgen.metrics.keys import Count


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _dispatcher(rate: float = 10.0) -> tuple[Dispatcher, Clock, Counter[Count]]:
    now = Clock()
    recorded: Counter[Count] = Counter()

    def record(counter: Count, amount: int) -> None:
        recorded[counter] += amount

    clock = ArrivalClock(rate, ArrivalKind.CONSTANT, start=0.0)  # arrivals due at 0.1, 0.2, 0.3, ...
    return Dispatcher(clock, record, now=now), now, recorded


def _slots(dispatcher: Dispatcher, n: int) -> list[gevent.Greenlet]:
    slots = [gevent.spawn(dispatcher.wait_for_arrival) for _ in range(n)]
    gevent.sleep(0)  # each one waits now
    assert dispatcher.idle == n
    return slots


def test_due_arrivals_go_to_idle_slots_longest_idle_first_with_their_intended_time() -> None:
    dispatcher, now, recorded = _dispatcher()
    first, second, third = _slots(dispatcher, 3)
    now.t = 0.25
    assert dispatcher.tick() == pytest.approx(0.3)  # the next one is not due yet
    gevent.sleep(0)
    assert first.value == pytest.approx(0.1) and second.value == pytest.approx(0.2)
    assert not third.ready() and dispatcher.idle == 1
    c = dispatcher.counts
    assert (c.offered, c.started, c.dropped, c.live) == (2, 2, 0, 2)
    assert recorded[Count.ARRIVALS] == 2 and recorded[Count.ARRIVALS_STARTED] == 2
    assert recorded[Count.ARRIVALS_DROPPED] == 0
    third.kill()


def test_an_arrival_due_while_every_slot_is_busy_is_dropped_and_the_schedule_is_kept() -> None:
    dispatcher, now, recorded = _dispatcher()
    (slot,) = _slots(dispatcher, 1)
    now.t = 0.35  # three arrivals due, one slot
    assert dispatcher.tick() == pytest.approx(0.4)  # dropped arrivals do not move the schedule
    gevent.sleep(0)
    assert slot.value == pytest.approx(0.1)
    c = dispatcher.counts
    assert (c.offered, c.started, c.dropped) == (3, 1, 2)
    assert (recorded[Count.ARRIVALS], recorded[Count.ARRIVALS_DROPPED]) == (3, 2)
    dispatcher.done()  # the slot's conversation ends: it takes the next arrival
    again = gevent.spawn(dispatcher.wait_for_arrival)
    gevent.sleep(0)
    now.t = 0.4
    dispatcher.tick()
    gevent.sleep(0)
    assert again.value == pytest.approx(0.4)
    assert (dispatcher.counts.started, dispatcher.counts.dropped) == (2, 2)


def test_a_slot_stopped_while_it_waits_leaves_the_idle_queue() -> None:
    dispatcher, now, _ = _dispatcher()
    first, second = _slots(dispatcher, 2)
    first.kill()
    assert dispatcher.idle == 1
    now.t = 0.25
    dispatcher.tick()
    gevent.sleep(0)
    assert second.value == pytest.approx(0.1)
    assert (dispatcher.counts.started, dispatcher.counts.dropped) == (1, 1)


def test_a_slot_stopped_right_after_it_was_handed_an_arrival_ends_that_conversation() -> None:
    dispatcher, now, _ = _dispatcher()
    (slot,) = _slots(dispatcher, 1)
    slot.kill(block=False)  # the stop is on its way
    now.t = 0.1
    dispatcher.tick()  # handed before the stop lands
    gevent.sleep(0)
    assert slot.dead and isinstance(slot.value, gevent.GreenletExit)
    assert dispatcher.counts.started == 1 and dispatcher.counts.live == 0


def test_live_conversations_are_integrated_over_time_and_their_maximum_kept() -> None:
    dispatcher, now, recorded = _dispatcher()
    _slots(dispatcher, 3)
    now.t = 0.2  # two start (at 0.1 and 0.2, both handed now)
    dispatcher.tick()
    now.t = 0.7
    dispatcher.done()  # 2 live for 0.5 s
    now.t = 1.2
    dispatcher.tick()  # 0.3 .. 1.2: 1 live + the arrivals at 0.3 (1 more), then no idle slot: dropped
    assert dispatcher.counts.live_max == 2 and recorded[Count.ARRIVALS_LIVE_MAX] == 2
    now.t = 2.2
    dispatcher.stop()  # the live time up to the stop is recorded
    assert dispatcher.counts.live == 2
    assert recorded[Count.ARRIVALS_LIVE_MS] == dispatcher.counts.live_ms == 2 * 500 + 1 * 500 + 2 * 1000
    assert recorded[Count.ARRIVALS_DISPATCH_MS] == 2200  # from its making (no start here) to its stop
    now.t = 3.0
    dispatcher.done()
    assert dispatcher.counts.live_ms == 3500 and recorded[Count.ARRIVALS_DISPATCH_MS] == 2200  # none after the stop


def test_a_new_share_halves_the_rate_and_the_run_time_counts_at_each_share() -> None:
    dispatcher, now, recorded = _dispatcher(rate=10.0)  # one process: the whole 10/s
    _slots(dispatcher, 50)
    now.t = 1.0
    dispatcher.tick()
    assert dispatcher.counts.offered == 10
    dispatcher.set_rate(10.0, shares=2)  # a worker joined: this process now runs 5/s
    assert dispatcher.clock.rate_per_s == pytest.approx(5.0)
    now.t = 3.0
    dispatcher.tick()
    assert dispatcher.counts.offered == 10 + 10  # 1.0 s at 10/s, then 2.0 s at 5/s
    dispatcher.stop()
    assert recorded[Count.ARRIVALS_DISPATCH_MS] == 3000  # this process's own time
    assert recorded[Count.ARRIVALS_RUN_MS] == 1000 + 2000 // 2  # its share of the run's time: 1 s whole, 2 s half
    assert recorded[Count.ARRIVALS_REQUESTED_MILLI] == 1000 * (10 + 10)  # asked for: 1 s at 10/s + 2 s at 5/s


def test_a_clock_at_rate_zero_offers_nothing_until_a_rate_step() -> None:
    dispatcher, now, _ = _dispatcher(rate=0.0)
    _slots(dispatcher, 1)
    now.t = 5.0
    assert dispatcher.tick() == float("inf")
    dispatcher.set_rate(10.0)  # resumes one gap after now
    assert dispatcher.clock.peek() == pytest.approx(5.1)
    now.t = 5.1
    dispatcher.tick()
    assert dispatcher.counts.started == 1


def test_the_running_dispatcher_hands_out_arrivals_on_time() -> None:
    clock = ArrivalClock(100.0, ArrivalKind.CONSTANT, start=time.perf_counter())
    dispatcher = Dispatcher(clock)
    lags: list[float] = []

    def slot() -> None:
        while True:
            intended = dispatcher.wait_for_arrival()
            lags.append(time.perf_counter() - intended)
            dispatcher.done()

    slots = [gevent.spawn(slot) for _ in range(2)]
    gevent.sleep(0.1)  # the slots are spawned: the arrivals due meanwhile are not offered
    dispatcher.start()
    gevent.sleep(0.5)
    dispatcher.stop()
    gevent.killall(slots)
    assert 40 <= dispatcher.counts.offered <= 55
    assert dispatcher.counts.dropped == 0 and dispatcher.counts.started == len(lags)
    assert 450 <= dispatcher.counts.dispatch_ms <= 600
    assert sorted(lags)[len(lags) // 2] < 0.02
