"""The steady window (loadgen.metrics.steady) held to exact values: the run block's times rounded to the
millisecond, and the cool-down warning: its whole text, when it is given and when not."""

from __future__ import annotations

import pytest

from loadgen.metrics.steady import SteadyWindow

NOT_APPLIED = (
    "--cooldown {}s was not applied: the run has no planned end (give -t/--run-time); "
    "turns up to the end are in the figures"
)


def test_the_run_block_rounds_its_times_to_the_millisecond() -> None:
    w = SteadyWindow(1000.123456, warmup_s=0.5, cooldown_s=5.0, run_s=60.0)
    assert w.start == pytest.approx(1000.623456) and w.end == pytest.approx(1055.123456)
    assert w.run_block(1030.62381) == {  # a checkpoint while the run goes
        "warmup_s": 0.5,
        "cooldown_s": 5.0,
        "steady": {"start": 1000.623, "end": 1030.624, "duration_s": 30.0},
    }
    assert w.run_block(1030.6241234)["steady"] == {"start": 1000.623, "end": 1030.624, "duration_s": 30.001}
    assert w.run_block(2000.0)["steady"] == {"start": 1000.623, "end": 1055.123, "duration_s": 54.5}
    assert w.run_block(1000.0)["steady"] == {"start": 1000.0, "end": 1000.0, "duration_s": 0.0}


def test_the_cool_down_warning_names_the_cool_down_asked_for() -> None:
    assert SteadyWindow(1000.0, cooldown_s=5.0).warnings() == [NOT_APPLIED.format("5")]
    assert SteadyWindow(1000.0, cooldown_s=0.5).warnings() == [NOT_APPLIED.format("0.5")]
    assert SteadyWindow(1000.0, cooldown_s=90.0, warmup_s=3.0).warnings() == [NOT_APPLIED.format("90")]


@pytest.mark.parametrize(
    ("cooldown_s", "run_s"),
    [(0.0, None), (0.0, 60.0), (5.0, 60.0), (0.5, 60.0)],
)
def test_no_warning_without_a_cool_down_or_with_a_planned_end(cooldown_s: float, run_s: float | None) -> None:
    assert SteadyWindow(1000.0, cooldown_s=cooldown_s, run_s=run_s).warnings() == []
