"""The plugin's unit tests (``gevent_cases.py``) run in a Python of their own: importing Locust monkey-patches the
process with gevent, which the rest of the test session must not get. Locust is imported before pytest there, as
the ``locust`` command does."""

from __future__ import annotations

from pathlib import Path

from tests.gevent_cases import run_gevent_cases

CASES = Path(__file__).with_name("gevent_cases.py")


def test_the_plugin_pieces_in_a_gevent_process(tmp_path: Path) -> None:
    run_gevent_cases(CASES, tmp_path)
