"""The gevent/asyncio bridge: results, exceptions, timeouts that cancel, forks, and a hub that never blocks.

The gevent cases run in subprocesses (monkey patching is process-wide and must come first); the load case runs
100 greenlets doing real AMQP turns against the reference server while a 10 ms ticker measures the hub's lag.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from loadgen.server.app import run_in_thread
from loadgen.server.config import ServerConfig, SimEngineConfig
from loadgen.transports.bridge import AsyncBridge, BridgeError, gevent_patched
from tests.amqp_broker import BROKER_URL, require_broker, unique_queue
from tests.conftest import REPO_ROOT


@pytest.fixture
def bridge() -> AsyncBridge:
    return AsyncBridge.get()


# -- plain threads (no gevent in this process) -------------------------------------------------------------------


def test_not_patched_here() -> None:
    assert not gevent_patched()


def test_result(bridge: AsyncBridge) -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    assert bridge.run(lambda: double(21), timeout=5) == 42


def test_same_bridge_per_process(bridge: AsyncBridge) -> None:
    assert AsyncBridge.get() is bridge
    assert AsyncBridge.current() is bridge
    assert bridge.pid == os.getpid()


def test_the_coroutine_runs_on_the_loop_thread(bridge: AsyncBridge) -> None:
    async def where() -> tuple[int, bool]:
        return threading.get_ident(), asyncio.get_running_loop() is bridge.loop

    ident, same_loop = bridge.run(where, timeout=5)
    assert ident != threading.get_ident()
    assert same_loop


def test_exception_comes_out_as_is(bridge: AsyncBridge) -> None:
    class Boom(Exception):
        pass

    async def fail() -> None:
        await asyncio.sleep(0)
        raise Boom("boom")

    with pytest.raises(Boom, match="boom"):
        bridge.run(fail, timeout=5)


def test_factory_error_comes_out(bridge: AsyncBridge) -> None:
    def factory() -> Any:
        raise ValueError("bad factory")

    with pytest.raises(ValueError, match="bad factory"):
        bridge.run(factory, timeout=5)


def test_timeout_cancels_the_task(bridge: AsyncBridge) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        bridge.run(slow, timeout=0.2)
    elapsed = time.perf_counter() - started
    assert 0.19 <= elapsed < 1.0, elapsed
    assert cancelled.wait(2), "the task was not cancelled after the timeout"


def test_many_threads_at_once(bridge: AsyncBridge) -> None:
    """20 callers each waiting 0.2 s: run concurrently on the one loop, not one after another."""

    async def nap(i: int) -> int:
        await asyncio.sleep(0.2)
        return i

    results: list[int] = []

    def call(i: int) -> None:
        results.append(bridge.run(lambda: nap(i), timeout=5))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == list(range(20))
    assert time.perf_counter() - started < 1.5


def test_calling_from_the_loop_thread_is_refused(bridge: AsyncBridge) -> None:
    async def inner() -> int:
        return 1

    async def nested() -> None:
        bridge.run(inner, timeout=1)

    with pytest.raises(BridgeError, match="own loop thread"):
        bridge.run(nested, timeout=5)


def test_default_executor_uses_real_threads(bridge: AsyncBridge) -> None:
    async def resolve() -> int:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("localhost", 5672)
        thread_name = await loop.run_in_executor(None, lambda: threading.current_thread().name)
        assert thread_name  # ran somewhere, and came back
        return len(infos)

    assert bridge.run(resolve, timeout=10) >= 1


def test_stop_and_a_fresh_one() -> None:
    first = AsyncBridge.get()
    assert first.run(lambda: asyncio.sleep(0, result="ok"), timeout=5) == "ok"
    assert first.stop()
    with pytest.raises(BridgeError):
        first.run(lambda: asyncio.sleep(0), timeout=1)
    second = AsyncBridge.get()
    assert second is not first
    assert second.run(lambda: asyncio.sleep(0, result="again"), timeout=5) == "again"


def test_stop_ends_waiting_calls() -> None:
    """A call waiting without a timeout when the bridge stops gets BridgeError, not a hang."""
    bridge = AsyncBridge.get()
    outcome: list[BaseException] = []
    running = threading.Event()

    async def forever() -> None:
        running.set()  # on the loop: the call is in flight, waiting, when stop() comes
        await asyncio.sleep(60)

    def wait_forever() -> None:
        try:
            bridge.run(forever, timeout=None)
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_forever)
    waiter.start()
    assert running.wait(10), "the call never started on the loop"
    assert waiter.is_alive() and not outcome
    assert bridge.stop()
    waiter.join(5)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], BridgeError)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_works_after_fork_in_a_child(bridge: AsyncBridge) -> None:
    """A forked child (Locust --processes) gets a bridge of its own: the parent's thread does not exist there."""
    assert bridge.run(lambda: asyncio.sleep(0, result=1), timeout=5) == 1
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once, whatever happens
        code = 1
        try:
            child = AsyncBridge.get()
            value = child.run(lambda: asyncio.sleep(0.01, result="child-ok"), timeout=5)
            report = {"value": value, "new": child is not bridge, "pid": child.pid == os.getpid()}
            with pytest.raises(BridgeError):
                bridge.run(lambda: asyncio.sleep(0), timeout=1)  # the parent's, used in the child: refused
            report["old_refused"] = True
            child.stop()
            os.write(write_fd, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    data = os.read(read_fd, 4096)
    os.close(read_fd)
    assert os.waitstatus_to_exitcode(status) == 0, data
    assert json.loads(data) == {"value": "child-ok", "new": True, "pid": True, "old_refused": True}
    # and the parent's bridge still works
    assert bridge.run(lambda: asyncio.sleep(0, result=2), timeout=5) == 2


# -- under gevent (subprocesses) ---------------------------------------------------------------------------------

GEVENT_UNIT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import asyncio
    import json
    import sys
    import threading
    import time

    import gevent

    from loadgen.transports.bridge import AsyncBridge, gevent_patched

    out = {"patched": gevent_patched()}
    bridge = AsyncBridge.get()
    out["switch_interval"] = sys.getswitchinterval()

    async def double(x):
        await asyncio.sleep(0.01)
        return x * 2

    out["result"] = bridge.run(lambda: double(21), timeout=5)

    async def fail():
        raise KeyError("missing")

    try:
        bridge.run(fail, timeout=5)
    except KeyError as exc:
        out["exception"] = str(exc)

    cancelled = []

    async def slow(tag):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(tag)
            raise

    t = time.perf_counter()
    try:
        bridge.run(lambda: slow("timeout"), timeout=0.2)
    except TimeoutError:
        out["timeout_s"] = time.perf_counter() - t

    # Locust stopping a user: GreenletExit in the waiting greenlet cancels the task
    victim = gevent.spawn(bridge.run, lambda: slow("killed"), 30)
    gevent.sleep(0.1)
    victim.kill(block=True, timeout=2)
    out["victim_dead"] = victim.dead
    gevent.sleep(0.2)
    out["cancelled"] = sorted(cancelled)

    # name resolution on the loop (the stock executor's patched threads hung here)
    async def resolve():
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("localhost", 5672)
        return len(infos)

    out["resolved"] = bridge.run(resolve, timeout=10)

    # 100 greenlets waiting 0.2 s each on the loop while a ticker wakes every 10 ms: concurrent, no blocking
    lags = []

    def ticker():
        while True:
            before = time.perf_counter()
            gevent.sleep(0.010)
            lags.append(time.perf_counter() - before - 0.010)

    tick = gevent.spawn(ticker)
    gevent.sleep(0.05)
    t = time.perf_counter()
    jobs = [gevent.spawn(bridge.run, lambda i=i: asyncio.sleep(0.2, result=i), 5) for i in range(100)]
    gevent.joinall(jobs, timeout=10)
    out["concurrent_wall"] = time.perf_counter() - t
    out["concurrent_results"] = sorted(j.value for j in jobs)

    # a busy loop thread (CPU in the coroutine) must not freeze the hub for longer than the GIL's switch interval
    async def busy():
        end = time.perf_counter() + 0.3
        n = 0
        while time.perf_counter() < end:
            n += 1
        return n

    bridge.run(busy, timeout=5)
    tick.kill()
    out["ticks"] = len(lags)
    out["max_lag_ms"] = max(lags) * 1000
    out["threads_real"] = threading.active_count()
    out["stopped"] = bridge.stop()
    print(json.dumps(out))
    """
)


def test_under_gevent(tmp_path: Path) -> None:
    script = tmp_path / "bridge_gevent.py"
    script.write_text(GEVENT_UNIT_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["patched"]
    assert out["switch_interval"] == pytest.approx(0.001)  # lowered from CPython's 5 ms (see bridge.py)
    assert out["result"] == 42
    assert out["exception"] == "'missing'"
    assert 0.19 <= out["timeout_s"] < 1.0
    assert out["victim_dead"]
    assert out["cancelled"] == ["killed", "timeout"]
    assert out["resolved"] >= 1
    assert out["concurrent_results"] == list(range(100))
    assert out["concurrent_wall"] < 1.5, out["concurrent_wall"]
    assert out["ticks"] > 20
    # the hub was never blocked: the loop thread spun its CPU for 300 ms, a blocked hub shows that much lag here
    # (the bar leaves room for shared machines' own scheduling noise)
    assert out["max_lag_ms"] < 150, out
    assert out["stopped"]


GEVENT_FORK_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import asyncio
    import json
    import os

    from loadgen.transports.bridge import AsyncBridge

    parent = AsyncBridge.get()
    assert parent.run(lambda: asyncio.sleep(0, result=1), timeout=5) == 1
    pid = os.fork()
    if pid == 0:
        try:
            child = AsyncBridge.get()
            ok = child is not parent and child.run(lambda: asyncio.sleep(0.01, result="ok"), timeout=5) == "ok"
            child.stop()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"child_exit": os.waitstatus_to_exitcode(status),
                      "parent_still": parent.run(lambda: asyncio.sleep(0, result=2), timeout=5)}))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_after_fork_under_gevent(tmp_path: Path) -> None:
    script = tmp_path / "bridge_fork.py"
    script.write_text(GEVENT_FORK_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"child_exit": 0, "parent_still": 2}


# -- 100 greenlets doing AMQP turns: the hub's lag ---------------------------------------------------------------

LOAD_SCRIPT = REPO_ROOT / "tests" / "transports" / "gevent_amqp_load.py"


@pytest.mark.amqp
def test_hub_lag_under_100_greenlets_doing_amqp_turns(capsys: pytest.CaptureFixture[str]) -> None:
    """A 10 ms ticker (the generator-lag probe) in a gevent-patched process where 100 users hold AMQP
    conversations (1-3 s think time, streamed replies) against the reference server in this process."""
    require_broker()
    config = ServerConfig(
        rest_port=None,
        amqp_url=BROKER_URL,
        amqp_queue=unique_queue(),
        sim=SimEngineConfig(fixed=True, fixed_ttft_ms=50, fixed_itl_ms=10),
    )
    with run_in_thread(config) as server:
        done = subprocess.run(
            [sys.executable, str(LOAD_SCRIPT), server.urls["amqp"], "100", "15", "1", "3"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print(
            f"\n[hub lag, 100 greenlets x AMQP] ticks {out['ticks']}, lag p50 {out['lag_p50_ms']:.2f} ms, "
            f"p99 {out['lag_p99_ms']:.2f} ms, max {out['lag_max_ms']:.2f} ms; turns ok {out['ok']}, failed "
            f"{out['failed']}; TTFT p50 {out['ttft_p50_ms']:.1f} ms; control ticker (no AMQP) p99 "
            f"{out['control_p99_ms']:.2f} ms, max {out['control_max_ms']:.2f} ms"
        )
    assert out["patched"]
    assert out["stuck"] == 0, "greenlets never came back from the bridge"
    assert out["failed"] == 0, out["reasons"]
    assert out["ok"] >= 300
    assert out["ticks"] > 500
    # A hub blocked by the bridge would stop the ticker for whole turns (~200 ms each, 45 turns/s): few ticks, a
    # high median. Those hold whatever the machine does.
    assert out["ticks"] > 0.6 * 15 / 0.010, out
    assert out["lag_p50_ms"] < 2.0, out
    # Relative to the control ticker, which runs at the same time in a process of its own: on a quiet machine
    # the bar is p99 < 5 ms and max < 100 ms (one turn blocking the hub shows as ~200 ms); a busy machine raises
    # both by a multiple of the control's own lag (the loaded process gets its CPU later than the light control).
    # No switch between two absolute limits: a tenfold regression of the p99 fails on a quiet machine and on a
    # busy one alike.
    assert out["lag_p99_ms"] < 5.0 + 3 * out["control_p99_ms"], out
    assert out["lag_max_ms"] < 100.0 + 3 * out["control_max_ms"], out
