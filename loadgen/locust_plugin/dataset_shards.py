"""``--dataset`` in distributed mode: each worker replays its own part of the dataset, not the whole of it.

Every process opens the dataset (read through once, so a bad line stops the run in every process before load
starts) and, alone, hands out all of its conversations. In distributed mode (``--processes``, ``--master`` and
``--worker``) the master sends each worker its shard as the test starts, before the spawn messages
(:data:`MESSAGE`: ``{"index", "count"}``, workers in the order of their ids): worker ``i`` of ``n`` then replays
the conversations whose number ``k`` has ``k % n == i`` (:meth:`~loadgen.datasets.feed.ConversationFeed.reshard`),
so the workers together replay each conversation once per cycle, as one process would, and a server's prefix
cache sees no conversation from several workers at once. A dataset with fewer usable conversations than workers
is not split (each worker replays it whole, with a warning); a worker that joins a running test keeps the whole
dataset.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from locust import events

from loadgen.datasets import DatasetError, Shard, split_over
from loadgen.datasets.replay import DatasetConversationFactory
from loadgen.locust_plugin import events as plugin_events
from loadgen.locust_plugin.runtime import LoadgenRuntime, get_runtime

logger = logging.getLogger("loadgen")

#: The master's message to each worker: its shard of the dataset, ``{"index", "count"}``.
MESSAGE = "loadgen_dataset_shard"


def _factory(rt: LoadgenRuntime) -> DatasetConversationFactory | None:
    factory = rt.factory
    return factory if isinstance(factory, DatasetConversationFactory) else None


# --- set-up (init, no greenlet switch) --------------------------------------------------------------------------
def _setup(environment: Any, rt: LoadgenRuntime, role: str, web_ui: Any) -> None:
    runner = getattr(environment, "runner", None)
    if role == "worker" and runner is not None and _factory(rt) is not None:
        runner.register_message(MESSAGE, _on_shard)


def _on_shard(environment: Any = None, msg: Any = None, **_: Any) -> None:
    """A worker: its shard, before the test's spawn message."""
    factory = _factory(get_runtime())
    if factory is None:
        return
    try:
        factory.feed.reshard(Shard(**msg.data))
    except DatasetError as exc:  # the master checked the count; a dataset that changed since is said, not fatal
        logger.warning("--dataset: keeping the whole dataset in this worker: %s", exc)


# --- the test's start (the master) ------------------------------------------------------------------------------
def _on_test_start(environment: Any, **_: Any) -> None:
    try:
        rt = get_runtime()
    except RuntimeError:
        return
    factory = _factory(rt)
    if rt.role != "master" or factory is None:
        return
    from locust.runners import STATE_MISSING

    runner = environment.runner
    workers = [c.id for c in runner.clients.all if c.state != STATE_MISSING]
    plans = split_over(workers, factory.feed.usable)
    if len(workers) > 1 and not plans:
        logger.warning(
            "--dataset: %d usable conversation(s) for %d workers: each worker replays the whole dataset",
            factory.feed.usable,
            len(workers),
        )
    for client_id, plan in plans.items():
        runner.send_message(MESSAGE, asdict(plan), client_id)


plugin_events.setup_hooks.append(_setup)
_hooks: Any = events
_hooks.test_start.add_listener(_on_test_start)
