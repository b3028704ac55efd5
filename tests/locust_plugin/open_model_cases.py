"""The open model in a Locust runner (``--arrival-rate``): real users as conversation slots, a real dispatcher, a
scripted transport that notes when each conversation started. Run in a Python of their own by
``test_open_model.py`` (importing Locust monkey-patches the process with gevent)."""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import configargparse
import gevent
import pytest
from locust import LoadTestShape
from locust.env import Environment
from locust.event import Events

from loadgen.errors import ConfigError
from loadgen.locust_plugin import ConversationUser, open_model, options, runtime
from loadgen.metrics.keys import Count, SeriesKey
from loadgen.transports.base import Transport, TransportConfig
from loadgen.types import ChatRequest, Reply, Usage

DIALOGUE = """\
name: quick
system: "You help."
turns:
  - user: "Hi."
  - user: "How are you?"
  - user: "Any news?"
  - user: "Thanks."
  - user: "Bye."
"""


class Stamped(Transport):
    """Replies after ``delay_s``; notes when each conversation's first turn was sent."""

    name = "rest"
    schemes = ("http",)
    firsts: list[float] = []

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(TransportConfig(target="http://scripted"))
        self.delay_s = delay_s

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        sent = time.perf_counter()
        if len(request.messages) <= 2:  # system + the first user message
            Stamped.firsts.append(sent)
        gevent.sleep(self.delay_s)
        done = time.perf_counter()
        return Reply("ok", t_sent=sent, t_done=done, chunk_times=[done], chunk_tokens=[1.0], usage=Usage(5, 1))


def _user_class(delay_s: float) -> type[ConversationUser]:
    class Slot(ConversationUser):
        def on_start(self) -> None:
            self.transport = Stamped(delay_s)

    return Slot


def _parsed(tmp_path: Path, *args: str) -> argparse.Namespace:
    (tmp_path / "quick.yaml").write_text(DIALOGUE, encoding="utf-8")
    parser = configargparse.ArgumentParser()
    options.add_arguments(parser)
    argv = ["--dialogues", str(tmp_path / "quick.yaml"), "--think-min", "0", "--think-max", "0", "--seed", "7"]
    return parser.parse_args([*argv, *args])


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    Stamped.firsts = []
    yield
    open_model.reset()
    runtime.reset_runtime()


def _run(
    tmp_path: Path, users: int, seconds: float, *args: str, delay_s: float = 0.0
) -> tuple[runtime.LoadgenRuntime, Environment]:
    """Spawn ``users`` slots at once, dispatch for ``seconds``, stop."""
    env = Environment(user_classes=[_user_class(delay_s)], events=Events(), host="http://scripted")
    runner = env.create_local_runner()
    env.parsed_options = _parsed(tmp_path, *args)
    rt = runtime.build_runtime(env.parsed_options, "local", env.events.request)
    open_model._setup(env, rt, "local", None)
    env.events.test_start.add_listener(open_model._on_test_start)
    env.events.spawning_complete.add_listener(open_model._on_spawning_complete)
    env.events.test_stopping.add_listener(open_model._on_test_stopping)
    runner.start(users, spawn_rate=users)
    gevent.sleep(seconds)
    runner.stop()
    return rt, env


def _count(rt: runtime.LoadgenRuntime, name: Count) -> int:
    return int(rt.pending.counter(SeriesKey.series("rest").with_metric(name)))


def _cv(times: list[float]) -> float:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return statistics.pstdev(gaps) / statistics.mean(gaps)


def test_poisson_arrivals_come_at_the_requested_rate_with_exponential_gaps(tmp_path: Path) -> None:
    rt, _ = _run(tmp_path, 20, 4.0, "--arrival-rate", "50")
    offered = _count(rt, Count.ARRIVALS)
    block = open_model.arrivals_block(rt.pending, kind="poisson", requested=50.0, cap=20)
    assert 3.9 <= block["duration_s"] <= 4.5
    assert block["achieved_per_s"] == pytest.approx(50.0, rel=0.2), block
    assert _count(rt, Count.ARRIVALS_DROPPED) == 0
    assert _count(rt, Count.ARRIVALS_STARTED) == offered
    assert len(Stamped.firsts) >= offered - 2  # a conversation started per arrival (the last may be in flight)
    assert 0.75 <= _cv(Stamped.firsts) <= 1.35  # exponential gaps: coefficient of variation 1


def test_constant_arrivals_are_evenly_spaced(tmp_path: Path) -> None:
    rt, _ = _run(tmp_path, 10, 2.0, "--arrival-rate", "40", "--arrival", "constant")
    block = open_model.arrivals_block(rt.pending, kind="constant", requested=40.0, cap=10)
    assert 1.9 <= block["duration_s"] <= 3.0, block  # the test's sleep, as long as a busy machine made it
    # the schedule, not the machine, sets the count: one arrival per 25 ms of the time the dispatcher ran
    assert abs(_count(rt, Count.ARRIVALS) - 40.0 * block["duration_s"]) <= 2, block
    gaps = [b - a for a, b in itertools.pairwise(Stamped.firsts)]
    assert statistics.median(abs(gap - 0.025) for gap in gaps) < 0.005  # evenly spaced, but for the odd stall


def test_arrivals_beyond_the_cap_are_dropped_and_counted_never_delayed(tmp_path: Path) -> None:
    # 2 slots, each conversation 5 turns x 0.1 s: at most ~2 / 0.5 s conversations start, of 20 arrivals a second
    rt, _ = _run(tmp_path, 2, 2.0, "--arrival-rate", "20", "--arrival", "constant", delay_s=0.1)
    offered, started = _count(rt, Count.ARRIVALS), _count(rt, Count.ARRIVALS_STARTED)
    dropped = _count(rt, Count.ARRIVALS_DROPPED)
    assert 36 <= offered <= 42  # the schedule kept going while every slot was busy
    assert started + dropped == offered
    assert 5 <= started <= 10 and dropped >= 26
    assert _count(rt, Count.ARRIVALS_LIVE_MAX) == 2
    live_mean = _count(rt, Count.ARRIVALS_LIVE_MS) / 1000.0 / 2.0
    assert 1.6 <= live_mean <= 2.05  # both slots busy nearly all the time
    # the turns' own figures: a first turn's schedule lag is its start minus its arrival's due time
    lag = rt.pending.histograms[SeriesKey.series("rest", "quick", 1).with_metric("schedule_lag")]
    assert lag.count == started and lag.quantiles([0.5])[0.5] < 20_000  # microseconds


class TwoSteps(LoadTestShape):
    """10 conversations/s for 2 s, then 40/s for 2 s; 5 slots."""

    arrival_rate: float | None = None

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        if run_time > 4.0:
            return None
        self.arrival_rate = 10.0 if run_time < 2.0 else 40.0
        return 5, 5


def test_a_load_test_shape_steps_the_rate(tmp_path: Path) -> None:
    env = Environment(user_classes=[_user_class(0.0)], events=Events(), host="http://scripted", shape_class=TwoSteps())
    runner = env.create_local_runner()
    env.parsed_options = _parsed(tmp_path, "--arrival-rate", "1", "--arrival", "constant")
    env.parsed_options.headless = True
    rt = runtime.build_runtime(env.parsed_options, "local", env.events.request)
    open_model._setup(env, rt, "local", None)
    env.events.test_start.add_listener(open_model._on_test_start)
    env.events.spawning_complete.add_listener(open_model._on_spawning_complete)
    env.events.test_stopping.add_listener(open_model._on_test_stopping)
    began = time.perf_counter()
    runner.start_shape()
    runner.shape_greenlet.join(timeout=10)
    firsts = [t - began for t in Stamped.firsts]
    first_step = sum(1 for t in firsts if 0.3 <= t < 1.9)
    second_step = sum(1 for t in firsts if 2.3 <= t < 3.9)
    assert 12 <= first_step <= 20, firsts
    assert 52 <= second_step <= 72, firsts
    steps = open_model.state.rate_steps
    assert [rate for _, rate in steps] == [10.0, 40.0]
    mean = open_model.requested_per_s(steps, steps[0][0], steps[0][0] + 4.0)
    assert mean == pytest.approx(25.0, abs=3.0)


def test_the_arrivals_block_and_the_console_line(tmp_path: Path) -> None:
    rt, _ = _run(tmp_path, 2, 1.0, "--arrival-rate", "20", "--arrival", "constant", delay_s=0.3)
    block = open_model.arrivals_block(rt.pending, kind="constant", requested=20.0, cap=2)
    assert block["duration_s"] == pytest.approx(1.0, abs=0.1)  # from the dispatcher's start to its stop
    assert block["offered"] == _count(rt, Count.ARRIVALS)
    assert block["achieved_per_s"] == pytest.approx(block["offered"] / block["duration_s"], rel=0.01)
    assert block["started"] + block["dropped"] == block["offered"] and block["live_max"] == 2
    assert block["mode"] == "constant" and block["max_in_flight"] == 2
    # stopped, the dispatcher stays: a slot freed while the users stop waits in it, never chats in the closed model
    dispatcher = open_model.current()
    assert dispatcher is not None
    dispatcher.start()  # a stopped dispatcher is not started again
    gevent.sleep(0.2)
    assert dispatcher.counts.offered == block["offered"]
    line = open_model.console_line(block)
    assert line == (f"arrivals: requested 20.00/s, achieved {block['achieved_per_s']:.2f}/s, "
                    f"dropped {block['dropped']} (cap 2)")  # fmt: skip


def test_without_an_arrival_rate_the_users_chat_as_before(tmp_path: Path) -> None:
    rt, _ = _run(tmp_path, 2, 0.5)
    assert open_model.current() is None and _count(rt, Count.ARRIVALS) == 0
    assert rt.pending.counter(SeriesKey.series("rest").with_metric(Count.TURNS)) > 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arrival-rate", "0"], "--arrival-rate 0.0: must be > 0 conversations/s"),
        (["--arrival-rate", "-2"], "--arrival-rate -2.0: must be > 0 conversations/s"),
        (["--max-in-flight", "4"], "--max-in-flight 4: caps open-model conversations, give --arrival-rate too"),
        (["--arrival-rate", "5", "--max-in-flight", "0"], "--max-in-flight 0: must be >= 1"),
    ],
)
def test_bad_open_model_options_are_one_line_naming_the_option(tmp_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        options.LoadgenOptions.from_parsed(_parsed(tmp_path, *argv))
    assert str(error.value) == message


def _with_users(tmp_path: Path, users: int | None, *argv: str, headless: bool = True) -> Any:
    parsed = _parsed(tmp_path, *argv)
    parsed.num_users, parsed.spawn_rate, parsed.headless = users, None, headless
    return parsed


def test_the_users_are_the_slots_and_must_agree_with_max_in_flight(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^-u 0: --arrival-rate needs at least one conversation slot"):
        options.LoadgenOptions.from_parsed(_with_users(tmp_path, 0, "--arrival-rate", "5"))
    with pytest.raises(ConfigError, match=r"^--max-in-flight 8 and -u 4 disagree"):
        options.LoadgenOptions.from_parsed(_with_users(tmp_path, 4, "--arrival-rate", "5", "--max-in-flight", "8"))
    env = Environment(user_classes=[_user_class(0.0)], events=Events(), host="http://scripted")
    env.parsed_options = _with_users(tmp_path, None, "--arrival-rate", "5")
    rt = runtime.build_runtime(env.parsed_options, "local", env.events.request)
    with pytest.raises(ConfigError, match=r"^--arrival-rate 5: give the cap on live conversations, -u N or --max"):
        open_model._setup(env, rt, "local", None)
    env.parsed_options = _with_users(tmp_path, None, "--arrival-rate", "5", "--max-in-flight", "12")
    rt = runtime.build_runtime(env.parsed_options, "local", env.events.request)
    open_model._setup(env, rt, "local", None)
    assert (env.parsed_options.num_users, env.parsed_options.spawn_rate) == (12, 12)  # every slot at once


def test_the_master_gives_each_worker_its_share_and_a_worker_follows_a_new_rate(tmp_path: Path) -> None:
    from locust.runners import STATE_MISSING, STATE_RUNNING

    sent: list[tuple[str, dict[str, Any], str]] = []
    clients = [SimpleNamespace(id=i, state=s) for i, s in [("w-b", STATE_RUNNING), ("w-gone", STATE_MISSING),
                                                            ("w-a", STATE_RUNNING)]]  # fmt: skip

    def send(kind: str, data: dict[str, Any], client_id: str) -> None:
        sent.append((kind, data, client_id))

    runner = SimpleNamespace(clients=SimpleNamespace(all=clients), target_user_count=10, send_message=send)
    open_model._send_plans(runner, open_model.Plan(6.0, "constant"))
    assert sent == [
        (open_model.MESSAGE, {"rate": 6.0, "kind": "constant", "shares": 2, "index": 0}, "w-a"),
        (open_model.MESSAGE, {"rate": 6.0, "kind": "constant", "shares": 2, "index": 1}, "w-b"),
    ]
    # the worker's side: the plan before its test, then a rate step while it runs
    parsed = _parsed(tmp_path)
    rt = runtime.build_runtime(parsed, "worker", Events().request)
    open_model._on_plan(msg=SimpleNamespace(data=sent[1][1]))
    dispatcher = open_model.prepare_dispatching(rt, open_model.state.plan)
    assert (dispatcher.clock.shares, dispatcher.clock.rate_per_s) == (2, 3.0)
    open_model._on_plan(msg=SimpleNamespace(data={**sent[1][1], "rate": 20.0}))
    assert dispatcher.clock.rate_per_s == 10.0
