"""The kit's pieces: a target's URLs and transports, how a check's outcome is told, and ``python -m loadgen.testing``
(one line for bad input, skips where the service's timing is unknown, the exit code)."""

from __future__ import annotations

import pytest

from loadgen.errors import ConfigError
from loadgen.server.app import run_in_thread
from loadgen.server.config import ServerConfig
from loadgen.testing import CHECKS, CheckSkipped, ContractFailure, ContractTarget, check_name, run_check
from loadgen.testing.__main__ import main
from loadgen.testing.target import with_port
from loadgen.transports.rest import RestTransport


def test_with_port_keeps_everything_but_host_and_port() -> None:
    assert with_port("amqp://guest:pw@broker:5672/vh?queue=q", 9) == "amqp://guest:pw@127.0.0.1:9/vh?queue=q"
    assert with_port("http://example.com/prefix", 9) == "http://127.0.0.1:9/prefix"


def test_a_target_makes_its_transport() -> None:
    target = ContractTarget(RestTransport, "http://127.0.0.1:1", refused_url="http://127.0.0.1:2", api_key="sk-zz9")
    assert target.spec == "loadgen.transports.rest:RestTransport"
    assert target.refused() == "http://127.0.0.1:2"
    assert "sk-zz9" not in repr(target)
    transport = target.make(timeout_s=3.0)
    try:
        assert isinstance(transport, RestTransport)
        assert (transport.config.timeout_s, transport.config.api_key) == (3.0, "sk-zz9")
    finally:
        transport.close()
    assert ContractTarget("rest", "http://h:1").refused().startswith("http://127.0.0.1:")


def _skips(target: ContractTarget) -> None:
    raise CheckSkipped("nothing to check")


def _fails(target: ContractTarget) -> None:
    raise ContractFailure("broken")


def _bad_input(target: ContractTarget) -> None:
    raise ConfigError("no such transport")


def test_the_outcome_of_a_check() -> None:
    target = ContractTarget("rest", "http://127.0.0.1:1")
    outcomes = [(r.outcome, r.message) for r in (run_check(c, target) for c in (_skips, _fails, _bad_input))]
    assert outcomes == [("skip", "nothing to check"), ("fail", "broken"), ("fail", "no such transport")]
    assert [check_name(c) for c in CHECKS] == [
        "streamed_reply", "whole_reply", "fixed_ttft", "client_history", "server_history", "refused_connection",
        "turn_timeout", "server_error", "secrets_scrubbed", "cut_short", "under_gevent",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--transport", "bogus"], "loadgen.testing: --transport 'bogus': unknown transport"),
        (["--transport", "rest", "--skip", "nope"], "loadgen.testing: --skip: no check named nope"),
        (["--transport", "rest", "--history", "both"], "loadgen.testing: --history 'both': use client, server"),
        (["--transport", "rest", "--api-key-env", "LOADGEN_TEST_UNSET_ZZ"], "loadgen.testing: --api-key-env"),
        (["--transport", "fake:Thing"], "loadgen.testing: --transport fake:Thing: no module named 'fake'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1


def test_against_a_host_of_unknown_timing_the_timing_checks_skip(capsys: pytest.CaptureFixture[str]) -> None:
    with run_in_thread(ServerConfig(rest_port=0)) as server:
        code = main(["--transport", "rest", "--host", server.urls["rest"], "--skip", "under_gevent"])
    out = capsys.readouterr().out
    assert code == 0, out
    skipped = sorted(line.split()[1] for line in out.splitlines() if line.startswith("SKIP"))
    assert skipped == ["cut_short", "fixed_ttft", "turn_timeout"]
    assert "10 of 10 checks passed or skipped, 0 failed" in out


def test_a_failing_check_makes_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with run_in_thread(ServerConfig(rest_port=0)) as server:
        args = ["--transport", "tests.testing.broken:LastMessageOnly", "--host", server.urls["rest"]]
        code = main([*args, "--skip", "under_gevent,fixed_ttft,turn_timeout,cut_short"])
    out = capsys.readouterr().out
    assert code == 1
    assert [line.split()[1] for line in out.splitlines() if line.startswith("FAIL")] == ["client_history"]
