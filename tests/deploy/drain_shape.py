"""A load shape for the master of test_master_workers.py (``-f scenarios/multiturn.py,tests/deploy/drain_shape.py``):
``-u`` users at ``-r`` per second, none for the last DRAIN_S seconds of ``-t``, then the end of the test.

Why: at the end of ``-t`` a headless Locust master (2.47) sends its workers "quit" and waits a fixed 0.5 s for
their last reports before it stops listening. A worker that takes longer to stop its users (a busy machine)
delivers its last report, up to 3 s of turns (Locust's report interval), too late: neither Locust's own
statistics nor the merged histograms count them, while the worker's turn log does (measured: 96 logged turns,
90 merged). With no users during the last DRAIN_S (longer than the report interval), every turn a worker ran
has reached the master before the quit, so the master's figures must equal the workers' turn logs exactly.
"""

from __future__ import annotations

from locust import LoadTestShape

DRAIN_S = 5.0
STOP_RATE = 100.0  # users stopped per second when the drain starts: all at once


class DrainBeforeQuit(LoadTestShape):
    use_common_options = True  # -u, -r and -t are read here

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options
        elapsed = self.get_run_time()
        if elapsed >= options.run_time:
            return None
        if elapsed >= options.run_time - DRAIN_S:
            return 0, STOP_RATE
        return int(options.num_users), float(options.spawn_rate)
