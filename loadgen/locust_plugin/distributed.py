"""Locust's distributed mode (``--processes N``, or ``--master`` with ``--worker`` processes): what a worker ships,
what the master merges, and how the master makes sure it has every worker's last report.

- A worker's every report (Locust's ``report_to_master``, every 3 s and once more when it quits) carries its
  figures since the last one (``loadgen``: :meth:`MetricsBatch.to_wire`, then reset), its outage events
  (``loadgen_outages``), its turns of the warm-up and cool-down (``loadgen_unsteady``: for the intervals only,
  null when none) and whether its users were all stopped when the report was made (``loadgen_stopped``):
  such a report holds every turn the worker ran (a turn in flight when its user was stopped is counted as cut
  off), it is the worker's final one.
- The master merges them exactly (``worker_report``).
- The end of a run (``-t``, Ctrl-C, SIGTERM, the web UI's stop): Locust's master tells its workers to quit and
  waits a fixed 0.5 s for their last reports, so a busy worker's last seconds of turns were lost. Here the
  master's ``quit`` first sends every worker ``quit`` and waits until each has delivered a final report, or its
  heartbeat is lost, or :data:`DRAIN_MARGIN_S` past ``--stop-timeout``; after a web UI stop the run folder waits
  for the final reports the same way.
- ``workers`` in summary.json: ``{"expected": n | null, "reported": n, "lost": [id, ...]}`` (a single process:
  ``{"expected": null, "reported": 0, "lost": []}``): ``expected`` is ``--expect-workers`` (or ``--processes``) of
  a headless master; a worker is *lost* when it reported during the test but never delivered a final report
  (killed, crashed, cut off from the master). Each lost worker is a warning line, and the run exits with
  :data:`EXIT_WORKER_LOST` unless ``--allow-worker-loss`` is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent

from loadgen.locust_plugin.runtime import get_runtime

logger = logging.getLogger("loadgen")

WIRE_FIELD = "loadgen"
OUTAGES_FIELD = "loadgen_outages"
STOPPED_FIELD = "loadgen_stopped"
UNSTEADY_FIELD = "loadgen_unsteady"
#: Exit code of a run that lost a worker (unless --allow-worker-loss). Thresholds use 3, Locust 1 and 2.
EXIT_WORKER_LOST = 4
#: How much longer than --stop-timeout the master waits for its workers' final reports.
DRAIN_MARGIN_S = 10.0
_POLL_S = 0.1


class Workers:
    """Which workers reported during the test, and whether each one's last report was a final one."""

    def __init__(self) -> None:
        self.stopped: dict[str, bool] = {}  # worker id -> its last report was made with its users stopped
        self.last_report_at: dict[str, float] = {}

    def begin(self) -> None:
        self.stopped.clear()
        self.last_report_at.clear()

    def report(self, client_id: str, stopped: bool) -> None:
        self.stopped[client_id] = stopped
        self.last_report_at[client_id] = time.time()

    def expect_final(self, client_ids: list[str]) -> None:
        """These workers were told to stop: from now on only a final report counts."""
        for client_id in client_ids:
            self.stopped[client_id] = False

    def pending(self, runner: Any) -> list[str]:
        """Workers whose final report has not arrived, less those whose heartbeat the master lost."""
        from locust.runners import STATE_MISSING

        missing = {c.id for c in runner.clients.all if c.state == STATE_MISSING}
        return sorted(c for c, done in self.stopped.items() if not done and c not in missing)

    def lost(self) -> list[str]:
        return sorted(c for c, done in self.stopped.items() if not done)

    def section(self, started_at: float, expected: int | None) -> tuple[dict[str, Any], list[str]]:
        lost = self.lost()
        warnings = [
            f"worker {c} was lost: its final report never came (last report at "
            f"{self.last_report_at.get(c, started_at) - started_at:.1f} s); the turns it ran after that are missing"
            for c in lost
        ]
        workers = {"expected": expected, "reported": len(self.stopped), "lost": lost}
        return {"workers": workers, "run": {"processes": len(self.stopped)}}, warnings


workers = Workers()


def ship_to_master(runner: Any) -> Callable[..., None]:
    """The worker's ``report_to_master`` listener."""
    from locust.runners import STATE_STOPPED

    def ship(client_id: str, data: dict[str, Any]) -> None:
        # no pauses: Locust builds a worker's report (its last one too, at stop) in one go
        rt = get_runtime()
        data[WIRE_FIELD] = rt.take_pending_wire()
        data[OUTAGES_FIELD] = rt.take_outages_wire()
        data[UNSTEADY_FIELD] = rt.take_unsteady_wire()
        data[STOPPED_FIELD] = runner.state == STATE_STOPPED

    return ship


def merge_from_worker(client_id: str, data: dict[str, Any]) -> None:
    """The master's ``worker_report`` listener."""
    rt = get_runtime()
    if WIRE_FIELD not in data:
        return  # not a chat-loadgen worker (or an older one): nothing of ours to merge
    workers.report(client_id, bool(data.get(STOPPED_FIELD)))
    if rt.aggregator is None:
        return
    if data[WIRE_FIELD]:
        rt.aggregator.merge_wire(data[WIRE_FIELD])
    if data.get(UNSTEADY_FIELD):
        rt.aggregator.merge_unsteady_wire(data[UNSTEADY_FIELD])
    if data.get(OUTAGES_FIELD):
        rt.aggregator.merge_outages_wire(data[OUTAGES_FIELD])


def drain_timeout_s(environment: Any) -> float:
    return float(environment.stop_timeout or 0.0) + DRAIN_MARGIN_S


def wait_for_final_reports(runner: Any, timeout_s: float) -> list[str]:
    """Wait until every worker of the test has delivered its final report (or is lost); the ones still awaited
    when ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    pending = workers.pending(runner)
    while pending and time.monotonic() < deadline:
        gevent.sleep(_POLL_S)
        pending = workers.pending(runner)
    if pending:
        logger.warning("no final report from worker(s) %s within %.0f s", ", ".join(pending), timeout_s)
    return pending


def install_graceful_quit(environment: Any, runner: Any) -> None:
    """Make the master's ``quit`` (the end of ``-t``, Ctrl-C, SIGTERM) wait for its workers' final reports first."""
    from locust.rpc import Message
    from locust.runners import STATE_INIT, STATE_MISSING, STATE_STOPPED

    original = runner.quit
    draining: list[Any] = []  # the greenlet of the call that drains

    def quit_after_final_reports() -> None:
        # Called again meanwhile (Locust quits when its last worker quits): the first call goes on, unless it was
        # killed before it quit (a LoadTestShape's end quits from the shape's greenlet, which Locust's stop on the
        # last worker's quit kills): then this call drains and quits, or the master would never exit.
        if draining and not draining[0].dead:
            return
        draining[:] = [gevent.getcurrent()]
        if runner.state not in (STATE_INIT, STATE_STOPPED):
            told = [c.id for c in runner.clients.all if c.state != STATE_MISSING]
            workers.expect_final(told)
            runner._users_dispatcher = None  # as Locust's own stop does: a worker quitting is not a reason to rebalance
            for client_id in told:
                runner.server.send_to_client(Message("quit", None, client_id))  # type: ignore[no-untyped-call]
            wait_for_final_reports(runner, drain_timeout_s(environment))
        original()

    runner.quit = quit_after_final_reports


__all__ = [
    "DRAIN_MARGIN_S",
    "EXIT_WORKER_LOST",
    "OUTAGES_FIELD",
    "STOPPED_FIELD",
    "UNSTEADY_FIELD",
    "WIRE_FIELD",
    "Workers",
    "install_graceful_quit",
    "merge_from_worker",
    "ship_to_master",
    "wait_for_final_reports",
    "workers",
]
