"""Unit tests of the Locust plugin's pieces (user, runtime, listeners, events, report hooks, options), driven in
process: a ConversationUser runs its conversation in the test's own greenlet over a scripted transport.

Importing Locust monkey-patches the process with gevent, so these run in a Python of their own, started by
``test_plugin.py`` (which imports Locust before pytest); they are not collected by the main test session.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import configargparse
import gevent
import pytest
from locust.env import Environment
from locust.event import Events

from loadgen.errors import ConfigError, RetentionFailure
from loadgen.locust_plugin import ConversationUser, distributed, options, report_hooks, runtime
from loadgen.locust_plugin import events as plugin_events
from loadgen.locust_plugin.listeners import Listeners
from loadgen.locust_plugin.persistence import RunFolder
from loadgen.metrics.aggregator import RunAggregator
from loadgen.metrics.keys import Count, FailureReason, SeriesKey, Total
from loadgen.report.rundata import load_batch
from loadgen.report.thresholds import parse_thresholds
from loadgen.types import ChatMessage, ChatRequest, HistoryMode, Reply
from tests.scripted_transport import DIALOGUE, ScriptedTransport

SYSTEM = ChatMessage("system", "You help Zephyrine.")
U = {
    1: ChatMessage("user", "Hi, I am Zephyrine."),
    2: ChatMessage("user", "My code is QX-7781."),
    3: ChatMessage("user", "Any news?"),
    4: ChatMessage("user", "What was my code?"),
    5: ChatMessage("user", "And my name?"),
}


class ChatUser(ConversationUser):
    pass


def _parsed(tmp_path: Path, *args: str) -> argparse.Namespace:
    (tmp_path / "plan.yaml").write_text(DIALOGUE, encoding="utf-8")
    parser = configargparse.ArgumentParser()
    options.add_arguments(parser)
    argv = ["--dialogues", str(tmp_path / "plan.yaml"), "--think-min", "0", "--think-max", "0", "--seed", "1"]
    return parser.parse_args([*argv, *args])


@pytest.fixture
def env() -> Iterator[Environment]:
    environment = Environment(user_classes=[ChatUser], events=Events(), host="http://scripted")
    environment.create_local_runner()  # Locust's stats listen to the request event
    yield environment
    runtime.reset_runtime()


def _converse(env: Environment, tmp_path: Path, transport: ScriptedTransport, *args: str) -> runtime.LoadgenRuntime:
    rt = runtime.build_runtime(_parsed(tmp_path, *args), "local", env.events.request)
    user = ChatUser(env)
    user.transport = transport
    user.converse()
    return rt


def _counter(rt: runtime.LoadgenRuntime, metric: Any, turn: int | None = None) -> float:
    key = SeriesKey.series("rest") if turn is None else SeriesKey.series("rest", "plan", turn)
    return rt.pending.counter(key.with_metric(metric))


def _locust(env: Environment, turn: int) -> tuple[int, int]:
    entry = env.stats.get(f"plan:turn{turn}", "rest")
    return entry.num_requests, entry.num_failures


# --- the user --------------------------------------------------------------------------------------------------
def test_a_failed_turn_is_left_out_of_the_next_request_and_counted_once(env: Environment, tmp_path: Path) -> None:
    transport = ScriptedTransport(fail_at=(2,))
    rt = _converse(env, tmp_path, transport)
    sent = [r.messages for r in transport.requests]
    assert sent[1] == (SYSTEM, U[1], ChatMessage("assistant", "You help Zephyrine. | Hi, I am Zephyrine."), U[2])
    assert sent[2] == (*sent[1][:-1], U[3])  # turn 2's message is gone
    assert len(sent) == 5 and all(r.session_id is None for r in transport.requests)
    assert [_locust(env, k) for k in range(1, 6)] == [(1, 0), (1, 1), (1, 0), (1, 0), (1, 0)]
    assert (_counter(rt, Count.TURNS), _counter(rt, Count.FAILURES), _counter(rt, Count.TRANSPORT_FAILURES)) == (
        5,
        1,
        1,
    )
    assert _counter(rt, FailureReason("ConnectError", "refused at send 2"), turn=2) == 1
    assert _counter(rt, Count.FAILURES, turn=2) == 1 and _counter(rt, Count.FAILURES, turn=3) == 0
    # turn 4 probes a code that was never planted (its turn failed): skipped, not checked; turn 5 checks the name
    assert (_counter(rt, Count.RETENTION_CHECKED, turn=4), _counter(rt, Count.RETENTION_CHECKED, turn=5)) == (0, 1)
    assert _counter(rt, Total.OUTPUT_TOKENS) == 12.0
    assert env.stats.total.num_requests == _counter(rt, Count.TURNS)
    assert env.stats.total.num_failures == _counter(rt, Count.FAILURES)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_a_turn_failing_at_k_is_left_out_of_every_later_request(env: Environment, tmp_path: Path, k: int) -> None:
    """Whichever turn fails: each later request carries the history without that turn's message (and without a
    reply to it), the conversation goes on to the end, and each counter counts the one failure once."""
    transport = ScriptedTransport(fail_at=(k,))
    rt = _converse(env, tmp_path, transport)
    expected: list[tuple[ChatMessage, ...]] = []
    history: list[ChatMessage] = [SYSTEM]
    for turn in range(1, 6):  # the model: a failed turn leaves the history as it was
        sent = (*history, U[turn])
        expected.append(sent)
        if turn != k:
            history += [U[turn], ChatMessage("assistant", " | ".join(m.content for m in sent))]
    assert [r.messages for r in transport.requests] == expected
    assert [_locust(env, turn) for turn in range(1, 6)] == [(1, int(turn == k)) for turn in range(1, 6)]
    counted = (Count.TURNS, Count.FAILURES, Count.TRANSPORT_FAILURES, Count.RETENTION_FAILURES)
    assert [_counter(rt, c) for c in counted] == [5, 1, 1, 0]
    assert [_counter(rt, Count.FAILURES, turn=turn) for turn in range(1, 6)] == [int(turn == k) for turn in range(1, 6)]
    assert _counter(rt, FailureReason("ConnectError", f"refused at send {k}"), turn=k) == 1
    # turn 4 probes the code planted at turn 2, turn 5 the name planted at turn 1: a probe is checked only when
    # its fact was planted and its own turn got a reply
    checked = [_counter(rt, Count.RETENTION_CHECKED, turn=turn) for turn in (4, 5)]
    assert checked == [int(k not in (2, 4)), int(k not in (1, 5))]
    assert _counter(rt, Count.RETENTION_PASSED) == sum(checked)
    assert _counter(rt, Total.OUTPUT_TOKENS) == 4 * 3.0
    assert env.stats.total.num_requests == 5 and env.stats.total.num_failures == 1


def test_server_mode_sends_the_session_and_only_the_new_message(env: Environment, tmp_path: Path) -> None:
    transport = ScriptedTransport(fail_at=(1,))
    rt = _converse(env, tmp_path, transport, "--history", "server")
    assert rt.options.history is HistoryMode.SERVER
    assert [r.messages for r in transport.requests] == [(SYSTEM, U[1]), (U[2],), (U[3],), (U[4],), (U[5],)]
    ids = {r.session_id for r in transport.requests}
    assert len(ids) == 1 and None not in ids
    # the name was never planted (turn 1 failed): skipped; the code was, and this scripted server keeps no history
    assert (_counter(rt, Count.RETENTION_CHECKED), _counter(rt, Count.RETENTION_FAILURES)) == (1, 1)
    assert (_counter(rt, Count.FAILURES), _counter(rt, Count.TRANSPORT_FAILURES)) == (2, 1)


def test_a_retention_miss_is_a_locust_failure_and_a_retention_failure_of_ours(env: Environment, tmp_path: Path) -> None:
    seen: list[Any] = []
    env.events.request.add_listener(lambda exception=None, **_: seen.append(exception))
    rt = _converse(env, tmp_path, ScriptedTransport(forget_at=(4,)))
    assert [type(e).__name__ for e in seen] == ["NoneType"] * 3 + ["RetentionFailure", "NoneType"]
    assert isinstance(seen[3], RetentionFailure)
    assert str(seen[3]) == "plan turn 4 forgot code (planted at turn 2)"  # grouped: no slot value
    assert _locust(env, 4) == (1, 1)
    counted = (Count.FAILURES, Count.RETENTION_FAILURES, Count.RETENTION_CHECKED, Count.RETENTION_PASSED)
    assert [_counter(rt, c) for c in counted] == [1, 1, 2, 1]
    assert _counter(rt, FailureReason("RetentionFailure", str(seen[3])), turn=4) == 1


def test_each_turn_is_one_event_recorded_in_the_same_greenlet_step(env: Environment, tmp_path: Path) -> None:
    steps: list[str] = []
    ticking = True

    def ticker() -> None:
        while ticking:
            steps.append("tick")
            gevent.sleep(0)

    env.events.request.add_listener(lambda **_: steps.append("event"))
    runtime.build_runtime(_parsed(tmp_path), "local", env.events.request)
    ticks = gevent.spawn(ticker)
    rt = runtime.get_runtime()
    rt.turn_listeners.add(lambda outcome, _: steps.append(f"recorded {outcome.turn}"))
    user = ChatUser(env)
    user.transport = ScriptedTransport(fail_at=(3,))
    user.converse()
    ticking = False
    ticks.join()
    assert "tick" in steps  # the think times (0 s) and the ticker did take turns
    events = [i for i, step in enumerate(steps) if step == "event"]
    assert len(events) == 5
    assert [steps[i + 1] for i in events] == [f"recorded {k}" for k in range(1, 6)]


def test_a_failing_turn_listener_does_not_stop_the_others(
    env: Environment, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def broken(outcome: Any, conversation_id: str) -> None:
        raise OSError("disk full")

    runtime.build_runtime(_parsed(tmp_path), "local", env.events.request)
    rt = runtime.get_runtime()
    rt.turn_listeners.add(broken)
    rt.turn_listeners.add(lambda outcome, _: calls.append(outcome.turn))
    user = ChatUser(env)
    user.transport = ScriptedTransport()
    with caplog.at_level(logging.ERROR, logger="loadgen"):
        user.converse()
    assert calls == [1, 2, 3, 4, 5]
    assert rt.turn_listeners.failures(broken) == 5
    assert [r.message for r in caplog.records].count(
        f"turn listener {broken!r} failed (its later failures are counted, not logged)"
    ) == 1
    assert _counter(rt, Count.TURNS) == 5


def test_listeners_run_in_order_and_each_failure_is_isolated() -> None:
    order: list[str] = []
    listeners: Listeners[[str]] = Listeners("test")

    def first(x: str) -> None:
        order.append(f"first {x}")
        raise ValueError(x)

    listeners.add(first)
    listeners.add(lambda x: order.append(f"second {x}"))
    listeners.fire("a")
    listeners.fire("b")
    assert order == ["first a", "second a", "first b", "second b"]
    assert listeners.failures(first) == 2 and len(listeners) == 2


# --- events -------------------------------------------------------------------------------------------------------
def _init_environment(parsed: argparse.Namespace) -> Any:
    return SimpleNamespace(parsed_options=parsed, events=Events(), host="http://scripted", runner=None)


def test_a_bad_run_id_stops_the_run_with_one_line_before_a_folder_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_events.state.folder = None
    with pytest.raises(SystemExit) as stopped:
        plugin_events._on_init(_init_environment(_parsed(tmp_path, "--run-id", "nightly/2026")), runner=None)
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        "chat-loadgen: --run-id 'nightly/2026': use letters, digits, '.', '_' and '-' only\n"
    )
    assert plugin_events.state.folder is None


def test_a_good_run_id_names_the_run_folder(tmp_path: Path) -> None:
    parsed = _parsed(tmp_path, "--run-id", "nightly-2026.1", "--reports-dir", str(tmp_path / "reports"))
    plugin_events._on_init(_init_environment(parsed), runner=None)
    assert plugin_events.state.folder is not None
    assert plugin_events.state.folder.run_dir == tmp_path / "reports" / "nightly-2026.1"
    assert plugin_events.state.folder.meta["id"] == "nightly-2026.1"
    runtime.reset_runtime()


def test_a_failing_summary_listener_does_not_stop_the_report_or_the_gates(tmp_path: Path) -> None:
    calls: list[Path] = []

    def broken(environment: Any, summary: dict[str, Any], run_dir: Path) -> None:
        raise RuntimeError("broken plug-in")

    plugin_events.summary_listeners.add(broken)
    plugin_events.summary_listeners.add(lambda environment, summary, run_dir: calls.append(run_dir))
    try:
        plugin_events.summary_listeners.fire(SimpleNamespace(), {}, tmp_path)
    finally:
        plugin_events.summary_listeners.remove(broken)
    assert calls == [tmp_path]
    assert plugin_events.summary_listeners.failures(broken) == 1


# --- report hooks ------------------------------------------------------------------------------------------------
def _synthetic_run(tmp_path: Path) -> Path:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
    from report_helpers import make_run

    return make_run(tmp_path / "reports", transports=("rest",), intervals=1)


@pytest.mark.parametrize(("expression", "exit_code"), [("turns >= 1", 0), ("turns >= 1000000", 3)])
def test_on_summary_writes_the_report_and_sets_exit_code_3_on_a_broken_gate(
    tmp_path: Path, expression: str, exit_code: int
) -> None:
    run_dir = _synthetic_run(tmp_path)
    environment = SimpleNamespace(process_exit_code=0)
    report_hooks.state.thresholds = parse_thresholds([expression])
    report_hooks.state.html = False
    try:
        report_hooks.on_summary(environment, {}, run_dir)
    finally:
        report_hooks.state.thresholds = []
    assert environment.process_exit_code == exit_code
    assert (run_dir / "turns.csv").exists() and (run_dir / "thresholds.json").exists()


# --- options -----------------------------------------------------------------------------------------------------
def test_every_option_has_its_field_and_one_default() -> None:
    names = [o.name for o in options.OPTIONS]
    assert sorted(names) == sorted(f for f in options.LoadgenOptions.__dataclass_fields__)
    parser = configargparse.ArgumentParser()
    options.add_arguments(parser)
    from_parser = options.LoadgenOptions.from_parsed(parser.parse_args([]))
    assert from_parser == options.LoadgenOptions.from_parsed(argparse.Namespace())
    assert (from_parser.transport, from_parser.dialogue_paths, from_parser.history, from_parser.stream) == (
        "rest", ("scenarios/dialogues",), HistoryMode.CLIENT, True,
    )  # fmt: skip
    assert (from_parser.model, from_parser.turn_timeout, from_parser.connect_timeout, from_parser.locale) == (
        "loadgen-sim", 60.0, 10.0, "en_US",
    )  # fmt: skip
    assert (from_parser.interval_s, from_parser.reports_dir, from_parser.run_id, from_parser.html) == (
        5.0, "reports", None, True,
    )  # fmt: skip
    assert (from_parser.thresholds, from_parser.thresholds_files, from_parser.max_tokens) == ([], [], None)


def test_environment_variables_and_repeatable_thresholds_files(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = configargparse.ArgumentParser()
    options.add_arguments(parser)
    assert {o.flag: o.env_var for o in options.OPTIONS}["--think-min"] == "LOADGEN_THINK_MIN"
    monkeypatch.setenv("LOADGEN_THINK_MAX", "2.5")
    monkeypatch.setenv("LOADGEN_NO_STREAM", "true")
    monkeypatch.setenv("LOADGEN_THRESHOLDS_FILE", "gates.yaml")
    o = options.LoadgenOptions.from_parsed(parser.parse_args(["--threshold", "errors < 1%"]))
    assert (o.think_max, o.stream, o.thresholds, o.thresholds_files) == (2.5, False, ["errors < 1%"], ["gates.yaml"])
    monkeypatch.setenv("LOADGEN_THRESHOLDS_FILE", "[a.yaml, b.yaml]")
    assert options.LoadgenOptions.from_parsed(parser.parse_args([])).thresholds_files == ["a.yaml", "b.yaml"]
    given = parser.parse_args(["--thresholds-file", "c.yaml", "--thresholds-file", "d.yaml"])  # the command line wins
    assert options.LoadgenOptions.from_parsed(given).thresholds_files == ["c.yaml", "d.yaml"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--think-min", "-1"], "--think-min -1.0: must be >= 0 seconds"),
        (["--think-min", "3", "--think-max", "2"], "--think-min 3.0 is larger than --think-max 2.0"),
        (["--turn-timeout", "0"], "--turn-timeout 0.0: must be > 0 seconds"),
        (["--max-tokens", "5000"], "--max-tokens 5000: must be between 1 and 4096"),
        (["--dialogues", " , "], "--dialogues is empty: give dialogue files or folders, comma-separated"),
        (["--embedded-server-args", "'--fixed"], "--embedded-server-args: cannot split No closing quotation"),
        (["--run-id", "a b"], "--run-id 'a b': use letters, digits, '.', '_' and '-' only"),
        (
            ["--slo", "ttft.p99 > 1s"],
            "--slo 'ttft.p99 > 1s': an SLO is an upper bound: use < or <=; e.g. "
            "'ttft.p99 < 500ms' or 'rest.turn2.e2e.p95 <= 2s'",
        ),
    ],
)
def test_bad_options_are_one_config_error_naming_the_option(argv: list[str], message: str) -> None:
    parser = configargparse.ArgumentParser()
    options.add_arguments(parser)
    with pytest.raises(ConfigError) as bad:
        options.LoadgenOptions.from_parsed(parser.parse_args(argv))
    assert str(bad.value) == message


def test_think_overrides_and_request_settings(tmp_path: Path) -> None:
    from loadgen.dialogues import ThinkTime

    o = options.LoadgenOptions.from_parsed(_parsed(tmp_path, "--max-tokens", "9", "--model", "m", "--no-stream"))
    assert o.think_range(ThinkTime(1.0, 3.0)) == (0.0, 0.0)
    partial = options.LoadgenOptions.from_parsed(argparse.Namespace(think_min=2.0))
    assert partial.think_range(ThinkTime(1.0, 3.0)) == (2.0, 3.0)
    assert partial.think_range(ThinkTime(1.0, 1.5)) == (2.0, 2.0)
    settings = o.request_settings()
    assert (settings.max_tokens, settings.model, settings.stream, settings.history) == (
        9,
        "m",
        False,
        HistoryMode.CLIENT,
    )


def test_a_forked_worker_drops_the_masters_json_file_and_a_standalone_one_keeps_it() -> None:
    forked = argparse.Namespace(processes=2, json_file="out/stats")
    options.drop_inherited_json_file(forked)
    assert forked.json_file is None
    standalone = argparse.Namespace(processes=None, json_file="out/stats")
    options.drop_inherited_json_file(standalone)
    assert standalone.json_file == "out/stats"


# --- the run's edges: cut-off turns, lost sessions, outages, resets -------------------------------------------
class StalledTransport(ScriptedTransport):
    """Answers its first turn, then never answers (the run ends while it waits)."""

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        if self.requests:
            gevent.sleep(60)
        return super()._send(request, turn_timeout)


def test_a_turn_in_flight_when_the_user_is_stopped_is_counted_as_cut_off(env: Environment, tmp_path: Path) -> None:
    rt = runtime.build_runtime(_parsed(tmp_path), "local", env.events.request)
    user = ChatUser(env)
    user.transport = StalledTransport()
    running = gevent.spawn(user.converse)
    gevent.sleep(0.05)
    running.kill()  # what Locust's stop does to a user greenlet
    assert _counter(rt, Count.TURNS) == 1 and _locust(env, 2) == (0, 0)  # the second turn never ended ...
    assert rt.pending.counts[SeriesKey.series("rest").with_metric(Count.CUT_OFF)] == 1  # ... it is counted


class ForgettingServer(ScriptedTransport):
    """Server history mode: keeps the history, but starts a new session at the sends in ``lose_at``."""

    def __init__(self, lose_at: tuple[int, ...]) -> None:
        super().__init__()
        self.lose_at = lose_at

    def _send(self, request: ChatRequest, turn_timeout: float) -> Reply:
        reply = super()._send(request, turn_timeout)
        # the server said it did not know the session (``Reply.session_new``)
        reply.session_new = len(self.requests) in self.lose_at
        return reply


def test_a_lost_session_is_a_session_failure_in_locust_and_ours(env: Environment, tmp_path: Path) -> None:
    seen: list[Any] = []
    env.events.request.add_listener(lambda exception=None, **_: seen.append(exception))
    rt = _converse(env, tmp_path, ForgettingServer(lose_at=(4,)), "--history", "server")
    assert [type(e).__name__ for e in seen] == ["NoneType"] * 3 + ["SessionLost", "NoneType"]
    assert str(seen[3]) == "session lost: the server did not know the session"
    assert _locust(env, 4) == (1, 1)
    kinds = (Count.FAILURES, Count.SESSION_FAILURES, Count.RETENTION_FAILURES)
    assert [_counter(rt, kind) for kind in kinds] == [1, 1, 0]
    assert _counter(rt, FailureReason("SessionLost", "session lost: the server did not know the session"), turn=4) == 1
    # turn 5 probes the name planted at turn 1: lost with the session, so skipped rather than failed
    assert _counter(rt, Count.RETENTION_CHECKED, turn=5) == 0


def test_each_turn_goes_to_the_outage_recorder_with_wall_clock_times(env: Environment, tmp_path: Path) -> None:
    before = time.time()
    rt = _converse(env, tmp_path, ScriptedTransport(fail_at=(2, 3)))
    wire = rt.take_outages_wire()
    failures, comebacks = wire["t"]["rest"]["f"], wire["t"]["rest"]["c"]
    assert len(failures) == 2 and len(comebacks) == 1  # turns 2 and 3 failed, turn 4 was the user's comeback
    user = failures[0][2]
    assert user.startswith(f"{os.getpid()}.") and {f[2] for f in failures} == {comebacks[0][2]} == {user}
    assert all(before <= sent <= done <= time.time() for sent, done, _ in failures + comebacks)
    assert comebacks[0][1] - comebacks[0][0] == pytest.approx(0.002, abs=1e-4)  # done - sent: the reply's e2e


def test_a_flush_moves_figures_and_outages_into_the_aggregator_and_a_reset_drops_them(
    env: Environment, tmp_path: Path
) -> None:
    rt = _converse(env, tmp_path, ScriptedTransport(fail_at=(2,)))
    assert rt.aggregator is not None
    updates = rt.aggregator.updates
    rt.flush_local()
    assert rt.aggregator.total.counts[SeriesKey.series("rest").with_metric(Count.TURNS)] == 5
    assert [o.failed_turns for o in rt.aggregator.outages.outages()["rest"]] == [1]
    plugin_events._on_reset_stats()  # the web UI's reset, as Locust fires it
    assert rt.aggregator.total.is_empty() and rt.aggregator.outages.outages() == {}
    assert rt.aggregator.updates > updates + 1  # the live tab sees the change


# --- warm-up, cool-down and SLOs --------------------------------------------------------------------------------
def _turns(batch: Any) -> float:
    return float(batch.counter(SeriesKey.series("rest").with_metric(Count.TURNS)))


def test_warm_up_turns_reach_the_intervals_but_not_the_totals(env: Environment, tmp_path: Path) -> None:
    parsed = _parsed(tmp_path, "--warmup", "1m")
    rt = runtime.build_runtime(parsed, "local", env.events.request)
    assert rt.aggregator is not None
    rt.begin_test(parsed, time.time())  # the test starts now
    user = ChatUser(env)
    user.transport = ScriptedTransport()
    user.converse()  # 5 turns, all in the first minute
    assert env.stats.total.num_requests == 5  # Locust's own statistics are its own
    assert (_turns(rt.pending), _turns(rt.unsteady)) == (0, 5)
    rt.flush_local()
    rt.aggregator.maybe_roll(force=True)
    assert _turns(rt.aggregator.total) == 0
    assert sum(_turns(load_batch(i.wire, "interval")) for i in rt.aggregator.intervals) == 5
    # the same options, the test having started two minutes ago: the turns are steady
    rt.begin_test(parsed, time.time() - 120.0)
    user.converse()
    rt.flush_local()
    assert _turns(rt.aggregator.total) == 5


def test_a_worker_sorts_its_turns_with_the_masters_options_and_ships_the_mark(env: Environment, tmp_path: Path) -> None:
    worker = runtime.build_runtime(_parsed(tmp_path), "worker", env.events.request)  # its own options: none
    masters = _parsed(tmp_path, "--cooldown", "30s", "--slo", "ttft.p99 < 1s")
    masters.run_time = None  # Locust clears a worker's run time; the master's comes as loadgen_run_s
    setattr(masters, options.RUN_S_ATTR, 40)
    window = worker.begin_test(masters, time.time() - 20.0)  # 20 s in: the cool-down began at 10 s
    assert (window.end, window.warnings()) == (window.started_at + 10.0, [])
    user = ChatUser(env)
    user.transport = ScriptedTransport()
    user.converse()
    data: dict[str, Any] = {}
    distributed.ship_to_master(SimpleNamespace(state="running"))("w1", data)
    assert data[distributed.UNSTEADY_FIELD] is not None
    runtime.reset_runtime()
    master = runtime.build_runtime(_parsed(tmp_path), "master", env.events.request)
    assert master.aggregator is not None
    distributed.merge_from_worker("w1", data)
    master.aggregator.maybe_roll(force=True)
    assert _turns(master.aggregator.total) == 0
    [interval] = master.aggregator.intervals
    shipped = load_batch(interval.wire, "interval")
    assert _turns(shipped) == 5
    # the master's --slo reached the worker: every turn (TTFT 1 ms) met it
    assert shipped.counter(SeriesKey.series("rest").with_metric(Count.SLO_MET)) == 5


def test_warm_up_and_cool_down_must_leave_some_of_the_run_time(tmp_path: Path) -> None:
    parsed = _parsed(tmp_path, "--warmup", "30s", "--cooldown", "30s")
    parsed.run_time = 60
    with pytest.raises(ConfigError) as bad:
        options.LoadgenOptions.from_parsed(parsed)
    assert (
        str(bad.value)
        == "--warmup 30s + --cooldown 30s leave nothing of the run time (60s): shorten them or give a longer -t"
    )
    parsed.run_time = 61
    assert options.LoadgenOptions.from_parsed(parsed).cooldown_s == 30.0


def _logged_turns(env: Environment, tmp_path: Path, transport: ScriptedTransport, *args: str) -> list[dict[str, Any]]:
    import json

    from loadgen.report.turnlog import TurnLog

    rt = runtime.build_runtime(_parsed(tmp_path, *args), "local", env.events.request)
    log = TurnLog(tmp_path / "turns.jsonl")
    rt.turn_listeners.add(log)
    user = ChatUser(env)
    user.transport = transport
    user.converse()
    log.close()
    return [json.loads(line) for line in (tmp_path / "turns.jsonl").read_text().splitlines()]


def test_the_turn_log_keeps_the_forgotten_values_that_reasons_leave_out(env: Environment, tmp_path: Path) -> None:
    lines = _logged_turns(env, tmp_path, ScriptedTransport(forget_at=(4,)))
    assert [line["verdict"] for line in lines] == ["ok", "ok", "ok", "retention_failure", "ok"]
    assert lines[3]["error"] == "RetentionFailure: plan turn 4 forgot code (planted at turn 2)"
    assert lines[3]["retention"]["reason"] == "plan turn 4 forgot code='QX-7781' planted at turn 2"


def test_the_turn_log_says_when_a_session_was_lost(env: Environment, tmp_path: Path) -> None:
    lines = _logged_turns(env, tmp_path, ForgettingServer(lose_at=(3,)), "--history", "server")
    assert [line["verdict"] for line in lines] == ["ok", "ok", "session_lost", "ok", "ok"]
    assert lines[2]["error"] == "SessionLost: session lost: the server did not know the session"
    # what was planted before the loss is gone with the session: the later probes are skipped, not failed
    assert [line["retention"]["checked"] for line in lines[3:]] == [0, 0]


def test_a_checkpoint_under_way_when_the_test_stops_never_overwrites_the_complete_folder(
    env: Environment, tmp_path: Path
) -> None:
    rt = _converse(env, tmp_path, ScriptedTransport())
    rt.aggregator = RunAggregator()
    folder = RunFolder(str(tmp_path / "reports"), "run", 5.0)
    folder.begin(rt, time.time())
    environment = SimpleNamespace(runner=SimpleNamespace(target_user_count=1, user_count=1))
    checkpoint = gevent.spawn(folder.write, environment, rt, final=False)
    gevent.sleep(0)  # the checkpoint is under way, at one of its pauses
    assert not checkpoint.ready()
    folder.stop(time.time())
    folder.active = False  # the test stops: its last write
    assert folder.write(environment, rt, final=True)["run"]["complete"]
    checkpoint.join()
    written = json.loads((folder.run_dir / "summary.json").read_text())
    assert written["run"]["complete"] and written["transports"]["rest"]["count"] == 5
    folder.close()
