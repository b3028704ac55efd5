"""The batching policies on their own, with a hand-driven clock: who is admitted, who waits, who is refused."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():  # a CPU wheel without NumPy warns at import
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    torch = pytest.importorskip(
        "torch", reason="the torch engine needs PyTorch: install 'chat-loadgen[gpu]' or pip install torch==2.13.0"
    )

from loadgen.server.engines.base import EngineOverloaded, EngineRequestError, TokenChunk
from loadgen.server.engines.torch_engine.scheduler import Scheduler, Sequence, State

pytestmark = pytest.mark.torch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def seq(need: int = 10, name: str = "r") -> Sequence:
    return Sequence(name, [0], [1], [TokenChunk("x")], need)


def make(batching: str = "continuous", **kw: float) -> tuple[Scheduler, Clock]:
    clock = Clock()
    args: dict[str, float] = {"max_batch": 2, "kv_tokens": 100, "queue_limit": 2, "static_batch_timeout_s": 0.05}
    args.update(kw)
    sched = Scheduler(
        batching=batching,
        max_batch=int(args["max_batch"]),
        kv_tokens=int(args["kv_tokens"]),
        queue_limit=int(args["queue_limit"]),
        static_batch_timeout_s=args["static_batch_timeout_s"],
        clock=clock,
    )
    return sched, clock


def test_continuous_admits_up_to_max_batch_then_queues_then_refuses() -> None:
    sched, _ = make()
    a, b, c, d, e = (seq(name=n) for n in "abcde")
    for s in (a, b, c, d):
        sched.submit(s)
    assert [a.state, b.state, c.state, d.state] == [State.ADMITTED] * 2 + [State.WAITING] * 2
    with pytest.raises(EngineOverloaded, match="queue full"):
        sched.submit(e)
    assert e.state is State.DONE and sched.queue_depth == 2 and sched.stats.rejected == 1
    assert sched.take(block=False) == [a, b]
    sched.release(a)  # a leaves the batch: c joins at the next step, without waiting for b
    assert sched.take(block=False) == [c]
    assert sched.active == 2 and sched.queue_depth == 1


def test_kv_budget_bounds_the_batch_and_a_request_too_big_is_an_error() -> None:
    sched, _ = make(max_batch=8, kv_tokens=100, queue_limit=1)
    big1, big2, small, extra = seq(60), seq(50), seq(5), seq(5)
    sched.submit(big1)
    sched.submit(big2)  # 60 + 50 > 100: waits, although slots are free
    assert big2.state is State.WAITING and sched.kv_used == 60
    with pytest.raises(EngineOverloaded):
        sched.submit(small)  # FIFO: small may not overtake big2, and the queue (1) is full
    with pytest.raises(EngineRequestError, match="KV tokens"):
        sched.submit(seq(101))
    sched.take(block=False)
    sched.release(big1)
    assert sched.take(block=False) == [big2] and sched.kv_used == 50
    sched.submit(extra)
    assert extra.state is State.ADMITTED and sched.kv_used == 55


def test_cancel_removes_a_waiting_sequence_and_flags_a_running_one() -> None:
    sched, _ = make(max_batch=1)
    a, b = seq(name="a"), seq(name="b")
    sched.submit(a)
    sched.submit(b)
    sched.cancel(b)
    assert b.state is State.DONE and sched.queue_depth == 0 and sched.stats.cancelled == 1
    sched.cancel(a)
    assert a.cancelled and a.state is State.ADMITTED  # the worker releases it at its next step
    sched.release(a)
    assert sched.active == 0 and sched.kv_used == 0 and sched.stats.cancelled == 2


def test_static_batch_waits_for_max_batch_or_the_timeout_and_admits_nobody_while_it_runs() -> None:
    sched, clock = make("static", max_batch=3, queue_limit=10)
    a, b, c, d, e = (seq(name=n) for n in "abcde")
    sched.submit(a)
    sched.submit(b)
    assert sched.take(block=False) == []  # 2 of 3, timeout not reached: hold
    clock.now += 0.049
    assert sched.take(block=False) == []
    clock.now += 0.002
    assert sched.take(block=False) == [a, b]  # the oldest waited 51 ms > 50 ms
    sched.submit(c)
    sched.submit(d)
    sched.submit(e)
    clock.now += 1.0
    sched.release(a)
    assert sched.take(block=False) == []  # b still runs: no joins, even with a full batch waiting
    sched.release(b)
    assert sched.take(block=False) == [c, d, e]


def test_static_batch_forms_at_once_when_full_or_when_kv_cannot_take_one_more() -> None:
    sched, _ = make("static", max_batch=2, queue_limit=10, kv_tokens=100)
    a, b = seq(name="a"), seq(name="b")
    sched.submit(a)
    sched.submit(b)
    assert sched.take(block=False) == [a, b]
    sched.release(a)
    sched.release(b)
    c, d = seq(70, "c"), seq(70, "d")
    sched.submit(c)
    sched.submit(d)
    assert sched.take(block=False) == [c]  # d could not join a batch with c in it: no point waiting


def test_take_blocks_until_work_and_returns_none_once_stopped() -> None:
    sched, _ = make("static", queue_limit=10)
    a = seq()
    sched.submit(a)
    dropped = sched.stop()
    assert dropped == [a] and a.state is State.DONE
    assert sched.take(block=True) is None
    with pytest.raises(EngineOverloaded, match="stopping"):
        sched.submit(seq())
