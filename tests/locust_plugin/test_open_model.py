"""The open model's cases (``open_model_cases.py``) run in a Python of their own: importing Locust monkey-patches
the process with gevent, which the rest of the test session must not get."""

from __future__ import annotations

from pathlib import Path

from tests.gevent_cases import run_gevent_cases

CASES = Path(__file__).with_name("open_model_cases.py")


def test_the_open_model_in_a_gevent_process(tmp_path: Path) -> None:
    run_gevent_cases(CASES, tmp_path)
