"""Locust event listeners: options, start-up checks, the embedded server, the run's life, the run folder.

- ``init_command_line_parser``: every chat-loadgen option (:data:`loadgen.locust_plugin.options.OPTIONS`).
- ``init``: first, with no greenlet switch (a worker's options are overwritten by the master's when its first
  spawn message is handled, which any switch lets happen): validate options (``--run-id`` included) and
  dialogues, and run the :data:`setup_hooks` (turn log, CI gates, web UI tab). Then the steps that may switch:
  import the transport, start the embedded reference server when no ``--host`` is given (master/local only), and
  check the target (:func:`loadgen.transports.preflight`). Bad input exits 2 with one line, before any user
  starts and before the run folder is named. ``--metrics-port``: ``/metrics`` is served from here on by the
  process holding the aggregator (:mod:`loadgen.telemetry.endpoint`), until ``quit``.
- ``test_start``: the test's steady window (``--warmup``/``--cooldown``) and SLOs in every process, a run folder
  of its own (:mod:`loadgen.locust_plugin.persistence`), the lag probe, the local
  merge loop (single process: its figures into the aggregator every second, or every ``--interval`` when that
  is shorter) and the checkpoint loop.
- ``test_stop``: the folder written whole (a master first waits for its workers' final reports:
  :mod:`loadgen.locust_plugin.distributed`), then the :data:`summary_listeners` (report files, CI gates), each
  isolated from the others. A test started from the web UI is written when it stops.
- ``quitting``: a run still going is stopped first (its users' turns in flight counted as cut off), so nothing
  measured is lost on Ctrl-C or SIGTERM. ``quit``: the per-turn table and the lines that go with it are printed
  after Locust's own final statistics (what stays on screen); the embedded server stops.
- ``reset_stats`` (the web UI's reset, and ``--reset-stats`` when spawning completes): our figures restart too.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import greenlet  # type: ignore[import-untyped]
from locust import events

from loadgen import __version__
from loadgen.datasets.replay import DATASET_DIALOGUE
from loadgen.errors import ConfigError
from loadgen.locust_plugin import distributed
from loadgen.locust_plugin import options as opts
from loadgen.locust_plugin.embedded import EmbeddedServer, start_embedded_server
from loadgen.locust_plugin.listeners import Listeners
from loadgen.locust_plugin.persistence import RunFolder, faults_section, pause
from loadgen.locust_plugin.runtime import LoadgenRuntime, await_runtime, build_runtime, get_runtime, runner_role
from loadgen.metrics.console import format_table
from loadgen.metrics.lag import LagProbe
from loadgen.metrics.rundir import new_run_id
from loadgen.telemetry.endpoint import MetricsEndpoint, serve_metrics
from loadgen.transports import preflight, redact_url, transport_class

logger = logging.getLogger("loadgen")

#: Called with (environment, summary dict, run folder) each time a test's run folder is written whole.
#: Report generation and CI gates hook in here.
summary_listeners: Listeners[[Any, dict[str, Any], Path]] = Listeners("summary")
#: Called with (environment, runtime, role, web UI or None) in ``init`` before anything can switch greenlets: set
#: up what reads options (a ConfigError stops the run with exit code 2). Not isolated: a failure is the user's.
setup_hooks: list[Callable[[Any, LoadgenRuntime, str, Any], None]] = []
#: Merge period of a single process's own figures (shorter when --interval is).
LOCAL_MERGE_S = 1.0


class _State:
    embedded: EmbeddedServer | None = None
    lag_probe: LagProbe | None = None
    greenlets: list[gevent.Greenlet] = []
    folder: RunFolder | None = None
    metrics: MetricsEndpoint | None = None  # --metrics-port: /metrics of the process holding the aggregator
    environment: Any = None
    console: list[str] = []  # printed at quit, after Locust's own final statistics
    stopping = gevent.event.Event()  # set at quitting: the merge and checkpoint loops return


state = _State()


def say(line: str) -> None:
    """A line for the console at the end, after Locust's final statistics."""
    state.console.append(line)


def _add_options(parser: Any, **_: Any) -> None:
    opts.add_arguments(parser)


def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_: Any) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    role = runner_role(runner)
    parsed = environment.parsed_options
    if parsed is None:  # used as a library (tests building an Environment by hand)
        return
    state.environment = environment
    _interrupt_in_main_greenlet()
    try:
        # nothing here may switch greenlets: a worker's own options must be read before the master's replace them
        rt = build_runtime(parsed, role, environment.events.request)
        if role == "master":  # Locust clears a worker's run time: send the planned one with the master's options
            setattr(parsed, opts.RUN_S_ATTR, getattr(parsed, "run_time", None))
        for hook in setup_hooks:
            hook(environment, rt, role, web_ui)
        if role != "worker":
            state.folder = RunFolder(rt.options.reports_dir, rt.options.run_id or new_run_id(rt.options.transport),
                                     rt.options.checkpoint_s)  # fmt: skip
            if rt.options.metrics_port is not None and state.metrics is None:
                state.metrics = serve_metrics(rt.options.metrics_port, rt.options.metrics_bind, lambda: rt.aggregator,
                                              lambda: getattr(environment.runner, "user_count", None))  # fmt: skip
        _install_distributed(environment, runner, role)
        # from here on greenlets may switch: import the transport's libraries now (the first user's import would
        # freeze the hub ~150 ms), start the embedded server, check the target
        transport_class(rt.options.transport)
        if role != "worker":
            _prepare_target(environment, rt)
    except ConfigError as exc:
        if role != "worker":
            sys.stderr.write(f"chat-loadgen: {exc}\n")
        _stop_embedded()
        sys.exit(2)


def _interrupt_in_main_greenlet() -> None:
    """Ctrl-C raises KeyboardInterrupt in the main greenlet, where Locust handles it (stops, writes, exits), as
    gevent's hub does for an error it cannot handle. Left to Python, the signal lands in whatever greenlet runs at
    that moment: often a user's, mid-turn, whose traceback gevent then prints before Locust stops all the same."""
    main = greenlet.getcurrent()
    if main.parent is not None or not hasattr(signal, "SIGINT"):
        return  # not the process's main greenlet (a library use): leave signals alone

    def interrupt() -> None:
        gevent.get_hub().loop.run_callback(main.throw, KeyboardInterrupt)

    gevent.signal_handler(signal.SIGINT, interrupt)


def _install_distributed(environment: Any, runner: Any, role: str) -> None:
    if role == "worker":
        opts.drop_inherited_json_file(environment.parsed_options)
        environment.events.report_to_master.add_listener(distributed.ship_to_master(runner))
    elif role == "master":
        environment.events.worker_report.add_listener(distributed.merge_from_worker)
        distributed.install_graceful_quit(environment, runner)


def _prepare_target(environment: Any, rt: LoadgenRuntime) -> None:
    o = rt.options
    if not environment.host:
        server = start_embedded_server(o.transport, o.amqp_url, o.embedded_server_args)
        state.embedded = server
        environment.host = server.urls[o.transport]
        logger.info("embedded reference server for %s at %s", o.transport, redact_url(environment.host))
    preflight(o.transport, rt.transport_config(environment.host), timeout_s=min(5.0, o.connect_timeout))
    folder = state.folder
    assert folder is not None
    folder.meta.update(
        target=redact_url(environment.host or ""),
        embedded_server=state.embedded is not None,
        transports=[o.transport],
        history_mode=o.history.value,
        stream=o.stream,
        dialogues=[d.name for d in rt.dialogues] if o.dataset_paths is None else [DATASET_DIALOGUE],
        seed=o.seed,
        locale=o.locale,
        turn_timeout_s=o.turn_timeout,
        loadgen_version=__version__,
        command=" ".join(_redacted_argv()),
    )
    folder.sources.append(_faults)
    folder.sources.append(_workers if rt.role == "master" else _no_workers)


def _faults(started_at: float) -> tuple[dict[str, Any], list[str]]:
    events_ = state.embedded.faults() if state.embedded is not None else []
    return {"faults": faults_section(events_, started_at)}, []


def _workers(started_at: float) -> tuple[dict[str, Any], list[str]]:
    parsed = state.environment.parsed_options
    headless = bool(getattr(parsed, "headless", False) or getattr(parsed, "processes", None))
    expected = getattr(parsed, "expect_workers", None) if headless else None
    return distributed.workers.section(started_at, expected)


def _no_workers(started_at: float) -> tuple[dict[str, Any], list[str]]:
    return {"workers": {"expected": None, "reported": 0, "lost": []}}, []


def _redacted_argv() -> list[str]:
    return [redact_url(a) if "://" in a else a for a in sys.argv]


def _on_test_start(environment: Any, **_: Any) -> None:
    rt = await_runtime()  # the first listener of test_start: the plugin's others find the runtime built
    if environment.parsed_options is not None:  # the steady window and SLOs of this test (a worker: the master's)
        rt.begin_test(environment.parsed_options, time.time())
    if rt.role != "master":
        if state.lag_probe is None:
            state.lag_probe = LagProbe(rt.record_generator_lag)
        state.lag_probe.start()
    if rt.role == "worker" or state.folder is None:
        return
    rt.flush_local()  # what a test before this one left (a web UI restart) is not this test's
    distributed.workers.begin()
    state.folder.begin(rt, time.time())
    state.folder.meta["target"] = redact_url(environment.host or "")  # the web UI may have changed it
    if any(not g.dead for g in state.greenlets):
        return  # a test started again from the web UI: the loops of the first start still run
    if rt.role == "local":
        state.greenlets.append(gevent.spawn(_local_merge_loop, rt))
    state.greenlets.append(gevent.spawn(_checkpoint_loop, environment, rt))


def _on_spawning_complete(environment: Any = None, **_: Any) -> None:
    # FIELD-NOTES: a full collection at thousands of users paused everything for 169-545 ms
    gc.collect()
    gc.freeze()
    env = environment or state.environment
    if env is not None and getattr(env, "reset_stats", False):
        _on_reset_stats()  # --reset-stats: Locust resets its statistics now, and so do we


def _on_reset_stats(**_: Any) -> None:
    try:
        rt = get_runtime()
    except RuntimeError:
        return
    if rt.aggregator is not None:
        rt.flush_local()  # turns Locust has counted already are dropped with its figures
        rt.aggregator.reset_figures()


def _on_test_stop(environment: Any, **_: Any) -> None:
    if state.lag_probe is not None:
        state.lag_probe.stop()
    folder = state.folder
    if folder is None or not folder.active:
        return
    folder.stop(time.time())
    rt = get_runtime()
    if rt.role == "master":
        distributed.wait_for_final_reports(environment.runner, distributed.drain_timeout_s(environment))
    _finish_test(environment, rt)


def _finish_test(environment: Any, rt: LoadgenRuntime) -> None:
    folder = state.folder
    assert folder is not None
    folder.active = False
    summary = folder.write(environment, rt, final=True)
    if summary is None:
        return
    lost = summary.get("workers", {}).get("lost", [])
    if lost and not rt.options.allow_worker_loss:
        environment.process_exit_code = distributed.EXIT_WORKER_LOST
    try:
        state.console[:] = ["", format_table(summary)]
    except Exception:  # the table must not cost the report files or the CI gates
        logger.exception("could not format the per-turn table")
        state.console[:] = []
    cut = summary["run"].get("cut_off_turns") or 0
    if cut:
        say(f"chat-loadgen: {cut} turn(s) were in flight when the users were stopped (cut off, not in the figures)")
    say(f"chat-loadgen run folder: {folder.run_dir}")
    if lost and not rt.options.allow_worker_loss:
        say(f"chat-loadgen: {len(lost)} worker(s) lost: exit code {distributed.EXIT_WORKER_LOST} "
            "(--allow-worker-loss makes it a warning only)")  # fmt: skip
    summary_listeners.fire(environment, summary, folder.run_dir)


def _local_merge_loop(rt: LoadgenRuntime) -> None:
    # stopped by state.stopping, never killed: a kill would land at a pause in the middle of a flush
    period = min(LOCAL_MERGE_S, rt.options.interval_s)
    while not state.stopping.wait(timeout=period):
        rt.flush_local(pause=_yield)


def _checkpoint_loop(environment: Any, rt: LoadgenRuntime) -> None:
    while not state.stopping.wait(timeout=rt.options.checkpoint_s):
        folder = state.folder
        if folder is None or not folder.active:
            continue
        try:
            folder.write(environment, rt, final=False)
        except Exception:  # a report problem must never stop the load
            logger.exception("could not write a checkpoint of the run folder")


def _yield() -> None:
    """Let the users run between groups of histograms of a flush (it would hold the hub ~5-10 ms), their timers and
    sockets too (:func:`~loadgen.locust_plugin.persistence.pause`)."""
    pause()


def _on_quitting(environment: Any, **_: Any) -> None:
    try:
        rt = get_runtime()
    except RuntimeError:
        return
    if rt.role == "worker":
        return
    runner = environment.runner
    if rt.role == "local" and runner is not None:
        runner.stop()  # Ctrl-C, SIGTERM: the users' turns in flight are counted as cut off; test_stop writes
    # the loops end at their next wake-up; one in the middle of a flush finishes it first (the final write below
    # waits for it on the runtime's lock), so nothing recorded is lost
    state.stopping.set()
    state.greenlets.clear()
    folder = state.folder
    if folder is not None and folder.active:  # stopped before any test_stop (a master whose workers never came)
        folder.stop(time.time())
        _finish_test(environment, rt)
    if state.embedded is not None:
        state.embedded.stop(wait=False)  # no greenlet switch here either (see _on_quit); exit waits for it


def _on_quit(exit_code: int = 0, **_: Any) -> None:
    # Nothing here (nor in _on_quitting once a master's runner has quit) may switch greenlets: after SIGTERM,
    # Locust's shutdown runs in the signal's greenlet and has killed the runner's; a switch would let the main
    # greenlet run a second shutdown (Locust's statistics printed again, after our table). After runner.quit(): a
    # report that came after the final write is not lost.
    try:
        rt = get_runtime()
    except RuntimeError:
        rt = None
    folder = state.folder
    env = state.environment
    if rt is not None and rt.aggregator is not None and folder is not None and env is not None:
        if folder.last_summary is not None and rt.aggregator.updates != folder.written_updates:
            folder.write(env, rt, final=True)
        folder.close()
    if state.metrics is not None:
        state.metrics.close()  # no greenlet switch
    if state.console:
        sys.stderr.write("\n".join(state.console) + "\n")
        state.console.clear()


def _stop_embedded() -> None:
    if state.embedded is not None:
        state.embedded.stop()


def _listen(hook: Any, listener: Any) -> None:
    hook.add_listener(listener)


_listen(events.init_command_line_parser, _add_options)
_listen(events.init, _on_init)
_listen(events.test_start, _on_test_start)
_listen(events.spawning_complete, _on_spawning_complete)
_listen(events.test_stop, _on_test_stop)
_listen(events.reset_stats, _on_reset_stats)
_listen(events.quitting, _on_quitting)
_listen(events.quit, _on_quit)
