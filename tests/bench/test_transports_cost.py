"""`loadgen bench transports`: its pure pieces (options, ratios, rounds with a failed arm), no processes."""

from __future__ import annotations

import argparse

import pytest

from loadgen.bench.transports_cost import (
    Results,
    cpu_us_per_turn,
    measure,
    parse_transports,
    ratio_to_baseline,
    report,
    server_args,
    server_us_per_turn,
)
from loadgen.errors import ConfigError


def _arm(**overrides: object) -> dict[str, object]:
    arm: dict[str, object] = {
        "window": True, "turns": 100, "failures": 0, "cpu_s": 0.2, "wall_s": 10.0, "server_cpu_s": 1.0,
        "whole_turns": 120, "whole_cpu_s": 0.5, "rc": 0, "tail": "TAIL",
    }  # fmt: skip
    arm.update(overrides)
    return arm


@pytest.mark.parametrize(
    ("text", "expected"),
    [("rest,grpc", ("rest", "grpc")), ("grpc", ("rest", "grpc")), ("amqp, grpc,rest", ("rest", "amqp", "grpc")),
     ("grpc,grpc,rest", ("rest", "grpc"))],
)  # fmt: skip
def test_rest_is_always_the_baseline_first(text: str, expected: tuple[str, ...]) -> None:
    assert parse_transports(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [("rest,http", "http is not a transport"), ("rest", "at least one transport to compare"), ("", "at least one")],
)
def test_bad_transport_lists_are_refused(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_transports(text)


def test_server_args_add_the_fronts_asked_for() -> None:
    assert server_args(("rest",), "amqp://x") == []
    assert server_args(("rest", "grpc"), "amqp://x") == ["--grpc-port", "0"]
    amqp = server_args(("rest", "amqp"), "amqp://guest:guest@127.0.0.1:5672/")
    assert amqp[:2] == ["--amqp-url", "amqp://guest:guest@127.0.0.1:5672/"] and amqp[2] == "--amqp-queue"
    assert amqp[3].startswith("loadgen.chat.requests.") and amqp[3] != server_args(("amqp",), "u")[3]


def test_ratio_is_cpu_per_turn_over_rests() -> None:
    rest = _arm(turns=200, cpu_s=0.34)  # 1,700 µs per turn
    grpc = _arm(turns=100, cpu_s=0.2)  # 2,000 µs per turn
    assert cpu_us_per_turn(rest) == pytest.approx(1700)
    assert ratio_to_baseline(grpc, rest) == pytest.approx(2000 / 1700)
    assert ratio_to_baseline(rest, rest) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "bad", [{"rc": -9}, {"window": False}, {"turns": 0}, {"failures": 100}, {"cpu_s": 0.0}], ids=str
)
def test_a_failed_arm_is_never_a_figure_or_a_ratio(bad: dict[str, object]) -> None:
    assert cpu_us_per_turn(_arm(**bad)) is None
    assert ratio_to_baseline(_arm(**bad), _arm()) is None
    assert ratio_to_baseline(_arm(), _arm(**bad)) is None
    assert server_us_per_turn([_arm(), _arm(**bad)]) is None


def test_server_cpu_is_spread_over_every_arms_turns() -> None:
    # the server burnt 1 s of CPU in 10 s (0.1 s/s) while the two arms made 10 + 30 turns/s: 2,500 µs per turn
    arms = [_arm(turns=100, wall_s=10.0, server_cpu_s=1.0), _arm(turns=300, wall_s=10.0, server_cpu_s=1.0)]
    assert server_us_per_turn(arms) == pytest.approx(2500)
    assert server_us_per_turn([_arm(server_cpu_s=None)]) is None


def _args(rounds: int = 2) -> argparse.Namespace:
    return argparse.Namespace(users=20, max_tokens=64, rounds=rounds, seconds=15)


def test_rounds_sum_and_each_round_has_its_ratio() -> None:
    rounds = iter([
        {"rest": _arm(turns=100, cpu_s=0.17), "grpc": _arm(turns=100, cpu_s=0.34)},
        {"rest": _arm(turns=100, cpu_s=0.17), "grpc": _arm(turns=100, cpu_s=0.17)},
    ])  # fmt: skip
    results = measure(("rest", "grpc"), 2, lambda: next(rounds))
    assert results.failures == [] and len(results.rounds) == 2
    assert results.round_ratios("grpc") == [pytest.approx(2.0), pytest.approx(1.0)]
    assert results.ratio("grpc") == pytest.approx(1.5)  # over the sums: 0.51 s / 0.34 s for 200 turns each
    lines, code = report(results, _args())
    assert code == 0
    (grpc_row,) = [line for line in lines if line.startswith("| grpc |")]
    assert "**1.50x**" in grpc_row and "2.00x, 1.00x" in grpc_row and "| 2,550 |" in grpc_row
    (rest_row,) = [line for line in lines if line.startswith("| rest |")]
    assert "**1.00x**" in rest_row


def test_a_round_with_a_failed_arm_is_run_again_then_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    good = {"rest": _arm(), "grpc": _arm(cpu_s=0.3)}
    broken = {"rest": _arm(), "grpc": _arm(turns=0)}
    rounds = iter([broken, good, broken, broken])
    results = measure(("rest", "grpc"), 2, lambda: next(rounds), tries=2)
    assert len(results.rounds) == 1  # round 1 on its second try; round 2 never
    assert len(results.failures) == 1 and "round 2 measured nothing in 2 tries: grpc: no turn" in results.failures[0]
    assert "round 1, try 1: grpc: no turn finished" in capsys.readouterr().err
    assert results.round_ratios("grpc") == [pytest.approx(1.5)]


def test_no_measured_round_prints_no_ratio_and_fails() -> None:
    rounds = iter([{"rest": _arm(rc=-9), "grpc": _arm()}] * 3)
    results = measure(("rest", "grpc"), 1, lambda: next(rounds), tries=3)
    lines, code = report(results, _args(1))
    assert code == 1
    assert not any("x**" in line for line in lines)
    assert "| grpc | - | - | - | - | - | not measured | - |" in lines
    assert "not measured" in lines[-1]


def test_a_missing_arm_counts_as_failed() -> None:
    rounds = iter([{"rest": _arm()}])
    results = measure(("rest", "grpc"), 1, lambda: next(rounds), tries=1)
    assert results.rounds == [] and results.failures
    assert isinstance(Results(("rest",)).summed("rest"), type(None))
