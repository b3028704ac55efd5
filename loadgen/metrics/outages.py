"""Outages and recovery, found from the turns' outcomes as the clients saw them.

Each process that runs users keeps an :class:`OutageRecorder`. It records, per transport, only what outages are
made of (a healthy run records nothing):

- every failed turn: ``(sent, done, user)``;
- per user, the first success after that user failed (a *comeback*): ``(sent, done, user)``.

Every event is about one user, and a user lives in one process, so the events of several processes merge by
plain concatenation (times are wall-clock seconds, ``time.time()``): a worker ships
:meth:`OutageRecorder.take_wire` in each report and the master adds it with :meth:`OutageEvents.merge_wire`; the
figures found from the merged events are exactly those one process running every user would have found. (A mark
of "the first success in this process after a failure in this process" would not merge so: the first success
after a failure in another process is not seen as one.)

:func:`find_outages` reads the merged events of one transport:

- an **outage** starts at the first failed turn after a success and ends, as the clients see it, at the first
  comeback after it (``end_s``: the first successful turn of a user who was failing); ``failed_turns`` and
  ``users`` count the failed turns and distinct users from its start until the users it hit are back (each has
  succeeded once since);
- its **recovery** (``recovery_s``) is how long after ``end_s`` turns SENT after ``end_s`` still failed: 0 when the
  first turns after the service came back succeeded; the time to the last such failure when stale connections
  (a reconnect backoff, a broker channel) kept failing turns the service would have served. Think time is not in
  it: a user who failed and then thought for 3 s is not "still failing".

An outage still open at the end of the run has ``end_s`` ``None`` and ``recovery_s`` ``None``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

#: Failed turns kept per transport between two reports; beyond it they are counted, not kept (a target that
#: is down for a whole night must not grow a worker's report without end).
MAX_FAILURES_PER_REPORT = 20_000
WIRE_VERSION = 1

#: (sent, done, user) with wall-clock seconds (user None: a process-level mark of an earlier version).
Event = tuple[float, float, str | None]


@dataclass
class TransportEvents:
    failures: list[Event] = field(default_factory=list)
    comebacks: list[Event] = field(default_factory=list)  # first success of a user, or of a process, after failure
    dropped_failures: int = 0

    def is_empty(self) -> bool:
        return not self.failures and not self.comebacks and not self.dropped_failures


class OutageEvents:
    """Events per transport (what a process ships, and what the master accumulates)."""

    def __init__(self) -> None:
        self.by_transport: dict[str, TransportEvents] = {}

    def of(self, transport: str) -> TransportEvents:
        events = self.by_transport.get(transport)
        if events is None:
            events = self.by_transport[transport] = TransportEvents()
        return events

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": WIRE_VERSION,
            "t": {
                name: {
                    "f": [list(e) for e in ev.failures],
                    "c": [list(e) for e in ev.comebacks],
                    "d": ev.dropped_failures,
                }
                for name, ev in self.by_transport.items()
                if not ev.is_empty()
            },
        }

    def merge_wire(self, data: dict[str, Any]) -> None:
        if data.get("v") != WIRE_VERSION:
            raise ValueError(f"outage events wire version {data.get('v')!r} is not {WIRE_VERSION}")
        for name, entry in data["t"].items():
            events = self.of(name)
            events.failures.extend(_event(e) for e in entry["f"])
            events.comebacks.extend(_event(e) for e in entry["c"])
            events.dropped_failures += int(entry.get("d", 0))


def _event(raw: list[Any]) -> Event:
    return (float(raw[0]), float(raw[1]), None if raw[2] is None else str(raw[2]))


class OutageRecorder:
    """What one process records as its users' turns end (called from the users' greenlets, no yield inside)."""

    def __init__(self) -> None:
        self.pending = OutageEvents()
        self._failing_users: set[tuple[str, str]] = set()

    def turn(self, transport: str, user: str, sent: float, done: float, ok: bool) -> None:
        key = (transport, user)
        if ok:
            if key in self._failing_users:  # else the healthy path: nothing to keep
                self._failing_users.discard(key)
                self.pending.of(transport).comebacks.append((sent, done, user))
            return
        events = self.pending.of(transport)
        self._failing_users.add(key)
        if len(events.failures) < MAX_FAILURES_PER_REPORT:
            events.failures.append((sent, done, user))
        else:
            events.dropped_failures += 1

    def take_wire(self) -> dict[str, Any]:
        """The events since the last call, for the master (or this process's own accumulator)."""
        pending, self.pending = self.pending, OutageEvents()
        return pending.to_wire()


@dataclass(frozen=True)
class Outage:
    transport: str
    start_s: float  # wall-clock
    end_s: float | None  # the first comeback after it (None: still out when the run ended)
    failed_turns: int
    users: int
    recovery_s: float | None

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s

    def to_json(self, run_started_at: float) -> dict[str, Any]:
        """Times as seconds from the run's start (what summary.json and the report show)."""
        duration = self.duration_s
        return {
            "transport": self.transport,
            "start_s": round(self.start_s - run_started_at, 3),
            "end_s": None if self.end_s is None else round(self.end_s - run_started_at, 3),
            "duration_s": None if duration is None else round(duration, 3),
            "failed_turns": self.failed_turns,
            "users": self.users,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 3),
        }


@dataclass(frozen=True)
class Prefix:
    """Failures already folded into the first outage of a transport (see :mod:`loadgen.metrics.recovery`): they
    are in it whatever comes later, so only their number, their users and the first one's time are kept."""

    start: float  # done time of the outage's first failure
    failed_turns: int
    users: frozenset[str | None]


@dataclass(frozen=True)
class Found:
    """An outage as :func:`scan_outages` found it: which of the (sorted) failures it took, and from when nothing
    that arrives later can change it (``settles_at``: its users all back, and every turn sent before its end
    done; infinity while one is not)."""

    outage: Outage
    taken: tuple[int, ...]
    settles_at: float


def find_outages(transport: str, events: TransportEvents) -> list[Outage]:
    """The outages in one transport's merged events, in order of start (see the module docstring)."""
    return [f.outage for f in scan_outages(transport, events)]


def scan_outages(
    transport: str, events: TransportEvents, *, prefix: Prefix | None = None, longest: float = 0.0
) -> list[Found]:
    """:func:`find_outages` with what a running tracker needs: ``prefix`` (failures folded into the first
    outage), ``longest`` (the longest failed turn seen, beyond these events), and per outage what it took.
    Indexes in ``taken`` are into the failures sorted by their done time (:func:`sorted_failures`)."""
    failures = sorted_failures(events)
    comebacks = sorted(events.comebacks, key=lambda e: e[1])
    comeback_times = [c[1] for c in comebacks]
    # bounds how late a turn sent before the comeback can fail
    longest = max([longest, *(done - sent for sent, done, _ in failures)])
    taken = [False] * len(failures)
    found: list[Found] = []
    first = prefix
    i = 0
    while i < len(failures) or first is not None:
        if first is None and taken[i]:
            i += 1
            continue
        start = first.start if first is not None else failures[i][1]
        carried = first if first is not None else Prefix(start, 0, frozenset())
        first = None
        at = bisect.bisect_right(comeback_times, start)
        end = comeback_times[at] if at < len(comeback_times) else None
        if end is None:  # never back within the run
            rest = [j for j in range(i, len(failures)) if not taken[j]]
            users = carried.users | {failures[j][2] for j in rest}
            outage = Outage(transport, start, None, carried.failed_turns + len(rest), len(users), None)
            found.append(Found(outage, tuple(rest), float("inf")))
            break
        # its turns: failed by the time the clients saw the service back, or sent before it (a stalled turn that
        # timed out later); then the users it hit are back once each has succeeded since
        window = _failures_until(failures, taken, i, end + longest)
        hit = set(carried.users) | {failures[j][2] for j in window if failures[j][1] <= end or failures[j][0] < end}
        all_back = _all_back(comebacks, at, hit)
        settles_at = max(all_back, end + longest)
        window = _failures_until(failures, taken, i, settles_at)
        mine = [j for j in window if failures[j][1] <= all_back or failures[j][0] < end]
        stale = [failures[j][1] for j in mine if failures[j][0] >= end]  # sent after it was back, still failed
        for j in mine:
            taken[j] = True
        users = carried.users | {failures[j][2] for j in mine}
        recovery = max(stale, default=end) - end
        outage = Outage(transport, start, end, carried.failed_turns + len(mine), len(users), recovery)
        found.append(Found(outage, tuple(mine), settles_at))
    return found


def sorted_failures(events: TransportEvents) -> list[Event]:
    """The failures in the order :func:`scan_outages` indexes them (by done time, stable)."""
    return sorted(events.failures, key=lambda e: e[1])


def _failures_until(failures: list[Event], taken: list[bool], first: int, until: float) -> list[int]:
    """Indexes of the failures not yet taken, from ``first``, done by ``until``."""
    out = []
    for j in range(first, len(failures)):
        if failures[j][1] > until:
            break
        if not taken[j]:
            out.append(j)
    return out


def _all_back(comebacks: list[Event], first: int, hit: set[str | None]) -> float:
    """When the last of ``hit`` succeeded again, looking from ``comebacks[first]`` on (infinity if one never did)."""
    back: set[str | None] = set()
    for _, done, user in comebacks[first:]:
        if user in hit and user not in back:
            back.add(user)
            if len(back) == len(hit):
                return done
    return float("inf")


__all__ = [
    "MAX_FAILURES_PER_REPORT",
    "Found",
    "Outage",
    "OutageEvents",
    "OutageRecorder",
    "Prefix",
    "TransportEvents",
    "find_outages",
    "scan_outages",
    "sorted_failures",
]
