"""Locust integration: options, the ConversationUser, metrics shipping and the end-of-run report.

Importing this package registers its event listeners; a locustfile only needs::

    from loadgen.locust_plugin import ConversationUser

    class Chat(ConversationUser):
        pass

- ``options``: every chat-loadgen option in one table (:data:`~loadgen.locust_plugin.options.OPTIONS`), which
  registers them on Locust's parser and builds :class:`~loadgen.locust_plugin.options.LoadgenOptions`.
- ``user``: :class:`ConversationUser`, the Locust glue only: a transport per user, think time, one
  ``runtime.report(...)`` per turn; the conversation (:mod:`loadgen.dialogues.conversation`) builds each request
  and keeps the history.
- ``runtime``: the process's state; ``report`` fires one Locust request event per turn and records the same turn
  in our histograms in one greenlet step; the turn listeners (e.g. ``--turn-log``) run after it.
- ``listeners``: listener lists with Locust's isolation (one that raises does not stop the others).
- ``events``: start-up checks (bad options and targets exit 2 with one line), the embedded server, the run's
  life (test start and stop, Ctrl-C, SIGTERM); ``persistence``: the run folder, checkpointed as the run goes and
  written whole when a test stops; ``distributed``: what workers ship, what the master merges, and the master's
  wait for its workers' final reports (a lost worker is a warning and exit code 4); ``report_hooks``: report
  files, CI gates and the web UI tab, as summary listeners.
- ``open_model``: ``--arrival-rate``: a dispatcher per process hands arrivals to idle users (conversation slots),
  the master splits the rate over its workers, a LoadTestShape's ``arrival_rate`` steps it.
- ``dataset_shards``: ``--dataset`` in distributed mode: the master gives each worker its own part of the dataset.
- ``embedded``: the reference server started when no ``--host`` is given.

With Locust's ``--otel`` each turn is a span (:mod:`loadgen.telemetry.locust_tracing`).
"""

from loadgen.locust_plugin import dataset_shards as _dataset_shards  # noqa: F401 - a dataset split over workers
from loadgen.locust_plugin import events as _events  # noqa: F401 - registers listeners (before the modules that import it)
from loadgen.locust_plugin import open_model as _open_model  # noqa: F401 - the open model's listeners
from loadgen.locust_plugin import report_hooks as _report_hooks  # noqa: F401 - reports, CI gates, web UI tab
from loadgen.locust_plugin.user import ConversationUser
from loadgen.telemetry import locust_tracing as _locust_tracing  # noqa: F401 - --otel: spans per turn

__all__ = ["ConversationUser"]
