"""Run by tests/transports/test_bridge.py in a subprocess: N greenlets hold AMQP conversations through the
bridge in a gevent-patched process while a 10 ms ticker (loadgen.metrics.lag.LagProbe) measures the hub's lag.

    python gevent_amqp_load.py TARGET USERS SECONDS THINK_MIN THINK_MAX
    python gevent_amqp_load.py --control SECONDS     # the ticker alone: the machine's own scheduling noise

Prints one JSON line of figures.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after monkey patching, on purpose
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from loadgen.metrics.lag import LagProbe  # noqa: E402


def pct(values: list[Any], q: float) -> Any:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0


def lag_figures(lags_us: list[int]) -> dict[str, float]:
    lags = sorted(lags_us)
    return {
        "ticks": len(lags),
        "p50_ms": pct(lags, 0.50) / 1000,
        "p99_ms": pct(lags, 0.99) / 1000,
        "max_ms": (lags[-1] if lags else 0) / 1000,
    }


def control(seconds: float) -> None:
    lags_us: list[int] = []
    probe = LagProbe(lags_us.append)
    probe.start()
    gevent.sleep(seconds)
    probe.stop()
    print(json.dumps(lag_figures(lags_us)))


def load(target: str, users: int, duration: float, think_min: float, think_max: float) -> None:
    from loadgen.transports.amqp import AmqpTransport
    from loadgen.transports.base import TransportConfig
    from loadgen.transports.bridge import gevent_patched
    from loadgen.types import ChatMessage, ChatRequest

    results: dict[str, Any] = {"ok": 0, "failed": 0, "reasons": {}}
    ttfts: list[float] = []
    t0 = time.perf_counter()
    spikes: list[tuple[float, float]] = []
    lags_us: list[int] = []

    def record(us: int) -> None:
        lags_us.append(us)
        if us > 10_000 and len(spikes) < 40:
            spikes.append((round(time.perf_counter() - t0, 3), us / 1000))

    def user(i: int) -> None:
        transport = AmqpTransport(TransportConfig(target=target, timeout_s=20, connect_timeout_s=10))
        rng = random.Random(i)
        end = time.perf_counter() + duration
        history: list[ChatMessage] = []
        try:
            gevent.sleep(rng.uniform(0, min(1.0, think_max)))  # ramp up over a second
            turn = 0
            while time.perf_counter() < end:
                turn += 1
                history.append(ChatMessage("user", f"Hello, I am user {i}, turn {turn}."))
                request = ChatRequest(messages=tuple(history), max_tokens=16)
                try:
                    reply = transport.send(request)
                    results["ok"] += 1
                    ttfts.append(reply.ttft_s() or 0.0)
                    history.append(ChatMessage("assistant", reply.text))
                except Exception as exc:  # counted and reported, never raised
                    history.pop()
                    results["failed"] += 1
                    key = f"{type(exc).__name__}: {exc}"
                    results["reasons"][key] = results["reasons"].get(key, 0) + 1
                gevent.sleep(rng.uniform(think_min, think_max))
        finally:
            transport.close()

    probe = LagProbe(record)
    watcher = subprocess.Popen(
        [sys.executable, __file__, "--control", str(duration + 1.5)], stdout=subprocess.PIPE, text=True
    )
    probe.start()
    gevent.sleep(0.3)
    started = time.perf_counter()
    jobs = [gevent.spawn(user, i) for i in range(users)]
    gevent.joinall(jobs, timeout=duration + 60)
    stuck = sum(1 for job in jobs if not job.dead)
    wall = time.perf_counter() - started
    probe.stop()
    control_out, _ = watcher.communicate(timeout=60)
    control_figures = json.loads(control_out.strip().splitlines()[-1])
    figures = lag_figures(lags_us)
    ttfts.sort()
    print(
        json.dumps(
            {
                "patched": gevent_patched(),
                "stuck": stuck,
                "wall": wall,
                "ticks": figures["ticks"],
                "lag_p50_ms": figures["p50_ms"],
                "lag_p99_ms": figures["p99_ms"],
                "lag_max_ms": figures["max_ms"],
                "control_p99_ms": control_figures["p99_ms"],
                "control_max_ms": control_figures["max_ms"],
                "ttft_p50_ms": pct(ttfts, 0.5) * 1000,
                "ttft_p99_ms": pct(ttfts, 0.99) * 1000,
                "spikes": spikes,
                **results,
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "--control":
        control(float(sys.argv[2]))
    else:
        load(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
