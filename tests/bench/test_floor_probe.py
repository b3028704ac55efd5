"""`loadgen bench floor`: its arguments (no processes), its figures' arithmetic, and one short real run."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from loadgen.bench import cli, floor_probe
from loadgen.bench.floor_probe import FloorResult, check_args, parse_transports, problem, quantile
from loadgen.errors import ConfigError
from tests.conftest import REPO_ROOT


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return cli.resolve_defaults(parser.parse_args(list(argv)))


def test_floor_mode_has_its_own_defaults_and_the_others_keep_theirs() -> None:
    floor = _parse("floor")
    assert (floor.users, floor.seconds, floor.max_tokens, floor.transports) == (10, 20, 20, "rest,grpc,amqp")
    rest = _parse("rest")
    assert (rest.users, rest.seconds, rest.max_tokens) == (20, 15, 64)
    given = _parse("floor", "-u", "3", "-t", "5", "--max-tokens", "8", "--transports", "grpc")
    assert (given.users, given.seconds, given.max_tokens, given.transports) == (3, 5, 8, "grpc")


def test_transports_are_parsed_in_order_without_repeats() -> None:
    assert parse_transports("amqp, rest,amqp") == ("amqp", "rest")
    with pytest.raises(ConfigError, match=r"--transports 'rest,mqtt': mqtt is not a transport.*rest, grpc, amqp"):
        parse_transports("rest,mqtt")
    with pytest.raises(ConfigError, match="nothing is not a transport"):
        parse_transports(" , ")


@pytest.mark.parametrize(
    ("sizes", "says"),
    [((0, 20, 20), "-u/--users 0"), ((10, 1, 20), "-t/--seconds 1"), ((10, 20, 1), "--max-tokens 1")],
)
def test_bad_sizes_are_refused(sizes: tuple[int, int, int], says: str) -> None:
    check_args(10, 20, 20)
    with pytest.raises(ConfigError, match=re.escape(says)):
        check_args(*sizes)


def test_bad_arguments_stop_before_any_server_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_server(*_: object) -> None:
        raise AssertionError("a server was started")

    monkeypatch.setattr(cli, "_server", no_server)
    assert cli.run(_parse("floor", "--transports", "rest,smtp")) == 2
    assert cli.run(_parse("floor", "-u", "0")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("loadgen bench floor: --transports 'rest,smtp': smtp is not a transport")
    assert err[1].startswith("loadgen bench floor: -u/--users 0")


def test_quantiles_and_added_ttft() -> None:
    samples = [50.0 + i / 10 for i in range(100)]  # 50.0 .. 59.9
    assert quantile(samples, 0.5) == 54.9 and quantile(samples, 0.99) == 59.8 and quantile([7.0], 0.99) == 7.0
    assert quantile([], 0.5) != quantile([], 0.5)  # NaN
    ours = {"p50": 55.1, "p99": 61.0, "count": 40}
    result = FloorResult("rest", samples, 0, ours, 0)
    assert result.added_p50_ms == pytest.approx(0.2) and result.met
    late = FloorResult("rest", samples, 0, {**ours, "p50": 55.3}, 0)
    assert late.added_p50_ms == pytest.approx(0.4) and not late.met
    assert late.row() == "| rest | 54.90 | 59.80 | 100 | 55.30 | 61.00 | 40 | **+0.40** | not met |"


def test_a_transport_that_measured_nothing_says_why() -> None:
    assert problem({"ttft_ms": [51.0]}, {"p50": 52.0, "count": 3}) is None
    said = problem({"ttft_ms": [], "failures": 4, "error": "exit 1: refused"}, {"p50": 52.0, "count": 3})
    assert said == "the floor timed no turn (4 failed): exit 1: refused"
    assert problem({"ttft_ms": [51.0]}, {"p50": None, "count": 0}) == (
        "the ConversationUser run recorded no TTFT after its warm-up"
    )
    assert problem({"ttft_ms": [51.0]}, None) is not None


@pytest.mark.e2e
def test_floor_probe_runs_both_clients_against_one_server() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadgen", "bench", "floor", "--transports", "rest", "-t", "3"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| rest |")]
    cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
    floor50, floor99, floor_n, ours50, ours99, ours_n, added = (float(c) for c in cells[1:8])
    # the server's promise is a floor for both clients; the added figure is their difference
    assert floor_probe.FIXED_TTFT_MS - 0.5 <= floor50 <= floor99 and floor_n >= 3
    assert floor_probe.FIXED_TTFT_MS - 0.5 <= ours50 <= ours99 and ours_n >= 3
    assert added == pytest.approx(ours50 - floor50, abs=0.011)
    assert cells[8] in ("met", "not met")
