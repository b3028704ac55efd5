"""The open model in Locust (``--arrival-rate``): arrivals per process, rate steps, the ``arrivals`` summary block.

With ``--arrival-rate R`` the users Locust spawns are conversation *slots*: each waits for an arrival, runs one
whole dialogue from it (think times included) and waits again (:class:`~loadgen.locust_plugin.user.ConversationUser`).
The users' count (``-u``, or ``--max-in-flight N``, which sets it) is the cap on live conversations; in a headless
run without a shape, every slot is spawned at once unless ``-r`` says otherwise (an idle slot costs nothing).

- Each load-generating process makes a :class:`~loadgen.load.dispatcher.Dispatcher` at ``test_start`` (its slots
  wait in it as they are spawned), starts it at its first ``spawning_complete`` (no arrival is dropped for want of
  a slot not yet spawned) and stops it at ``test_stopping``. Its :class:`~loadgen.load.arrivals.ArrivalClock` runs
  at its share of R: a single process has the whole rate; in distributed mode (``--processes``,
  ``--master``/``--worker``) the master sends each worker its plan (:data:`MESSAGE`: the run's rate, the arrival
  kind, the number of shares and the worker's index) as the test starts, before the spawn messages, so the
  workers' arrivals add up to R. A worker that joins a running test waits at rate 0 until its plugin's first report
  reaches the master, which then sends every worker its new share. A worker the master loses (its heartbeats
  stop, or it quits) has its share handed on: within :data:`WORKER_WATCH_S` of Locust marking it missing, the
  workers left are sent the rate split over them. With ``--seed`` the gaps are reproducible.
- Rate steps: a ``LoadTestShape`` whose ``tick()`` sets an ``arrival_rate`` attribute drives the rate: the master
  (or the single process) reads it every :data:`SHAPE_POLL_S` and hands a new value to every dispatcher. Its
  user count is the cap, as ``-u`` is. In the web UI the rate is ``--arrival-rate``'s; the users field is the cap.
- The counts (:class:`~loadgen.metrics.keys.Count` ``arrivals*``) are recorded with the turns, so they merge
  across workers and appear per interval in ``intervals.jsonl``; summary.json's ``arrivals`` block and the console
  line ``arrivals: requested R/s, achieved X/s, dropped D (cap N)`` are built from them.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gevent
from locust import events

from loadgen.errors import ConfigError
from loadgen.load.arrivals import ArrivalClock, ArrivalKind
from loadgen.load.dispatcher import Dispatcher
from loadgen.locust_plugin import events as plugin_events
from loadgen.locust_plugin.distributed import WIRE_FIELD
from loadgen.locust_plugin.runtime import LoadgenRuntime, get_runtime
from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import ALL, Count, SeriesKey

logger = logging.getLogger("loadgen")

#: The master's message to each worker: ``{"rate", "kind", "shares", "index"}`` (:class:`Plan`).
MESSAGE = "loadgen_arrivals"
#: How often the rate of a LoadTestShape's ``arrival_rate`` is read.
SHAPE_POLL_S = 0.2
#: How often the master looks for a lost worker whose share of the rate must go to the others.
WORKER_WATCH_S = 0.5


@dataclass(frozen=True)
class Plan:
    """What one process's dispatcher runs: the whole run's rate, split over ``shares`` processes."""

    rate: float
    kind: str
    shares: int = 1
    index: int = 0


class _State:
    plan: Plan | None = None  # this process's plan (master: the run's, with shares 1)
    dispatcher: Dispatcher | None = None
    shape_poller: gevent.Greenlet | None = None
    worker_watch: gevent.Greenlet | None = None  # master: hands a lost worker's share on
    rate_steps: list[tuple[float, float]] = []  # master/local: (time.time(), run rate) from the test's start
    planned: set[str] = set()  # master: the workers sent the current split of the rate


state = _State()


def current() -> Dispatcher | None:
    """This process's dispatcher in the open model (once a test has stopped, that test's, stopped: its slots wait
    there until they are stopped too); None in the closed model."""
    return state.dispatcher


def reset() -> None:
    """Forget everything (tests)."""
    stop_dispatching()
    state.plan = None
    state.rate_steps = []


# --- set-up (init, no greenlet switch) --------------------------------------------------------------------------
def _setup(environment: Any, rt: LoadgenRuntime, role: str, web_ui: Any) -> None:
    runner = getattr(environment, "runner", None)
    if role == "worker":
        if runner is not None:
            runner.register_message(MESSAGE, _on_plan)
        return
    o = rt.options
    if o.arrival_rate is None:
        return
    state.plan = Plan(o.arrival_rate, o.arrival.value)
    parsed = environment.parsed_options
    if getattr(environment, "shape_class", None) is not None:
        return  # the shape's user count is the cap
    if o.max_in_flight is not None:
        parsed.num_users = o.max_in_flight
    if getattr(parsed, "headless", False):
        if parsed.num_users is None:
            raise ConfigError(f"--arrival-rate {o.arrival_rate:g}: give the cap on live conversations, -u N or "
                              "--max-in-flight N")  # fmt: skip
        if getattr(parsed, "spawn_rate", None) is None:
            parsed.spawn_rate = parsed.num_users  # idle slots cost nothing: all of them at once


def _on_plan(environment: Any = None, msg: Any = None, **_: Any) -> None:
    """A worker: the master's plan, before the test's spawn message (or a new rate while it runs)."""
    plan = Plan(**msg.data)
    state.plan = plan
    if state.dispatcher is not None:
        state.dispatcher.set_rate(plan.rate, shares=plan.shares)


# --- the test's life ----------------------------------------------------------------------------------------------
def _on_test_start(environment: Any, **_: Any) -> None:
    try:
        rt = get_runtime()
    except RuntimeError:
        return
    plan = state.plan
    if plan is None and rt.role == "worker":
        plan = _plan_to_come(environment)
    if plan is None:
        return
    if rt.role != "worker":
        rate = _shape_rate(environment)
        if rate is not None:
            plan = state.plan = Plan(rate, plan.kind)
        state.rate_steps = [(time.time(), plan.rate)]
        folder = plugin_events.state.folder
        if folder is not None and arrivals_source not in folder.sources:
            folder.sources.append(arrivals_source)
        if getattr(environment, "shape_class", None) is not None:
            state.shape_poller = gevent.spawn(_poll_shape, environment)
    if rt.role == "master":
        _send_plans(environment.runner, plan)
        if state.worker_watch is not None:
            state.worker_watch.kill(block=False)
        state.worker_watch = gevent.spawn(_watch_workers, environment.runner)
    else:
        prepare_dispatching(rt, plan)  # the slots wait in it; it starts once they are spawned


def _plan_to_come(environment: Any) -> Plan | None:
    """A worker that joined a running open-model test (its slots came before the master could reach its plugin):
    its slots wait in a dispatcher at rate 0 until the master's plan comes, never chatting unpaced. None in the
    closed model (the master's options, which came with the spawn message, have no arrival rate)."""
    parsed = getattr(environment, "parsed_options", None)
    if getattr(parsed, "arrival_rate", None) is None:
        return None
    return Plan(0.0, str(getattr(parsed, "arrival", None) or ArrivalKind.POISSON.value))


def _on_spawning_complete(**_: Any) -> None:
    """The slots are there (a single process, or a worker): dispatch arrivals from now on. Later spawns (a shape's
    new user count, the web UI's) change the slots, not the dispatcher."""
    if state.dispatcher is not None:
        state.dispatcher.start()


def prepare_dispatching(rt: LoadgenRuntime, plan: Plan) -> Dispatcher:
    """This process's dispatcher for ``plan``, not yet started (:meth:`Dispatcher.start`); its counts go into
    ``rt``'s pending figures."""
    if state.dispatcher is not None:
        state.dispatcher.stop()
    transport = rt.options.transport

    def record(counter: Count, amount: int) -> None:
        rt.pending.counts[SeriesKey(transport, ALL, 0, str(counter))] += amount

    seed = rt.options.seed
    rng = random.Random(f"{seed}:arrivals:{plan.index}") if seed is not None else None  # --seed: the same gaps
    clock = ArrivalClock(plan.rate, ArrivalKind(plan.kind), start=time.perf_counter(), shares=plan.shares,
                         index=plan.index, rng=rng)  # fmt: skip
    dispatcher = state.dispatcher = Dispatcher(clock, record)
    return dispatcher


def stop_dispatching(*, forget: bool = True) -> None:
    """No more arrivals (the live time so far is recorded). Not ``forget``: the stopped dispatcher stays this
    process's, so a slot whose conversation ends while the users are being stopped waits in it (and is stopped
    there) instead of starting a closed-model chat."""
    if state.shape_poller is not None:
        state.shape_poller.kill(block=False)
        state.shape_poller = None
    if state.worker_watch is not None:
        state.worker_watch.kill(block=False)
        state.worker_watch = None
    if state.dispatcher is not None:
        state.dispatcher.stop()
        if forget:
            state.dispatcher = None


def _on_test_stopping(**_: Any) -> None:
    stop_dispatching(forget=False)


def _on_worker_report(client_id: str = "", data: Any = None, **_: Any) -> None:
    """The master: the first report of a worker that joined a running open-model test (its first with the plugin's
    figures: the worker's plugin is up and can take a plan, which a message sent when it connected could not).
    Every worker gets its new share, so the workers' arrivals still add up to the run's rate."""
    if state.plan is None or client_id in state.planned or not isinstance(data, dict) or WIRE_FIELD not in data:
        return
    runner = getattr(plugin_events.state.environment, "runner", None)
    if runner is None or not hasattr(runner, "clients"):
        return
    from locust.runners import STATE_RUNNING, STATE_SPAWNING

    if runner.state in (STATE_RUNNING, STATE_SPAWNING):
        _send_plans(runner, state.plan, joining=client_id)


def _live_workers(runner: Any) -> set[str]:
    from locust.runners import STATE_MISSING

    return {c.id for c in runner.clients.all if c.state != STATE_MISSING}


def _send_plans(runner: Any, plan: Plan, joining: str | None = None, *, only: set[str] | None = None) -> None:
    """The master: each worker its share of ``plan`` (``joining``: a worker not in the runner's clients yet;
    ``only``: these workers, not every live one)."""
    live = _live_workers(runner) if only is None else only
    workers = sorted(live | ({joining} if joining else set()))
    slots = getattr(runner, "target_user_count", None)
    if slots is not None and slots < len(workers):
        logger.warning("%d conversation slot(s) (-u) for %d workers: a worker with none drops all its arrivals",
                       slots, len(workers))  # fmt: skip
    for index, client_id in enumerate(workers):
        share = Plan(plan.rate, plan.kind, len(workers), index)
        runner.send_message(MESSAGE, asdict(share), client_id)
    state.planned = set(workers)


def _watch_workers(runner: Any) -> None:
    """The master, while the test runs: a worker that had a share and is gone (missing, or quit) has its share
    handed on, the rate split again over the planned workers left. A worker that joins (or comes back) gets its
    share at its first report, as :func:`_on_worker_report` says; it is not planned before its plugin is up."""
    from locust.runners import STATE_RUNNING, STATE_SPAWNING

    while True:
        gevent.sleep(WORKER_WATCH_S)
        plan = state.plan
        if plan is None or runner.state not in (STATE_RUNNING, STATE_SPAWNING):
            continue
        left = state.planned & _live_workers(runner)
        lost = state.planned - left
        if lost:
            logger.warning("arrival rate: worker(s) %s lost; %g conversations/s split over the %d left",
                           ", ".join(sorted(lost)), plan.rate, len(left))  # fmt: skip
            _send_plans(runner, plan, only=left)


def _shape_rate(environment: Any) -> float | None:
    shape = getattr(environment, "shape_class", None)
    rate = getattr(shape, "arrival_rate", None)
    return None if rate is None else max(0.0, float(rate))


def set_rate(environment: Any, rate: float) -> None:
    """A new rate for the whole run (master or single process): to every dispatcher."""
    if state.plan is None or rate == state.plan.rate:
        return
    state.plan = Plan(rate, state.plan.kind)
    state.rate_steps.append((time.time(), rate))
    logger.info("arrival rate: %g conversations/s", rate)
    if get_runtime().role == "master":
        _send_plans(environment.runner, state.plan)
    elif state.dispatcher is not None:
        state.dispatcher.set_rate(rate)


def _poll_shape(environment: Any) -> None:
    while True:
        rate = _shape_rate(environment)
        if rate is not None:
            set_rate(environment, rate)
        gevent.sleep(SHAPE_POLL_S)


# --- what the run folder and the console say -------------------------------------------------------------------
def requested_per_s(steps: list[tuple[float, float]], start: float, end: float) -> float | None:
    """The mean requested rate over ``[start, end]`` given its steps ``(since, rate)``; the first step's rate is the
    one in effect at ``start``."""
    if not steps or end <= start:
        return steps[-1][1] if steps else None
    total = 0.0
    for i, (since, rate) in enumerate(steps):
        until = steps[i + 1][0] if i + 1 < len(steps) else end
        total += rate * max(0.0, min(until, end) - (start if i == 0 else max(since, start)))
    return total / (end - start)


def requested_rate(batch: MetricsBatch, steps: list[tuple[float, float]], started_at: float) -> float | None:
    """The run's mean requested rate: the arrivals its dispatchers were asked for (each process's rate integrated
    over its own dispatching time, ``arrivals.requested_milli``) over the run's dispatching time, so rate steps
    count as long as they were in force where arrivals were dispatched. Without that count (figures of an older
    version), the steps' mean from ``started_at``."""
    if steps and all(rate == steps[0][1] for _, rate in steps):
        return steps[0][1]  # one rate all along: that rate, not its integral's rounding
    seconds = dispatch_seconds(batch)
    requested = _count(batch, Count.ARRIVALS_REQUESTED_MILLI)
    if requested and seconds > 0:
        return requested / 1000.0 / seconds
    return requested_per_s(steps, started_at, started_at + seconds)


def _count(batch: MetricsBatch, name: Count) -> int:
    """A count summed over every transport's aggregate series."""
    return sum(int(v) for k, v in batch.counts.items() if k.metric == name and k.dialogue == ALL and not k.turn)


def dispatch_seconds(batch: MetricsBatch) -> float:
    """How long arrivals were dispatched: each process's dispatching time over the number of processes sharing the
    rate meanwhile, summed (``arrivals.run_ms``): with every process from the start it is their mean time, and a
    worker that joined later adds only its share of the time since. Without that count (figures of an older
    version), the processes' dispatching time averaged over the processes."""
    run_ms = _count(batch, Count.ARRIVALS_RUN_MS)
    if run_ms:
        return run_ms / 1000.0
    dispatchers = _count(batch, Count.ARRIVALS_DISPATCHERS)
    return _count(batch, Count.ARRIVALS_DISPATCH_MS) / 1000.0 / dispatchers if dispatchers else 0.0


def arrivals_block(batch: MetricsBatch, *, kind: str, requested: float | None, cap: int | None) -> dict[str, Any]:
    """summary.json's ``arrivals``: the counts of every transport's aggregate series, rates over the time arrivals
    were dispatched (:func:`dispatch_seconds`: from the test's start to when it began to stop, so neither a
    worker's late start nor the users' graceful stop dilutes them)."""
    seconds = dispatch_seconds(batch)
    offered, started = _count(batch, Count.ARRIVALS), _count(batch, Count.ARRIVALS_STARTED)

    def per_s(value: float) -> float | None:
        return round(value / seconds, 4) if seconds > 0 else None

    live_mean = per_s(_count(batch, Count.ARRIVALS_LIVE_MS) / 1000.0)
    return {
        "mode": kind,
        "requested_per_s": None if requested is None else round(requested, 4),
        "achieved_per_s": per_s(offered),
        "started_per_s": per_s(started),
        "offered": offered,
        "started": started,
        "dropped": _count(batch, Count.ARRIVALS_DROPPED),
        "max_in_flight": cap,
        "live_max": _count(batch, Count.ARRIVALS_LIVE_MAX),
        "live_mean": None if live_mean is None else round(live_mean, 3),
        "duration_s": round(seconds, 3),
    }


def arrivals_source(started_at: float) -> tuple[dict[str, Any], list[str]]:
    """The run folder's ``arrivals`` block (a :data:`~loadgen.locust_plugin.persistence.SectionSource`)."""
    rt = get_runtime()
    if state.plan is None or rt.aggregator is None:
        return {}, []
    batch = rt.aggregator.total
    runner = getattr(plugin_events.state.environment, "runner", None)
    cap = getattr(runner, "target_user_count", None)
    requested = requested_rate(batch, state.rate_steps, started_at)
    block = arrivals_block(batch, kind=state.plan.kind, requested=requested, cap=cap)
    warnings = []
    if block["dropped"]:
        warnings.append(f"{block['dropped']} of {block['offered']} arrivals were dropped: every conversation slot "
                        f"was busy (cap {cap}: raise -u/--max-in-flight or lower --arrival-rate)")  # fmt: skip
    return {"arrivals": block}, warnings


def console_line(block: dict[str, Any]) -> str:
    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    cap = block.get("max_in_flight")
    return (
        f"arrivals: requested {rate(block.get('requested_per_s'))}/s, achieved {rate(block.get('achieved_per_s'))}/s, "
        f"dropped {block.get('dropped', 0)} (cap {'-' if cap is None else cap})"
    )


def _on_summary(environment: Any, summary: dict[str, Any], run_dir: Path) -> None:
    block = summary.get("arrivals")
    if block:
        plugin_events.say(console_line(block))


plugin_events.setup_hooks.append(_setup)
plugin_events.summary_listeners.add(_on_summary)
_hooks: Any = events
_hooks.test_start.add_listener(_on_test_start)
_hooks.spawning_complete.add_listener(_on_spawning_complete)
_hooks.test_stopping.add_listener(_on_test_stopping)
_hooks.worker_report.add_listener(_on_worker_report)
