"""Fixtures of the report tests (helpers in report_helpers.py, importable from the tests)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from report_helpers import make_run, start_browser


@pytest.fixture(scope="session")
def _synthetic_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("synthetic") / "reports")


@pytest.fixture
def synthetic_run(_synthetic_source: Path, tmp_path: Path) -> Path:
    """A fresh copy per test (tests write report files into it)."""
    target = tmp_path / "reports" / _synthetic_source.name
    shutil.copytree(_synthetic_source, target)
    return target


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium through selenium (skips without it; fails in CI)."""
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()
