"""Reports: pure functions from a finished run folder (``reports/<run-id>/``) to HTML, CSV, hlog and console.

Everything here reads the saved run data (``summary.json``, ``histograms.json``, ``intervals.json``) and
can run offline (``loadgen report RUN_DIR``); the Locust hooks in :mod:`loadgen.locust_plugin.report_hooks`
call the same functions at the end of a run. See ``SCHEMA.md`` next to this file for the formats.

Series are read by their typed names (:mod:`loadgen.metrics.keys`), never by parsing key strings here. The
threshold options (``--threshold``, ``--thresholds-file``) are one definition
(:data:`loadgen.report.thresholds.THRESHOLD_OPTIONS`) shared by a Locust run, ``loadgen report`` and
``loadgen compare``.
"""

from __future__ import annotations

#: Exit code of a run (headless Locust, ``loadgen compare``) that broke a threshold. Locust itself uses
#: 1 for failed requests and 2 for unhandled errors.
EXIT_THRESHOLD_VIOLATED = 3
#: Exit code for bad input to our own commands (missing run folder, bad threshold expression).
EXIT_BAD_INPUT = 2

__all__ = ["EXIT_BAD_INPUT", "EXIT_THRESHOLD_VIOLATED"]
