"""Locust event listeners: options, start-up checks, the embedded server, metrics shipping, the run folder.

- ``init_command_line_parser``: every chat-loadgen option (:data:`loadgen.locust_plugin.options.OPTIONS`).
- ``init``: validate options (``--run-id`` included) and dialogues before any user starts (exit 2 with one line
  on bad input, before the run folder is named); start the embedded reference server when no ``--host`` is
  given (master/local only).
- workers: ``report_to_master`` ships this process's figures (HDR encoded) and resets them.
- master: ``worker_report`` merges them exactly.
- local: a greenlet merges its own figures every second.
- ``quitting`` and ``quit``: write ``reports/<run-id>/`` and print the per-turn table; nothing measured is
  lost on Ctrl-C (the folder is rewritten after the last worker report arrives). Then the
  :data:`summary_listeners` run (report files, CI gates), each isolated from the others.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust import events

from loadgen import __version__
from loadgen.errors import ConfigError
from loadgen.locust_plugin import options as opts
from loadgen.locust_plugin.embedded import EmbeddedServer, start_embedded_server
from loadgen.locust_plugin.listeners import Listeners
from loadgen.locust_plugin.runtime import LoadgenRuntime, build_runtime, get_runtime, runner_role
from loadgen.metrics.console import format_table
from loadgen.metrics.lag import LagProbe
from loadgen.metrics.rundir import new_run_id, write_run
from loadgen.transports import redact_url, transport_class

logger = logging.getLogger("loadgen")

WIRE_FIELD = "loadgen"
CHECKPOINT_S = 30.0

#: Called with (environment, summary dict, run folder) each time the run folder is written at the end.
#: Report generation and CI gates hook in here.
summary_listeners: Listeners[[Any, dict[str, Any], Path]] = Listeners("summary")


class _State:
    embedded: EmbeddedServer | None = None
    lag_probe: LagProbe | None = None
    greenlets: list[gevent.Greenlet] = []
    run_dir: Path | None = None
    run_meta: dict[str, Any] = {}
    written_updates = -1
    started_at: float | None = None
    stopped_at: float | None = None
    workers_seen: set[str] = set()
    stopping = gevent.event.Event()  # set at the end of the run: the merge and checkpoint loops return


state = _State()


def _add_options(parser: Any, **_: Any) -> None:
    opts.add_arguments(parser)


def _on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    role = runner_role(runner)
    parsed = environment.parsed_options
    if parsed is None:  # used as a library (tests building an Environment by hand)
        return
    try:
        rt = build_runtime(parsed, role, environment.events.request)
        # import the transport's libraries now: the first user's import would freeze the hub ~150 ms
        transport_class(rt.options.transport)
        if role != "worker":
            _prepare_run(environment, rt)
    except ConfigError as exc:
        if role != "worker":
            sys.stderr.write(f"chat-loadgen: {exc}\n")
        sys.exit(2)
    if role == "worker":
        opts.drop_inherited_json_file(parsed)
        environment.events.report_to_master.add_listener(_ship_to_master)
    elif role == "master":
        environment.events.worker_report.add_listener(_merge_from_worker)


def _prepare_run(environment: Any, rt: LoadgenRuntime) -> None:
    o = rt.options
    run_id = o.run_id or new_run_id(o.transport)  # validated with the options
    state.run_dir = Path(o.reports_dir) / run_id
    if not environment.host:
        server = start_embedded_server(o.transport, o.amqp_url, o.embedded_server_args)
        state.embedded = server
        environment.host = server.urls[o.transport]
        logger.info("embedded reference server for %s at %s", o.transport, redact_url(environment.host))
    state.run_meta = {
        "id": run_id,
        "target": redact_url(environment.host or ""),
        "embedded_server": state.embedded is not None,
        "transports": [o.transport],
        "history_mode": o.history.value,
        "stream": o.stream,
        "dialogues": [d.name for d in rt.dialogues],
        "seed": o.seed,
        "locale": o.locale,
        "turn_timeout_s": o.turn_timeout,
        "loadgen_version": __version__,
        "command": " ".join(_redacted_argv()),
    }


def _redacted_argv() -> list[str]:
    return [redact_url(a) if "://" in a else a for a in sys.argv]


def _on_test_start(environment: Any, **_: Any) -> None:
    rt = get_runtime()
    if state.started_at is None:
        state.started_at = time.time()
    if rt.role != "master":
        if state.lag_probe is None:
            state.lag_probe = LagProbe(rt.record_generator_lag)
        state.lag_probe.start()
    if any(not g.dead for g in state.greenlets):
        return  # a test started again from the web UI: the loops of the first start still run
    if rt.role == "local":
        state.greenlets.append(gevent.spawn(_local_merge_loop, rt))
    if rt.role != "worker":
        state.greenlets.append(gevent.spawn(_checkpoint_loop, environment, rt))


def _on_spawning_complete(**_: Any) -> None:
    # FIELD-NOTES: a full collection at thousands of users paused everything for 169-545 ms
    gc.collect()
    gc.freeze()


def _on_test_stop(environment: Any, **_: Any) -> None:
    state.stopped_at = time.time()
    if state.lag_probe is not None:
        state.lag_probe.stop()


def _local_merge_loop(rt: LoadgenRuntime) -> None:
    # stopped by state.stopping, never killed: a kill would land at a pause in the middle of a flush
    while not state.stopping.wait(timeout=1.0):
        rt.flush_local(pause=_yield)


def _checkpoint_loop(environment: Any, rt: LoadgenRuntime) -> None:
    while not state.stopping.wait(timeout=CHECKPOINT_S):
        try:
            _write(environment, rt, final=False)
        except Exception:  # a report problem must never stop the load
            logger.exception("could not write a checkpoint of the run folder")


def _yield() -> None:
    """Let the users run between groups of histograms of a flush (it would hold the hub ~5-10 ms)."""
    gevent.sleep(0)


def _ship_to_master(client_id: str, data: dict[str, Any]) -> None:
    # no pauses: Locust builds a worker's report (its last one too, at stop) in one go
    data[WIRE_FIELD] = get_runtime().take_pending_wire()


def _merge_from_worker(client_id: str, data: dict[str, Any]) -> None:
    wire = data.get(WIRE_FIELD)
    rt = get_runtime()
    state.workers_seen.add(client_id)
    if wire and rt.aggregator is not None:
        rt.aggregator.merge_wire(wire)


def _write(environment: Any, rt: LoadgenRuntime, *, final: bool) -> dict[str, Any] | None:
    if rt.aggregator is None or state.run_dir is None:
        return None
    rt.flush_local(pause=None if final else _yield)
    if final:
        rt.aggregator.maybe_roll(force=True)
    now = time.time()
    started = state.started_at or rt.aggregator.started_at
    ended = state.stopped_at or now
    runner = environment.runner
    run = dict(state.run_meta)
    run.update(
        started_at=started,
        ended_at=ended,
        duration_s=round(max(0.0, ended - started), 3),
        users=getattr(runner, "target_user_count", None) or getattr(runner, "user_count", None),
        processes=len(state.workers_seen) if rt.role == "master" else 1,
        complete=final,
    )
    summary = write_run(state.run_dir, rt.aggregator, run, pause=None if final else _yield)
    state.written_updates = rt.aggregator.updates
    return summary


def _finish(environment: Any) -> None:
    try:
        rt = get_runtime()
    except RuntimeError:
        return
    if rt.role == "worker":
        return
    # the loops end at their next wake-up; one in the middle of a flush finishes it first (the final write
    # below waits for it on the runtime's lock), so nothing recorded is lost
    state.stopping.set()
    state.greenlets.clear()
    summary = _write(environment, rt, final=True)
    run_dir = state.run_dir
    if summary is None or run_dir is None:
        return
    sys.stderr.write("\n" + format_table(summary) + "\n")
    sys.stderr.write(f"chat-loadgen run folder: {run_dir}\n")
    summary_listeners.fire(environment, summary, run_dir)


def _on_quitting(environment: Any, **_: Any) -> None:
    _finish(environment)


def _on_quit(exit_code: int, **_: Any) -> None:
    # after runner.quit(): the last worker reports may have arrived since quitting (Ctrl-C path)
    try:
        rt = get_runtime()
    except RuntimeError:
        return
    if rt.role != "worker" and rt.aggregator is not None and rt.aggregator.updates != state.written_updates:
        env = _environment_ref.get("env")
        if env is not None:
            _write(env, rt, final=True)
    if state.embedded is not None:
        state.embedded.stop()


_environment_ref: dict[str, Any] = {}


def _remember_environment(environment: Any, **_: Any) -> None:
    _environment_ref["env"] = environment


def _listen(hook: Any, listener: Any) -> None:
    hook.add_listener(listener)


_listen(events.init_command_line_parser, _add_options)
_listen(events.init, _on_init)
_listen(events.test_start, _on_test_start)
_listen(events.spawning_complete, _on_spawning_complete)
_listen(events.test_stop, _on_test_stop)
_listen(events.quitting, _on_quitting)
_listen(events.quit, _on_quit)
_listen(events.init, _remember_environment)
