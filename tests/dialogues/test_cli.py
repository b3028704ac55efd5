"""``loadgen dialogues check``: exit 0 with a summary, or 2 with every problem."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import loadgen.cli
from tests.conftest import REPO_ROOT

SHIPPED = REPO_ROOT / "scenarios" / "dialogues"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _only_the_dialogues_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # loadgen.cli imports every sub-command's module; some import Locust, whose gevent monkey-patching must not
    # happen inside the test process. The dispatch itself is the same.
    monkeypatch.setattr(loadgen.cli, "COMMANDS", {"dialogues": loadgen.cli.COMMANDS["dialogues"]})


def main(argv: Sequence[str]) -> int:
    return loadgen.cli.main(list(argv))


def test_check_good_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dialogues", "check", str(SHIPPED / "travel_booking.yaml"), str(SHIPPED / "coding_help.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 2 dialogues (")
    assert "travel_booking: 6 turns" in out and "coding_help: 6 turns" in out


def test_check_defaults_to_the_shipped_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dialogues", "check"]) == 0
    out = capsys.readouterr().out
    assert "tech_support: 7 turns" in out


def test_check_bad_files(capsys: pytest.CaptureFixture[str]) -> None:
    bad = DATA / "probe_never_planted.yaml"
    assert main(["dialogues", "check", str(SHIPPED), str(bad), str(DATA / "weight_zero.yaml")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert f"{bad}:11: field `turns[3].probe`: `code` is never planted before turn 4" in captured.err
    assert any(line.startswith(f"{DATA / 'weight_zero.yaml'}:2: field `weight`") for line in lines)
    assert lines[-1] == "2 problems in dialogue scripts"


def test_check_locale(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dialogues", "check", "--locale", "de_DE", str(SHIPPED)]) == 0
    assert main(["dialogues", "check", "--locale", "zz_ZZ", str(SHIPPED)]) == 2
    assert "unknown Faker locale 'zz_ZZ'" in capsys.readouterr().err


def test_check_needs_an_action() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["dialogues"])
    assert caught.value.code == 2


def test_console_entry_point_in_a_fresh_process() -> None:
    good = subprocess.run(
        [sys.executable, "-m", "loadgen", "dialogues", "check", str(SHIPPED)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("ok: ")
    bad = subprocess.run(
        [sys.executable, "-m", "loadgen", "dialogues", "check", str(DATA / "weight_zero.yaml")],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "weight_zero.yaml:2: field `weight`" in bad.stderr
