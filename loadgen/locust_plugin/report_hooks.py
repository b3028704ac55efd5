"""Report hooks for Locust runs: report files, CI gates, the per-turn JSONL log and the web UI tab.

Options (group "chat-loadgen reports", declared with the others in :mod:`loadgen.locust_plugin.options`):

- ``--threshold EXPR`` and ``--thresholds-file FILE`` (both repeatable): CI gates checked at the end of the run;
  a broken one makes the process exit with code 3 (Locust uses 1 for failed requests, 2 for errors).
  Bad expressions stop the run before any user starts (exit 2) with a message that shows the grammar.
- ``--turn-log PATH``: one JSON line per turn, written by each process that runs users (workers insert their
  pid: ``turns.<pid>.jsonl``).
- ``--no-html``: skip ``report.html`` (``turns.csv`` and the ``.hlog`` files are still written).

The web UI (master or single process) gains a **chat-loadgen** tab: the live per-turn table from the HDR
histograms (``/loadgen/turns`` JSON, ``/loadgen/turns.csv``), recomputed at most once a second, with the
generator's lag and the run's warnings. It follows Locust's own statistics: a reset (the web UI's, or
``--reset-stats``) and a new test start it from zero; each test's run folder is written when the test stops.

What these hooks print (the report's path, the CI gates' verdicts) comes after the per-turn table, at the very
end (after Locust's own final statistics).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from locust import events

from loadgen.locust_plugin import events as loadgen_events
from loadgen.locust_plugin.runtime import LoadgenRuntime, get_runtime
from loadgen.metrics.batch import MetricsBatch
from loadgen.report import EXIT_THRESHOLD_VIOLATED
from loadgen.report.files import write_reports
from loadgen.report.live import COLUMNS, LiveTable, display_rows
from loadgen.report.rundata import load_run
from loadgen.report.thresholds import Threshold, collect_thresholds, evaluate, format_results, results_json
from loadgen.report.turnlog import TurnLog

logger = logging.getLogger("loadgen.report")

TAB_KEY = "chat-loadgen"
TURNS_JSON_PATH = "/loadgen/turns"
TURNS_CSV_PATH = "/loadgen/turns.csv"
THRESHOLDS_FILE = "thresholds.json"


class _State:
    thresholds: list[Threshold] = []
    html: bool = True
    turn_log: TurnLog | None = None
    live: LiveTable | None = None
    run_dir: Path | None = None
    summary_mtime_ns: int | None = None


state = _State()


def _setup(environment: Any, rt: LoadgenRuntime, role: str, web_ui: Any) -> None:
    """A setup hook (``init``, before any greenlet switch): CI gates (a bad one is a ConfigError), the turn log
    (a worker's own ``--turn-log``, read before the master's options replace it), the web UI tab."""
    o = rt.options
    state.html = o.html
    if role != "worker":
        state.thresholds = collect_thresholds(o.thresholds, o.thresholds_files)
    if o.turn_log and role != "master":
        state.turn_log = TurnLog(o.turn_log, per_process=role == "worker")
        rt.turn_listeners.add(state.turn_log)
    if web_ui is not None and role != "worker":
        install_web_tab(web_ui)


def _on_test_stop(**_: Any) -> None:
    if state.turn_log is not None:
        state.turn_log.flush()


def _on_quit(**_: Any) -> None:
    if state.turn_log is not None:
        state.turn_log.close()
    # Ctrl-C path: the lead's quit listener may have rewritten the run folder after the last worker report
    # arrived; keep the report files in step with it.
    run_dir = state.run_dir
    if run_dir is None or state.summary_mtime_ns is None:
        return
    try:
        mtime = (run_dir / "summary.json").stat().st_mtime_ns
        if mtime != state.summary_mtime_ns:
            write_reports(run_dir, html=state.html)
    except Exception:
        logger.exception("could not refresh the report files in %s", run_dir)


def on_summary(environment: Any, summary: dict[str, Any], run_dir: Path) -> None:
    """Summary listener: write the report files, then check the thresholds (exit code 3 when broken)."""
    run_dir = Path(run_dir)
    state.run_dir = run_dir
    data = None
    try:
        data = load_run(run_dir)
        write_reports(run_dir, html=state.html, data=data)
        state.summary_mtime_ns = (run_dir / "summary.json").stat().st_mtime_ns
        loadgen_events.say(f"chat-loadgen report: {run_dir / 'report.html' if state.html else run_dir}")
    except Exception:  # a report problem must not hide the run's figures or its exit code
        logger.exception("could not write the report files in %s", run_dir)
    if not state.thresholds:
        return
    if data is None:
        loadgen_events.say("chat-loadgen thresholds: cannot check them, the run folder could not be read")
        environment.process_exit_code = EXIT_THRESHOLD_VIOLATED
        return
    results = evaluate(data, state.thresholds)
    loadgen_events.say(format_results(results))
    try:
        (run_dir / THRESHOLDS_FILE).write_text(json.dumps(results_json(results), indent=1) + "\n", encoding="utf-8")
    except OSError:
        logger.exception("could not write %s", run_dir / THRESHOLDS_FILE)
    if not all(r.passed for r in results):
        environment.process_exit_code = EXIT_THRESHOLD_VIOLATED


# explicit registration: Locust's add_listener is untyped (as a decorator it would untype these functions)
_locust_events: Any = events
loadgen_events.setup_hooks.append(_setup)
_locust_events.test_stop.add_listener(_on_test_stop)
_locust_events.quit.add_listener(_on_quit)
loadgen_events.summary_listeners.add(on_summary)


# --- web UI tab -----------------------------------------------------------------------------------------------
def _live_source() -> tuple[MetricsBatch, int] | None:
    try:
        rt = get_runtime()
    except RuntimeError:
        return None
    if rt.aggregator is None:
        return None
    if rt.role == "local":
        rt.flush_local()
    return rt.aggregator.total, rt.aggregator.updates


def _live_slo() -> bool:
    """Whether the test checks ``--slo`` objectives (the tab then shows the share of turns that met them)."""
    try:
        return get_runtime().slo is not None
    except RuntimeError:
        return False


def _live_warnings() -> list[str]:
    """What the tab shows beside the table (with the generator's lag): workers the master lost sight of."""
    out: list[str] = []
    environment = loadgen_events.state.environment
    runner = getattr(environment, "runner", None)
    if runner is not None and hasattr(runner, "clients"):
        from locust.runners import STATE_MISSING

        missing = sorted(c.id for c in runner.clients.all if c.state == STATE_MISSING)
        out.extend(
            f"worker {c} is missing (no heartbeat): its turns since its last report are not counted" for c in missing
        )
    return out


def live_table() -> LiveTable:
    if state.live is None:
        state.live = LiveTable(_live_source, warnings=_live_warnings, slo=_live_slo)
    return state.live


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([title for _, title in COLUMNS])
    for row in rows:
        writer.writerow(["" if row.get(k) is None else row.get(k) for k, _ in COLUMNS])
    return buf.getvalue()


def install_web_tab(web_ui: Any) -> None:
    """Add the chat-loadgen tab (Locust's extended tabs: template args + ``extended_stats`` in /stats/requests)."""
    from flask import Response, jsonify, request

    table = live_table()
    base_path = (getattr(web_ui.environment.parsed_options, "web_base_path", "") or "").rstrip("/")
    web_ui.template_args["extended_tabs"] = [{"title": "chat-loadgen", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": key, "title": title} for key, title in COLUMNS]}
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": f"{base_path}{TURNS_CSV_PATH}", "title": "Download chat-loadgen per-turn table (CSV)"}
    ]
    app = web_ui.app

    def loadgen_turns() -> Any:
        return jsonify(table.snapshot())

    def loadgen_turns_csv() -> Any:
        return Response(
            _csv_text(table.snapshot()["rows"]),
            mimetype="text/csv",
            headers={"Content-disposition": "attachment;filename=chat-loadgen-turns.csv"},
        )

    def extend_stats(response: Any) -> Any:
        if not request.path.endswith("/stats/requests") or response.status_code != 200 or not response.is_json:
            return response
        data = response.get_json(silent=True)
        if not isinstance(data, dict):
            return response
        data["extended_stats"] = [{"key": TAB_KEY, "data": display_rows(table.snapshot())}]
        response.set_data(json.dumps(data))
        return response

    app.add_url_rule(TURNS_JSON_PATH, "loadgen_turns", web_ui.auth_required_if_enabled(loadgen_turns))
    app.add_url_rule(TURNS_CSV_PATH, "loadgen_turns_csv", web_ui.auth_required_if_enabled(loadgen_turns_csv))
    app.after_request(extend_stats)
