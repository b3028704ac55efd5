"""CI's rule on skips (tests/conftest.py): in CI a skip fails the run unless the test allows it; every skip is
listed at the end. Run on a small test folder with the project's own conftest, in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
TESTS = """
import pytest

def test_runs():
    pass

def test_skips():
    pytest.skip("no broker here")

@pytest.mark.allow_skip(reason="Linux only")
def test_skips_allowed():
    pytest.skip("not Linux")
"""
MODULE_SKIPPED = """
import pytest
pytest.importorskip("a_module_that_is_not_installed")

def test_never_collected():
    pass
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool, **files: str) -> pytest.RunResult:
    if ci:
        monkeypatch.setenv("CI", "1")
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    allow_skip(reason): may skip in CI\n")
    pytester.makepyfile(**files)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def test_in_ci_a_skip_fails_unless_allowed(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, True, test_a=TESTS)
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*skipped tests*", "*test_skips: no broker here [[]FAILS IN CI[]]*",
                                 "*test_skips_allowed: not Linux [[]allowed[]]*"])  # fmt: skip


def test_in_ci_a_module_skipped_at_collection_fails(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, True, test_b=MODULE_SKIPPED, test_c="def test_runs():\n    pass\n")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*test_b.py: could not import 'a_module_that_is_not_installed'*FAILS IN CI*"])


def test_outside_ci_skips_stay_skips(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, False, test_a=TESTS, test_b=MODULE_SKIPPED)
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_skips: no broker here [[]would fail in CI[]]*"])
