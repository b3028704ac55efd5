"""Threshold expressions parsed: ``'turn5.ttft.p99 < 800ms'`` -> :class:`Threshold` (checked by
:mod:`loadgen.report.thresholds`).

Grammar (also in :data:`GRAMMAR`, shown with every parse error)::

    [TRANSPORT.][DIALOGUE.][turnN.]METRIC.STAT  OP  NUMBER UNIT     latency (us, µs, ms, s)
    [TRANSPORT.][DIALOGUE.][turnN.]RATE         OP  NUMBER%         rate
    [TRANSPORT.][DIALOGUE.][turnN.]COUNT        OP  NUMBER          count or throughput
    generator_lag.STAT                          OP  NUMBER UNIT     the load generator's own lag (run level)
    [TRANSPORT.]recovery.max|p50                OP  NUMBER UNIT     recovery time after outages
    [TRANSPORT.]drift.ttft.p99|e2e.p99          OP  NUMBER %/h|ms/h trend per hour over the run's windows
    [TRANSPORT.]drift.errors|retention          OP  NUMBER pp/h     trend of a rate, percentage points per hour

Every value is kept in one canonical unit: microseconds for a latency or a recovery time, a fraction 0..1 for
a rate, the number itself for a count, and for a drift the number as written in its unit (%/h, ms/h or pp/h).
Negative limits are refused where the figure cannot be negative (latency, recovery, rate, count).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from loadgen.errors import ConfigError
from loadgen.metrics.keys import Metric
from loadgen.option_table import Option
from loadgen.report.rundata import LATENCY_METRICS
from loadgen.transports import check_name, registered_names

GRAMMAR = """\
threshold grammar:
  [TRANSPORT.][DIALOGUE.][turnN.]METRIC.STAT OP NUMBER UNIT   METRIC e2e|ttft|itl|tpot|e2e_from_intended|
                                                                     schedule_lag
                                                              STAT p50|p90|p95|p99|p999|p9999|max|mean
                                                              UNIT us|µs|ms|s
  [TRANSPORT.][DIALOGUE.][turnN.]RATE OP NUMBER%              RATE errors|transport_errors|retention|
                                                                   slo_attainment (needs --slo)
  [TRANSPORT.][DIALOGUE.][turnN.]COUNT OP NUMBER              COUNT turns|failures|successes|turns_per_s|
                                                                    output_tokens_per_s|goodput_per_s
  generator_lag.STAT OP NUMBER UNIT                           the load generator's own lag (whole run)
  [TRANSPORT.]recovery.max|p50 OP NUMBER UNIT                 time from a service's return to all turns succeeding
  [TRANSPORT.]drift.ttft.p99|e2e.p99 OP NUMBER %/h|ms/h       trend per hour over the run's windows
  [TRANSPORT.]drift.errors|retention OP NUMBER pp/h           trend of a rate in percentage points per hour
  OP is one of < <= > >=; TRANSPORT is a registered transport (`loadgen transports`: rest, grpc, amqp and
  plug-ins) or package.module:Class; a left-out part means all of it.
  examples: 'turn5.ttft.p99 < 800ms'  'rest.travel_booking.turn3.e2e.p95 <= 2s'  'e2e.p99 < 2s'
            'retention >= 99%'  'errors < 1%'  'generator_lag.p99 < 5ms'  'turns >= 100'
            'recovery.max < 2s'  'drift.ttft.p99 < 10%/h'  'drift.errors < 0.5pp/h'
            'slo_attainment >= 99%'  'goodput_per_s >= 5'  'e2e_from_intended.p99 < 3s'"""

RATE_METRICS: dict[str, str] = {
    "errors": "failed turns (transport errors and retention misses) / turns",
    "transport_errors": "turns that failed on the wire / turns",
    "retention": "probed facts still known / probed facts",
    "slo_attainment": "turns that met every per-turn SLO (--slo) / turns",
}
COUNT_METRICS: dict[str, str] = {
    "turns": "turns sent",
    "failures": "failed turns",
    "successes": "turns that succeeded",
    "turns_per_s": "turns per second over the run",
    "output_tokens_per_s": "output tokens per second over the run, all users",
    "goodput_per_s": "turns per second that met every per-turn SLO (--slo)",
}
RECOVERY = "recovery"
RECOVERY_STATS: dict[str, str] = {"max": "max_s", "p50": "p50_s"}  # statistic -> summary.json field
DRIFT = "drift"
#: drift figure as written -> (summary.json drift field, units it accepts)
DRIFT_FIGURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ttft.p99": ("ttft_p99", ("%/h", "ms/h", "s/h", "us/h", "µs/h")),
    "e2e.p99": ("e2e_p99", ("%/h", "ms/h", "s/h", "us/h", "µs/h")),
    "errors": ("error_rate", ("pp/h",)),
    "retention": ("retention_rate", ("pp/h",)),
}
#: micro sign (U+00B5) and Greek mu (U+03BC) both spell micro
TIME_UNITS_US: dict[str, float] = {"us": 1.0, "µs": 1.0, "μs": 1.0, "ms": 1_000.0, "s": 1_000_000.0}
OPERATORS = ("<=", ">=", "<", ">")
_EXPR = re.compile(
    r"^\s*(?P<lhs>[^<>=!\s]+)\s*(?P<op><=|>=|==|!=|=<|=>|<|>|=)\s*(?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)"
    r"\s*(?P<unit>\S*)\s*$"
)
_STAT = re.compile(r"^(p(?P<pct>\d{1,6})|max|mean|avg)$")
_TURN = re.compile(r"^turn(?P<n>\d+)$")
#: A left side that starts with a transport named package.module:Class (the class name ends at the next dot).
_CLASS_PREFIX = re.compile(r"^(?P<spec>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*)(\.(?P<rest>.*))?$")


def _parts(lhs: str) -> list[str]:
    """The dotted parts of a threshold's left side; a transport named package.module:Class is one part."""
    m = _CLASS_PREFIX.match(lhs)
    if m is None:
        return lhs.split(".")
    rest = m.group("rest")
    return [m.group("spec"), *(rest.split(".") if rest is not None else [])]


def is_transport(name: str) -> bool:
    """Whether ``name`` names a transport: a registered one (built in or a plug-in) or package.module:Class."""
    try:
        check_name(name)
    except ConfigError:
        return False
    return True


def _transports_hint() -> str:
    return (
        f"a registered one ({', '.join(registered_names())}; `loadgen transports` lists them) or package.module:Class"
    )


#: The options that give thresholds, the same for a Locust run, ``loadgen report`` and ``loadgen compare``.
THRESHOLD_OPTIONS: tuple[Option, ...] = (
    Option(
        "--threshold",
        "a CI gate checked at the end, e.g. 'turn5.ttft.p99 < 800ms', 'errors < 1%%', 'retention >= 99%%', "
        "'recovery.max < 2s', 'drift.ttft.p99 < 10%%/h' (repeatable); a broken threshold exits with code 3",
        repeat=True,
        metavar="EXPR",
        attr="thresholds",
        env=False,
    ),
    Option(
        "--thresholds-file",
        "a YAML list of threshold expressions, or a mapping with a `thresholds:` list (repeatable; in a Locust run "
        "also the environment variable LOADGEN_THRESHOLDS_FILE)",
        repeat=True,
        metavar="FILE",
        attr="thresholds_files",
    ),
)


class ThresholdError(ConfigError):
    """A threshold expression that cannot be parsed. The message says what is wrong and shows the grammar."""

    def __init__(self, expression: str, problem: str, where: str = "") -> None:
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}bad threshold {expression!r}: {problem}\n{GRAMMAR}")
        self.expression = expression
        self.problem = problem


@dataclass(frozen=True)
class Threshold:
    text: str
    transport: str | None
    dialogue: str | None
    turn: int | None
    metric: str  # a latency metric, a rate, a count, generator_lag, recovery or drift
    stat: str | None  # "p99", "max", "mean" for latency; "max"/"p50" for recovery; the drift field for drift
    op: str
    value: float  # canonical unit: see the module docstring
    unit: str

    @property
    def kind(self) -> str:
        if self.metric in RATE_METRICS:
            return "rate"
        if self.metric in COUNT_METRICS:
            return "count"
        if self.metric in (RECOVERY, DRIFT):
            return self.metric
        return "latency"

    def quantile(self) -> float | None:
        """The 0..1 quantile of a ``pNN`` statistic: p99 -> 0.99, p999 -> 0.999, p50 -> 0.5."""
        if self.kind != "latency" or self.stat is None or not self.stat.startswith("p"):
            return None
        digits = self.stat[1:]
        return float(f"{digits[:2]}.{digits[2:]}" if len(digits) > 2 else digits) / 100.0

    def scope_label(self, transport: str | None = None) -> str:
        parts = [transport or self.transport or "all transports"]
        if self.kind in (RECOVERY, DRIFT):
            return parts[0]
        parts.append(f"dialogue {self.dialogue}" if self.dialogue else "all dialogues")
        parts.append(f"turn {self.turn}" if self.turn is not None else "all turns")
        return ", ".join(parts)


def _stat_ok(stat: str) -> str | None:
    m = _STAT.match(stat)
    if not m:
        return None
    if stat == "avg":
        return "mean"
    pct = m.group("pct")
    if pct is not None and (pct.startswith("0") or (len(pct) > 2 and not pct.startswith("99")) or pct == "100"):
        return None
    return stat


def parse_threshold(expression: str, *, where: str = "") -> Threshold:
    text = expression.strip()
    if not text:
        raise ThresholdError(expression, "it is empty", where)
    m = _EXPR.match(text)
    if not m:
        if not any(op in text for op in ("<", ">", "=")):
            problem = "no comparison operator; use one of < <= > >="
        else:
            problem = "expected LEFT OP NUMBER[UNIT], e.g. 'e2e.p99 < 2s'"
        raise ThresholdError(expression, problem, where)
    lhs, op, unit = m.group("lhs"), m.group("op"), m.group("unit")
    if op not in OPERATORS:
        raise ThresholdError(expression, f"operator {op!r} is not supported; use one of < <= > >=", where)
    value = float(m.group("value"))
    parts = _parts(lhs)
    if any(p == "" for p in parts):
        raise ThresholdError(expression, f"empty name between dots in {lhs!r}", where)
    if RECOVERY in parts or DRIFT in parts:
        return _run_figure(expression, text, parts, op, value, unit, where)
    metric, prefix, stat = _metric(expression, parts, where)
    transport, dialogue, turn = _scope(expression, metric, prefix, where)
    limit = _scaled(expression, metric, stat, op, value, unit, where)
    return Threshold(text, transport, dialogue, turn, metric, stat, op, limit, unit)


def _run_figure(
    expression: str, text: str, parts: list[str], op: str, value: float, unit: str, where: str
) -> Threshold:
    """``[TRANSPORT.]recovery.STAT`` or ``[TRANSPORT.]drift.FIGURE``: per transport, never per dialogue or turn."""
    name = RECOVERY if RECOVERY in parts else DRIFT
    at = parts.index(name)
    prefix, rest = parts[:at], ".".join(parts[at + 1 :])
    if len(prefix) > 1 or (prefix and not is_transport(prefix[0])):
        raise ThresholdError(
            expression,
            f"{name} is measured per transport: write [TRANSPORT.]{name}..., TRANSPORT {_transports_hint()} "
            "(no dialogue or turn)",
            where,
        )
    transport = prefix[0] if prefix else None
    if name == RECOVERY:
        if rest not in RECOVERY_STATS:
            raise ThresholdError(expression, f"recovery takes max or p50, e.g. recovery.max < 2s (got {rest!r})", where)
        if unit not in TIME_UNITS_US:
            raise ThresholdError(expression, "recovery needs a time unit (us, µs, ms or s), e.g. 2s", where)
        if value < 0:
            raise ThresholdError(expression, "a recovery time cannot be negative", where)
        return Threshold(text, transport, None, None, RECOVERY, rest, op, value * TIME_UNITS_US[unit], unit)
    if rest not in DRIFT_FIGURES:
        raise ThresholdError(
            expression, f"drift of {rest!r} is not recorded; use drift.{', drift.'.join(DRIFT_FIGURES)}", where
        )
    field, units = DRIFT_FIGURES[rest]
    if unit not in units:
        given = " or ".join(units[:2])
        problem = f"drift.{rest} is a trend per hour: give it in {given}, e.g. 10{units[0]}"
        raise ThresholdError(expression, problem, where)
    if unit.endswith("s/h") and unit != "ms/h":  # s/h, us/h, µs/h: kept in ms/h, the unit of the windows
        value = value * TIME_UNITS_US[unit.removesuffix("/h")] / 1000.0
        unit = "ms/h"
    return Threshold(text, transport, None, None, DRIFT, field, op, value, unit)


def _metric(expression: str, parts: list[str], where: str) -> tuple[str, list[str], str | None]:
    """(metric, the scope parts before it, the statistic of a latency metric) of a threshold's left side."""
    if parts[-1] in RATE_METRICS or parts[-1] in COUNT_METRICS:
        return parts[-1], parts[:-1], None
    if len(parts) >= 2 and (parts[-2] in LATENCY_METRICS or parts[-2] == Metric.GENERATOR_LAG):
        metric = parts[-2]
        stat = _stat_ok(parts[-1])
        if stat is None:
            raise ThresholdError(
                expression,
                f"unknown statistic {parts[-1]!r} for {metric}; use p50, p90, p95, p99, p999, p9999, max or mean",
                where,
            )
        return metric, parts[:-2], stat
    if parts[-1] in LATENCY_METRICS or parts[-1] == Metric.GENERATOR_LAG:
        raise ThresholdError(expression, f"{parts[-1]} needs a statistic, e.g. {'.'.join(parts)}.p99", where)
    known = [*LATENCY_METRICS, Metric.GENERATOR_LAG, *RATE_METRICS, *COUNT_METRICS, RECOVERY, DRIFT]
    if len(parts) >= 2 and parts[-1].isdigit() and re.match(r"^p\d+$", parts[-2]):
        problem = f"write a percentile without a dot: {parts[-2]}.{parts[-1]} is {parts[-2]}{parts[-1]}"
    else:
        name = parts[-2] if len(parts) >= 2 and _STAT.match(parts[-1]) else parts[-1]
        problem = f"unknown metric {name!r}; expected one of {', '.join(known)}"
    raise ThresholdError(expression, problem, where)


def _scaled(expression: str, metric: str, stat: str | None, op: str, value: float, unit: str, where: str) -> float:
    """The limit in the metric's canonical unit: a fraction for a rate, microseconds for a latency."""
    if metric in RATE_METRICS:
        if unit != "%":
            raise ThresholdError(
                expression,
                f"{metric} is a rate: write the number as a percentage, e.g. {metric} {op} {value:g}%",
                where,
            )
        if not 0 <= value <= 100:
            raise ThresholdError(expression, f"{value:g}% is not between 0% and 100%", where)
        return value / 100.0
    if metric in COUNT_METRICS:
        if unit not in ("", "/s") or (unit == "/s" and not metric.endswith("_per_s")):
            raise ThresholdError(expression, f"{metric} is a plain number: drop the unit {unit!r}", where)
        if value < 0:
            raise ThresholdError(expression, f"{metric} cannot be negative", where)
        return value
    if unit not in TIME_UNITS_US:
        problem = (
            f"{metric}.{stat} needs a time unit (us, µs, ms or s), e.g. {value:g}ms"
            if not unit
            else f"unknown time unit {unit!r}; use us, µs, ms or s"
        )
        raise ThresholdError(expression, problem, where)
    if value < 0:
        raise ThresholdError(expression, "a latency cannot be negative", where)
    return value * TIME_UNITS_US[unit]


def _scope(expression: str, metric: str, prefix: list[str], where: str) -> tuple[str | None, str | None, int | None]:
    if metric == Metric.GENERATOR_LAG:
        if prefix:
            raise ThresholdError(
                expression,
                "generator_lag is measured for the whole run: write generator_lag.STAT with nothing before it",
                where,
            )
        return None, None, None
    turn: int | None = None
    if prefix:
        tm = _TURN.match(prefix[-1])
        if tm:
            turn = int(tm.group("n"))
            if turn < 1:
                raise ThresholdError(expression, "turns are numbered from 1 (turn1, turn2, ...)", where)
            prefix = prefix[:-1]
        elif prefix[-1].startswith("turn") and prefix[-1][4:].strip():
            raise ThresholdError(expression, f"{prefix[-1]!r}: write a turn as turnN, e.g. turn3", where)
    if len(prefix) > 2:
        raise ThresholdError(
            expression,
            f"too many parts before {metric}: at most TRANSPORT.DIALOGUE.turnN (got {'.'.join(prefix)!r})",
            where,
        )
    bad_turn = [p for p in prefix if _TURN.match(p)]
    if bad_turn:
        raise ThresholdError(expression, f"{bad_turn[0]!r} must come right before the metric", where)
    transport: str | None = None
    dialogue: str | None = None
    if len(prefix) == 2:
        transport, dialogue = prefix
        if not is_transport(transport):
            raise ThresholdError(expression, f"unknown transport {transport!r}; use {_transports_hint()}", where)
    elif len(prefix) == 1:
        if is_transport(prefix[0]):
            transport = prefix[0]
        else:
            dialogue = prefix[0]
    return transport, dialogue, turn


def parse_thresholds(expressions: Iterable[str], *, where: str = "--threshold") -> list[Threshold]:
    return [parse_threshold(e, where=where) for e in expressions]


def load_thresholds_file(path: Path | str) -> list[Threshold]:
    """A YAML list of expressions (or a mapping with a ``thresholds:`` list)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"thresholds file {path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"thresholds file {path}: not valid YAML ({exc})") from exc
    if isinstance(data, dict) and "thresholds" in data:
        data = data["thresholds"]
    if data is None or data == []:  # a gates file that gates nothing is a mistake, not a pass
        raise ConfigError(f"thresholds file {path}: it holds no thresholds; list at least one, e.g. - 'errors < 1%'")
    if not isinstance(data, list):
        raise ConfigError(
            f"thresholds file {path}: expected a YAML list of expressions, e.g.\n"
            "- 'turn5.ttft.p99 < 800ms'\n- 'retention >= 99%'"
        )
    out = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, str):
            raise ConfigError(f"thresholds file {path}, item {i}: expected a string expression, got {item!r}")
        out.append(parse_threshold(item, where=f"thresholds file {path}, item {i}"))
    return out


def collect_thresholds(expressions: Sequence[str] | None, files: Sequence[str] | str | None) -> list[Threshold]:
    out = parse_thresholds(expressions or [])
    if isinstance(files, str):
        files = [files]
    for f in files or []:
        out.extend(load_thresholds_file(f))
    return out
