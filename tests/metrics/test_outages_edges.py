"""Outage events and the outages found from them, held to exact values (loadgen.metrics.outages): the wire form
and its merge, what the recorder keeps, the JSON of an outage, and scan_outages' own figures (what each outage
took, when it settles, a prefix, the longest failed turn) at the edges of its time windows."""

from __future__ import annotations

import math

import pytest

from loadgen.metrics.outages import (
    Outage,
    OutageEvents,
    OutageRecorder,
    Prefix,
    TransportEvents,
    find_outages,
    scan_outages,
    sorted_failures,
)


def _events(failures: list[tuple[float, float, str | None]], comebacks: list[tuple[float, float, str | None]]):  # type: ignore[no-untyped-def]
    return TransportEvents(failures=list(failures), comebacks=list(comebacks))


def test_the_recorder_keeps_failures_and_only_the_first_success_after_them_per_transport_and_user() -> None:
    recorder = OutageRecorder()
    recorder.turn("rest", "a", 1.0, 1.5, True)  # healthy: nothing
    recorder.turn("rest", "a", 2.0, 2.5, False)
    recorder.turn("rest", "a", 3.0, 3.5, False)
    recorder.turn("grpc", "a", 3.0, 3.25, True)  # a is failing on rest, not on grpc: nothing
    recorder.turn("rest", "b", 3.0, 3.75, True)  # b never failed: nothing
    recorder.turn("rest", "a", 4.0, 4.5, True)  # a's comeback
    recorder.turn("rest", "a", 5.0, 5.5, True)  # back already: nothing
    recorder.turn("grpc", "b", 6.0, 6.5, False)
    assert recorder.take_wire() == {
        "v": 1,
        "t": {
            "rest": {"f": [[2.0, 2.5, "a"], [3.0, 3.5, "a"]], "c": [[4.0, 4.5, "a"]], "d": 0},
            "grpc": {"f": [[6.0, 6.5, "b"]], "c": [], "d": 0},
        },
    }
    assert recorder.take_wire() == {"v": 1, "t": {}}  # taken: the next report starts empty
    recorder.turn("grpc", "b", 7.0, 7.5, True)  # b still counts as failing across reports
    assert recorder.take_wire()["t"] == {"grpc": {"f": [], "c": [[7.0, 7.5, "b"]], "d": 0}}


def test_the_wire_form_leaves_out_empty_transports_and_keeps_a_drop_count_alone() -> None:
    events = OutageEvents()
    events.of("empty")
    events.of("dropped").dropped_failures = 3
    events.of("back").comebacks.append((1.0, 2.0, "u"))
    assert events.of("dropped") is events.of("dropped")
    assert events.to_wire() == {
        "v": 1,
        "t": {"dropped": {"f": [], "c": [], "d": 3}, "back": {"f": [], "c": [[1.0, 2.0, "u"]], "d": 0}},
    }
    assert TransportEvents().is_empty()
    assert not TransportEvents(failures=[(1.0, 2.0, "u")]).is_empty()
    assert not TransportEvents(comebacks=[(1.0, 2.0, "u")]).is_empty()
    assert not TransportEvents(dropped_failures=1).is_empty()
    assert OutageEvents().by_transport == {}


def test_merging_wire_forms_concatenates_converts_and_adds_the_drop_counts() -> None:
    merged = OutageEvents()
    merged.merge_wire({"v": 1, "t": {"rest": {"f": [[1, 2, "a"], [3, 4, None]], "c": [[5, 6, 7]], "d": 2}}})
    merged.merge_wire({"v": 1, "t": {"rest": {"f": [[7.5, 8.5, "b"]], "c": []}, "grpc": {"f": [], "c": []}}})
    merged.merge_wire({"v": 1, "t": {"rest": {"f": [], "c": [], "d": 3}}})
    rest = merged.of("rest")
    assert rest.failures == [(1.0, 2.0, "a"), (3.0, 4.0, None), (7.5, 8.5, "b")]
    assert all(type(t) is float for e in rest.failures for t in e[:2])
    assert rest.comebacks == [(5.0, 6.0, "7")]  # a user is a string; None stays None (not "None")
    assert rest.dropped_failures == 5  # no "d": 0
    assert merged.of("grpc").is_empty()


@pytest.mark.parametrize(("version", "shown"), [(2, "2"), (None, "None"), ("1", "'1'")])
def test_a_wire_form_of_another_version_is_refused_by_name(version: object, shown: str) -> None:
    data = {"t": {}} if version is None else {"v": version, "t": {}}
    with pytest.raises(ValueError, match=r"^outage events wire version " + shown + " is not 1$"):
        OutageEvents().merge_wire(data)


def test_an_outage_in_json_is_in_seconds_from_the_run_start_to_the_millisecond() -> None:
    outage = Outage("rest", 1000.12345, 1003.5678, 4, 2, 0.12345)
    assert outage.duration_s == pytest.approx(3.44435)
    assert outage.to_json(1000.0) == {
        "transport": "rest", "start_s": 0.123, "end_s": 3.568, "duration_s": 3.444,
        "failed_turns": 4, "users": 2, "recovery_s": 0.123,
    }  # fmt: skip
    still = Outage("grpc", 1000.5, None, 1, 1, None)
    assert still.duration_s is None
    assert still.to_json(1000.0) == {
        "transport": "grpc", "start_s": 0.5, "end_s": None, "duration_s": None,
        "failed_turns": 1, "users": 1, "recovery_s": None,
    }  # fmt: skip


def test_failures_are_indexed_by_done_time_in_a_stable_order() -> None:
    events = _events([(5.0, 9.0, "a"), (2.0, 3.0, "c"), (1.0, 3.0, "b"), (0.0, 4.0, "d")], [])
    assert sorted_failures(events) == [(2.0, 3.0, "c"), (1.0, 3.0, "b"), (0.0, 4.0, "d"), (5.0, 9.0, "a")]


def test_an_outage_open_at_the_end_takes_every_failure_left_and_names_its_transport() -> None:
    events = _events(
        [(0.0, 1.0, "a"), (0.5, 2.0, "b"), (3.0, 3.5, "a"), (10.0, 11.0, "c")], [(4.0, 4.5, "a"), (4.5, 5.0, "b")]
    )
    first, second = scan_outages("grpc", events)
    assert first.outage == Outage("grpc", 1.0, 4.5, 3, 2, 0.0)
    assert first.taken == (0, 1, 2)
    assert first.settles_at == 6.0  # b back at 5.0; the end plus the longest failed turn (1.5 s) at 6.0
    assert second.outage == Outage("grpc", 11.0, None, 1, 1, None)
    assert second.taken == (3,)
    assert second.settles_at == math.inf


def test_comebacks_are_read_by_done_time_whatever_order_they_arrive_in() -> None:
    # b's comeback was sent first but finished last: the service was back when a's finished
    events = _events([(0.0, 1.0, "a"), (0.0, 1.0, "b")], [(2.0, 9.0, "b"), (3.0, 4.0, "a")])
    (found,) = scan_outages("rest", events)
    assert found.outage == Outage("rest", 1.0, 4.0, 2, 2, 0.0)
    assert found.settles_at == 9.0
    assert find_outages("rest", events) == [found.outage]


def test_it_settles_when_its_users_are_back_or_a_longest_turn_after_its_end() -> None:
    events = _events([(0.0, 0.25, "a"), (0.0, 0.5, "b")], [(1.0, 2.0, "a"), (1.0, 2.25, "b")])
    (found,) = scan_outages("rest", events)
    assert (found.outage.end_s, found.settles_at) == (2.0, 2.5)  # the end plus the longest failed turn (0.5 s)
    (found,) = scan_outages("rest", events, longest=0.125)  # a shorter one seen before changes nothing
    assert found.settles_at == 2.5
    (found,) = scan_outages("rest", events, longest=3.0)  # a longer one seen before: later
    assert found.settles_at == 5.0
    events = _events([(0.0, 0.25, "a"), (0.0, 0.5, "b")], [(1.0, 2.0, "a"), (1.0, 4.0, "b")])
    (found,) = scan_outages("rest", events)
    assert found.settles_at == 4.0  # b's comeback


def test_only_the_users_it_hit_count_as_back() -> None:
    # c failed after the service was back (a turn sent after the end): c's comeback does not stand for b's
    events = _events(
        [(0.0, 1.0, "a"), (0.5, 1.5, "b"), (3.5, 3.625, "c")],
        [(2.0, 3.0, "a"), (3.75, 4.0, "c"), (5.0, 6.0, "b")],
    )
    (found,) = scan_outages("rest", events)
    assert found.outage == Outage("rest", 1.0, 3.0, 3, 3, 0.625)
    assert found.settles_at == 6.0
    assert found.taken == (0, 1, 2)


def test_a_stale_failure_done_exactly_when_the_last_user_is_back_is_in_the_outage() -> None:
    # a and b hit; a back at 3 (the end); c, sent after the end, fails until 6.0, when b is back too
    events = _events(
        [(0.0, 1.0, "a"), (0.0, 1.5, "b"), (4.0, 6.0, "c")],
        [(2.0, 3.0, "a"), (5.0, 6.0, "b")],
    )
    (found,) = scan_outages("rest", events)
    assert found.settles_at == 6.0
    assert found.taken == (0, 1, 2)
    assert found.outage == Outage("rest", 1.0, 3.0, 3, 3, 3.0)  # recovery: the stale failure done at 6.0


def test_a_user_whose_turn_was_sent_before_the_end_and_failed_after_it_was_hit() -> None:
    # a's turn stalled from 1.0 to 6.0 while b saw the service back at 4.1: a is hit, and back only at 20.0
    events = _events([(1.0, 6.0, "a"), (2.0, 2.1, "b")], [(4.0, 4.1, "b"), (19.0, 20.0, "a")])
    (found,) = scan_outages("rest", events)
    assert found.outage == Outage("rest", 2.1, 4.1, 2, 2, 0.0)
    assert found.taken == (0, 1)  # indexes by done time: b, then a
    assert found.settles_at == 20.0  # not the end plus the longest failed turn (9.1)


def test_a_turn_refused_at_the_very_instant_of_the_comeback_was_hit() -> None:
    events = _events([(0.0, 1.0, "a"), (3.0, 3.0, "c")], [(2.0, 3.0, "a"), (10.0, 10.5, "c")])
    (found,) = scan_outages("rest", events)
    assert found.outage == Outage("rest", 1.0, 3.0, 2, 2, 0.0)
    assert found.settles_at == 10.5  # c's comeback, not the end plus the longest failed turn (4.0)


def test_a_turn_sent_at_the_very_instant_of_the_comeback_is_sent_after_it() -> None:
    # c's turn, sent at 3.0 when a saw the service back, failed: not hit, and after the users it hit are back
    events = _events([(0.0, 1.0, "a"), (3.0, 3.5, "c")], [(2.0, 3.0, "a"), (20.0, 20.5, "c")])
    first, second = scan_outages("rest", events)
    assert (first.outage, first.taken, first.settles_at) == (Outage("rest", 1.0, 3.0, 1, 1, 0.0), (0,), 4.0)
    assert (second.outage, second.taken, second.settles_at) == (Outage("rest", 3.5, 20.5, 1, 1, 0.0), (1,), 21.5)
    # the same turn while b is not back yet: in the outage, as its recovery (sent at the end, not before it)
    events = _events([(0.0, 1.0, "a"), (0.0, 1.5, "b"), (3.0, 3.5, "c")], [(2.0, 3.0, "a"), (4.0, 5.0, "b")])
    (found,) = scan_outages("rest", events)
    assert (found.outage, found.taken, found.settles_at) == (Outage("rest", 1.0, 3.0, 3, 3, 0.5), (0, 1, 2), 5.0)


def test_a_prefix_is_folded_into_the_first_outage() -> None:
    prefix = Prefix(start=0.5, failed_turns=10, users=frozenset({"x", "a"}))
    events = _events([(1.0, 2.0, "a"), (1.5, 2.5, "b")], [(3.0, 4.0, "a"), (3.5, 4.5, "b"), (3.0, 5.0, "x")])
    (found,) = scan_outages("rest", events, prefix=prefix)
    assert found.outage == Outage("rest", 0.5, 4.0, 12, 3, 0.0)
    assert found.taken == (0, 1)
    assert found.settles_at == 5.0  # x, hit before these events, is back only at 5.0
    (still,) = scan_outages("rest", _events([(1.0, 2.0, "b")], []), prefix=prefix)
    assert still.outage == Outage("rest", 0.5, None, 11, 3, None)
    assert still.taken == (0,)
    (alone,) = scan_outages("rest", _events([], []), prefix=prefix)
    assert alone.outage == Outage("rest", 0.5, None, 10, 2, None)
    assert alone.taken == ()


def test_no_events_no_outage() -> None:
    assert scan_outages("rest", TransportEvents()) == []
    assert find_outages("rest", _events([], [(1.0, 2.0, "a")])) == []
