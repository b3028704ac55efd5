"""A measuring probe loaded beside the locustfile of each ``loadgen bench`` arm (``-f arm.py,probe.py``).

It counts Locust request events, and reads this process's CPU time (``time.process_time()``: every thread,
user + system) and the generator's lag (a 10 ms ticking greenlet) between two moments: ``warmup`` seconds
after all users have spawned, and ``measure`` seconds later. Start-up (imports, spawning) and the end of
the run (reports) fall outside the window, so the figures are the steady-state cost of a turn, taken the
same way for the bare arm and the ConversationUser arm. The window is written as JSON to
``$LOADGEN_BENCH_PROBE_OUT``; the server's CPU time over the same window is read from
``/proc/$LOADGEN_BENCH_SERVER_PID/stat`` when that is given.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events

from loadgen.metrics.histograms import Metric, TrackedHistogram
from loadgen.metrics.lag import LagProbe

_counts = {"requests": 0, "failures": 0}
_result: dict[str, Any] = {}


def _server_cpu_s() -> float | None:
    pid = os.environ.get("LOADGEN_BENCH_SERVER_PID")
    if not pid:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _snapshot() -> dict[str, Any]:
    return {
        "wall_s": time.perf_counter(),
        "cpu_s": time.process_time(),
        "server_cpu_s": _server_cpu_s(),
        **_counts,
    }


def _on_request(exception: Exception | None = None, **_: Any) -> None:
    _counts["requests"] += 1
    if exception is not None:
        _counts["failures"] += 1


def _measure(warmup_s: float, measure_s: float, out: str) -> None:
    gevent.sleep(warmup_s)
    lag = TrackedHistogram(Metric.GENERATOR_LAG)
    ticker = LagProbe(lag.record)
    ticker.start()
    start = _snapshot()
    gevent.sleep(measure_s)
    end = _snapshot()
    ticker.stop()
    window = {k: (end[k] - start[k]) if end[k] is not None and start[k] is not None else None for k in start}
    q = lag.quantiles([0.5, 0.99])
    window["generator_lag_ms"] = {"p50": q[0.5] / 1000, "p99": q[0.99] / 1000, "max": lag.max() / 1000}
    _result.update(window)
    Path(out).write_text(json.dumps(_result))


def _on_quit(**_: Any) -> None:
    """The whole process's CPU time (start-up, run and end-of-run reports), written beside the window."""
    out = os.environ.get("LOADGEN_BENCH_PROBE_OUT")
    if out:
        _result["whole_cpu_s"] = time.process_time()
        Path(out).write_text(json.dumps(_result))


def _on_spawning_complete(**_: Any) -> None:
    out = os.environ.get("LOADGEN_BENCH_PROBE_OUT")
    if out:
        warmup = float(os.environ.get("LOADGEN_BENCH_WARMUP_S", "3"))
        measure = float(os.environ.get("LOADGEN_BENCH_MEASURE_S", "15"))
        gevent.spawn(_measure, warmup, measure, out)


def _listen(hook: Any, listener: Any) -> None:
    hook.add_listener(listener)


_listen(events.request, _on_request)
_listen(events.spawning_complete, _on_spawning_complete)
_listen(events.quit, _on_quit)
