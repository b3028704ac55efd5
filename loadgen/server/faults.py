"""Fault schedules for the reference server: ``loadgen serve --faults SPEC``.

A schedule is a list of entries separated by ``;``, each ``START[+DURATION] KIND [ARGUMENT]``, times from the
server's start (``30s``, ``1.5s``, ``500ms``, ``2m``)::

    30s+10s down; 60s+5s stall; 90s+20s error 5%; 120s+10s slow 3x; 150s forget-sessions

- ``down``: every front refuses or drops connections (REST and gRPC listeners closed, open connections cut, the
  AMQP consumer cancelled), and comes back at the end;
- ``stall``: requests are accepted and nothing is sent until the stall ends (or the client gives up);
- ``error P%``: that share of requests fails with the protocol's server error (chosen at random per request);
- ``slow Nx``: the engine's step costs multiplied by N (``N`` > 0; the sim engine's fixed timings too);
- ``forget-sessions``: an instant (no duration): every server-side session is dropped at START.

Faults of different kinds may overlap; two of the same kind may not. :func:`parse_faults` raises
:class:`~loadgen.errors.ConfigError` naming the entry and what to write instead. :class:`FaultSchedule` answers
what is in force at a moment (:meth:`FaultSchedule.state`) and which edges (starts and ends) have passed since
the last call (:meth:`FaultSchedule.edges`); :class:`FaultLog` keeps every fault's actual start and end for the
status endpoint, so a test can line them up with what its client saw.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import ConfigError


class FaultKind(enum.StrEnum):
    DOWN = "down"
    STALL = "stall"
    ERROR = "error"
    SLOW = "slow"
    FORGET_SESSIONS = "forget-sessions"


#: Kinds that last (need ``+DURATION``) and the one that is an instant.
LASTING = frozenset({FaultKind.DOWN, FaultKind.STALL, FaultKind.ERROR, FaultKind.SLOW})
GRAMMAR = (
    "START[+DURATION] KIND [ARG], e.g. '30s+10s down; 60s+5s stall; 90s+20s error 5%; 120s+10s slow 3x; "
    "150s forget-sessions'"
)

_TIME = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    start_s: float
    duration_s: float = 0.0  # 0 for an instant (forget-sessions)
    share: float = 0.0  # error: the share of requests that fail, 0..1
    factor: float = 1.0  # slow: the step-cost multiplier

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def describe(self) -> str:
        arg = f" {self.share * 100:g}%" if self.kind is FaultKind.ERROR else ""
        arg = f" {self.factor:g}x" if self.kind is FaultKind.SLOW else arg
        span = f"+{self.duration_s:g}s" if self.kind in LASTING else ""
        return f"{self.start_s:g}s{span} {self.kind.value}{arg}"


def parse_time(text: str, where: str) -> float:
    match = _TIME.match(text.strip())
    if match is None:
        raise ConfigError(f"{where}: {text!r} is not a time: write e.g. 30s, 1.5s, 500ms or 2m")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _parse_entry(entry: str, number: int) -> Fault:
    where = f"--faults entry {number} ({entry!r})"
    words = entry.split()
    if len(words) < 2:
        raise ConfigError(f"{where}: expected {GRAMMAR}")
    when, kind_text, args = words[0], words[1], words[2:]
    try:
        kind = FaultKind(kind_text.lower())
    except ValueError:
        kinds = ", ".join(k.value for k in FaultKind)
        raise ConfigError(f"{where}: unknown fault {kind_text!r}: choose one of {kinds}") from None
    start_text, plus, duration_text = when.partition("+")
    start = parse_time(start_text, where)
    if kind in LASTING:
        if not plus:
            raise ConfigError(f"{where}: {kind.value} lasts a while: write START+DURATION, e.g. {start_text}+10s")
        duration = parse_time(duration_text, where)
        if duration <= 0:
            raise ConfigError(f"{where}: the duration must be more than 0")
    else:
        if plus:
            raise ConfigError(f"{where}: {kind.value} is an instant: write only its START, e.g. {start_text}")
        duration = 0.0
    expects_arg = kind in (FaultKind.ERROR, FaultKind.SLOW)
    if len(args) != (1 if expects_arg else 0):
        example = {"error": "error 5%", "slow": "slow 3x"}.get(kind.value, kind.value)
        raise ConfigError(f"{where}: write it as '{when} {example}'")
    fault = Fault(kind, start, duration)
    if kind is FaultKind.ERROR:
        fault = Fault(kind, start, duration, share=_percent(args[0], where))
    elif kind is FaultKind.SLOW:
        fault = Fault(kind, start, duration, factor=_factor(args[0], where))
    return fault


def _percent(text: str, where: str) -> float:
    match = re.match(r"^(\d+(?:\.\d+)?)%$", text)
    if match is None or not 0 < float(match.group(1)) <= 100:
        raise ConfigError(f"{where}: the error share must be a percentage above 0 and up to 100%, e.g. 5%")
    return float(match.group(1)) / 100.0


def _factor(text: str, where: str) -> float:
    match = re.match(r"^(\d+(?:\.\d+)?)x$", text.lower())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"{where}: the slow-down must be a factor above 0, e.g. 3x or 0.5x")
    return float(match.group(1))


def parse_faults(spec: str) -> list[Fault]:
    """The faults of a schedule, in order of start; :class:`ConfigError` names the first bad entry."""
    entries = [e.strip() for e in spec.split(";")]
    faults = [_parse_entry(entry, i) for i, entry in enumerate(entries, 1) if entry]
    if not faults:
        raise ConfigError(f"--faults is empty: expected {GRAMMAR}")
    faults.sort(key=lambda f: (f.start_s, f.kind.value))
    for kind in LASTING:
        same = [f for f in faults if f.kind is kind]
        for earlier, later in itertools.pairwise(same):
            if later.start_s < earlier.end_s:
                raise ConfigError(
                    f"--faults: '{earlier.describe()}' and '{later.describe()}' overlap: faults of one kind must not"
                )
    return faults


@dataclass(frozen=True, slots=True)
class FaultState:
    """What is in force at one moment."""

    down: bool = False
    stall: bool = False
    error_share: float = 0.0
    slow_factor: float = 1.0

    @property
    def healthy(self) -> bool:
        return not self.down and not self.stall and self.error_share == 0.0 and self.slow_factor == 1.0


HEALTHY = FaultState()


@dataclass(frozen=True, slots=True)
class Edge:
    """A fault starting (``starting``) or ending, due at ``at_s`` from the server's start."""

    fault: Fault
    starting: bool
    at_s: float


class FaultSchedule:
    """The faults of one server run, read against seconds since its start."""

    def __init__(self, faults: list[Fault]) -> None:
        self.faults = list(faults)
        edges = [Edge(f, True, f.start_s) for f in self.faults]
        edges += [Edge(f, False, f.end_s) for f in self.faults if f.kind in LASTING]
        # at one moment, ends before starts: a fault ending at 40s and one starting at 40s never both hold
        self._edges = sorted(edges, key=lambda e: (e.at_s, e.starting))
        self._next = 0

    def state(self, elapsed_s: float) -> FaultState:
        down = stall = False
        share, factor = 0.0, 1.0
        for f in self.faults:
            if f.kind not in LASTING or not f.start_s <= elapsed_s < f.end_s:
                continue
            if f.kind is FaultKind.DOWN:
                down = True
            elif f.kind is FaultKind.STALL:
                stall = True
            elif f.kind is FaultKind.ERROR:
                share = f.share
            elif f.kind is FaultKind.SLOW:
                factor = f.factor
        return FaultState(down, stall, share, factor)

    def edges(self, elapsed_s: float) -> Iterator[Edge]:
        """The edges due by ``elapsed_s`` not handed out before, in order."""
        while self._next < len(self._edges) and self._edges[self._next].at_s <= elapsed_s:
            self._next += 1
            yield self._edges[self._next - 1]

    def next_edge_s(self) -> float | None:
        """When the next edge is due (seconds from start), ``None`` when none is left."""
        return self._edges[self._next].at_s if self._next < len(self._edges) else None


@dataclass
class FaultLog:
    """Every fault as it actually happened (wall-clock seconds, ``time.time()``), for ``GET /faults``."""

    started_at: float
    entries: list[dict[str, Any]] = field(default_factory=list)

    def begin(self, fault: Fault, at: float) -> None:
        self.entries.append(
            {
                "fault": fault.describe(),
                "kind": fault.kind.value,
                "start": at,
                "end": None if fault.kind in LASTING else at,
            }
        )

    def end(self, fault: Fault, at: float) -> None:
        for entry in reversed(self.entries):
            if entry["fault"] == fault.describe() and entry["end"] is None:
                entry["end"] = at
                return

    def to_json(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "faults": [dict(e) for e in self.entries]}


__all__ = [
    "GRAMMAR",
    "HEALTHY",
    "Edge",
    "Fault",
    "FaultKind",
    "FaultLog",
    "FaultSchedule",
    "FaultState",
    "parse_faults",
    "parse_time",
]
