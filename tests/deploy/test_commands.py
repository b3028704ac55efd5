"""Every command the deployments run parses with the real parsers: Locust's (with the options the locustfile
registers, thresholds included) and ``loadgen serve``'s. A misspelt option in a manifest fails here, not in
the cluster at 2 a.m. Importing the locustfile imports Locust (gevent's monkey-patching), so the parsing runs
in a Python of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.conftest import REPO_ROOT
from tests.deploy.deploy_files import K8S, VARIANTS, compose_argv, compose_file, container_argv, kustomize

PARSE = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("locustfile", "scenarios/multiturn.py")
spec.loader.exec_module(importlib.util.module_from_spec(spec))  # registers the chat-loadgen options
from locust.argument_parser import get_parser
from loadgen.cli import build_parser
from loadgen.report.thresholds import collect_thresholds
from loadgen.server.main import build_config

out = []
for argv in json.loads(sys.argv[1]):
    if argv[0] == "locust":
        ns = get_parser().parse_args(argv[1:])
        out.append({
            "role": "master" if ns.master else "worker" if ns.worker else "local",
            "locustfile": ns.locustfile, "dialogues": ns.dialogues, "transport": ns.transport,
            "thresholds": len(collect_thresholds(ns.threshold, ns.thresholds_file)),
            "run_time_s": ns.run_time,
            "users": ns.num_users, "expect_workers": ns.expect_workers, "host": ns.host,
        })
    else:
        assert argv[:2] == ["loadgen", "serve"], argv
        config = build_config(build_parser("serve").parse_args(argv[1:]))
        out.append({"role": "server", "host": config.host, "rest_port": config.rest_port})
print(json.dumps(out))
"""


def _commands() -> list[list[str]]:
    argvs = [container_argv(r) for v in VARIANTS for r in kustomize(K8S / v) if "template" in r.get("spec", {})]
    argvs += [compose_argv(service) for service in compose_file()["services"].values()]
    return argvs


def _run_parser(argvs: list[list[str]]) -> subprocess.CompletedProcess[str]:
    # the parsers also read LOCUST_*/LOADGEN_* variables: leave out any the caller's shell has set
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "LOADGEN_"))}
    return subprocess.run(
        [sys.executable, "-c", PARSE, json.dumps(argvs)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _parse(argvs: list[list[str]]) -> list[dict[str, Any]]:
    done = _run_parser(argvs)
    assert done.returncode == 0, done.stderr[-3000:]
    parsed: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed


def test_every_deployment_command_parses() -> None:
    argvs = _commands()
    parsed = _parse(argvs)
    assert len(parsed) == len(argvs)
    roles = [p["role"] for p in parsed]
    assert roles.count("master") == 3 and roles.count("worker") == 3 and roles.count("server") == 2, roles
    for p in parsed:
        if p["role"] == "server":
            assert (p["host"], p["rest_port"]) == ("0.0.0.0", 8000)  # reachable from the other pods
            continue
        assert p["locustfile"] == "scenarios/multiturn.py"
        assert p["dialogues"] == "/etc/chat-loadgen/dialogues"
        assert p["transport"] == "rest"
    soaks = [p for p in parsed if p["role"] == "master" and p["run_time_s"]]
    assert len(soaks) == 2  # the Job and compose's master
    for soak in soaks:
        assert soak["run_time_s"] == 8 * 3600 and soak["thresholds"] == 4 and soak["expect_workers"] == 4
        assert soak["users"] == 1600 and soak["host"] == "http://reference-server:8000"


def test_a_misspelt_option_fails_to_parse() -> None:
    argv = [*compose_argv(compose_file()["services"]["chat-loadgen-worker"]), "--dialoges", "x"]
    done = _run_parser([argv])
    assert done.returncode == 2 and "--dialoges" in done.stderr, done.stderr[-3000:]
