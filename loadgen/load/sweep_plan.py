"""What a load sweep runs, checked before any load: the transports and where each is served, the steps (user
counts or arrival rates), their length, the SLOs, and the Locust command of one step.

Each step is a headless Locust run of ``--warmup`` + ``--step`` seconds offering one load to one transport:
``-u N -r N`` (the closed model: N users, started at once), or ``--arrival-rate R`` (the open model: R new
conversations per second, ``--max-in-flight`` conversation slots: Locust's ``-u``). Its run folder goes under the
sweep's folder (``<reports-dir>/<sweep-id>/<sweep-id>-<transport>-u<N>`` or ``-r<R>``), with interval snapshots
short enough to cut the warm-up off (:func:`loadgen.report.transports_runner.interval_s`). Options the Locust
plug-in knows (``--warmup``, ``--slo``) are passed on too, so a run's own summary shows them.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadgen.analysis.knee import GENERATOR_LAG_LIMIT_MS
from loadgen.errors import ConfigError
from loadgen.metrics.rundir import check_run_id
from loadgen.report.threshold_grammar import Threshold, parse_threshold
from loadgen.report.transports_runner import interval_s
from loadgen.server.launcher import SERVED_TRANSPORTS
from loadgen.transports import check_name

MODES = ("users", "rate")
#: ``--host NAME=URL``: a transport's name, then ``=`` (a plain URL's ``=`` comes after its ``://``).
_NAMED_HOST = re.compile(r"^(?P<name>[A-Za-z_][\w.:]*)=(?P<url>.+)$")


@dataclass
class SweepPlan:
    """Everything the steps of one sweep share."""

    transports: list[str]
    hosts: dict[str, str]  # transport -> a running service; the others use the embedded reference server
    mode: str  # "users" or "rate"
    loads: list[float]  # ascending
    step_s: float
    warmup_s: float
    sweep_id: str
    reports_dir: Path
    locustfile: str
    slos: list[Threshold] = field(default_factory=list)
    slo_texts: list[str] = field(default_factory=list)
    max_error_rate: float = 0.01
    lag_limit_ms: float = GENERATOR_LAG_LIMIT_MS
    find_steps: int = 0  # bisection probes per transport after the listed steps (0: no --find)
    max_in_flight: int = 100  # conversation slots in rate mode
    server_args: list[str] = field(default_factory=list)
    amqp_url: str = ""
    locust_args: list[str] = field(default_factory=list)
    plugin_options: frozenset[str] = frozenset()  # flags the Locust plug-in takes (passed through when given)

    @property
    def out_dir(self) -> Path:
        return self.reports_dir / self.sweep_id

    @property
    def run_time(self) -> str:
        """Locust's ``-t``: the warm-up and the measured step, whole seconds."""
        return f"{math.ceil(self.warmup_s + self.step_s)}s"

    def run_id(self, transport: str, load: float) -> str:
        label = transport.rpartition(":")[2].rpartition(".")[2]
        prefix = "u" if self.mode == "users" else "r"
        return check_run_id(f"{self.sweep_id}-{label}-{prefix}{load:g}")

    def offered_load(self, load: float) -> list[str]:
        if self.mode == "users":
            users = int(load)
            return ["-u", str(users), "-r", str(users), "-t", self.run_time]
        slots = str(self.max_in_flight)
        return ["--arrival-rate", f"{load:g}", "--max-in-flight", slots, "-u", slots, "-r", slots, "-t", self.run_time]

    def locust_command(self, transport: str, load: float, host: str) -> list[str]:
        extra = list(self.locust_args)
        cmd = [
            sys.executable, "-m", "locust", "-f", self.locustfile, "--headless", *self.offered_load(load),
            "--transport", transport, "--host", host, "--run-id", self.run_id(transport, load),
            "--reports-dir", str(self.out_dir), "--only-summary",
        ]  # fmt: skip
        if not any(a == "--interval" or a.startswith("--interval=") for a in extra):
            cmd += ["--interval", f"{interval_s(self.warmup_s):g}"]
        if "--warmup" in self.plugin_options and self.warmup_s > 0:
            cmd += ["--warmup", f"{self.warmup_s:g}s"]
        if "--slo" in self.plugin_options:
            for text in self.slo_texts:
                cmd += ["--slo", text]
        return cmd + extra


def parse_loads(option: str, text: str, *, whole: bool) -> list[float]:
    """``1,2,4`` -> [1.0, 2.0, 4.0], ascending and distinct; each above 0 (whole numbers for users)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{option} {text!r}: give the steps, comma-separated, e.g. {option} 10,20,40")
    loads: set[float] = set()
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"{option} {text!r}: {item!r} is not a number; give e.g. {option} 10,20,40") from None
        if not math.isfinite(value) or value <= 0 or (whole and value != int(value)):
            kind = "a whole number above 0" if whole else "a number above 0"
            raise ConfigError(f"{option} {text!r}: each step must be {kind} (got {item})")
        loads.add(value)
    return sorted(loads)


def parse_transports(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError(f"--transport {text!r}: name at least one transport, comma-separated, e.g. rest,grpc")
    out: list[str] = []
    for name in names:
        check_name(name, what="--transport")
        if name in out:
            raise ConfigError(f"--transport {text!r}: {name} comes twice; name each transport once")
        out.append(name)
    return out


def parse_hosts(items: Sequence[str], transports: Sequence[str]) -> dict[str, str]:
    """``--host URL`` (one transport swept) or ``--host TRANSPORT=URL`` (repeatable); the rest are served by the
    embedded reference server, which must have a front for them."""
    hosts: dict[str, str] = {}
    for item in items:
        m = _NAMED_HOST.match(item)
        if m is not None and "://" not in m["name"]:
            name, url = m["name"], m["url"]
            if name not in transports:
                raise ConfigError(f"--host {item!r}: {name} is not swept (--transport {','.join(transports)})")
        elif len(transports) == 1:
            name, url = transports[0], item
        else:
            raise ConfigError(f"--host {item!r}: with several transports say which one it serves: --host TRANSPORT=URL")
        hosts[name] = url
    for name in transports:
        if name not in hosts and name not in SERVED_TRANSPORTS:
            raise ConfigError(
                f"--transport {name}: the reference server has no front for it; give the service: --host {name}=URL"
            )
    return hosts


def parse_error_rate(text: str) -> float:
    """``--max-error-rate``: ``1%`` or ``0.01``."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"--max-error-rate {text!r}: give a rate such as 1% or 0.01") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"--max-error-rate {text!r}: give a rate from 0% to 100%")
    return value


def parse_slos(texts: Sequence[str]) -> list[Threshold]:
    """Each ``--slo`` in the threshold grammar (:class:`ConfigError` naming the option on a bad one)."""
    slos = []
    for text in texts:
        try:
            slos.append(parse_threshold(text, where="--slo"))
        except ConfigError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"{first} (the threshold grammar: README, CI gates)") from None
    return slos


__all__ = [
    "MODES",
    "SweepPlan",
    "parse_error_rate",
    "parse_hosts",
    "parse_loads",
    "parse_slos",
    "parse_transports",
]
