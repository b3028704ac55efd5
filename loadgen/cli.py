"""The ``loadgen`` console script: a thin dispatcher to one module per sub-command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from loadgen.errors import ConfigError

#: sub-command -> (module exposing ``configure(parser)`` and ``run(args) -> int``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("loadgen.server.main", "run the reference model server (REST, gRPC, AMQP fronts)"),
    "dialogues": ("loadgen.dialogues.cli", "validate dialogue scripts: loadgen dialogues check FILE..."),
    "dataset": ("loadgen.datasets.cli", "check conversation datasets (JSONL): loadgen dataset check FILE..."),
    "adapters": ("loadgen.adapters.cli", "check adapter files for your own chat API: loadgen adapters check FILE..."),
    "bench": ("loadgen.bench.cli", "benchmarks: ConversationUser vs a bare Locust loop, per transport"),
    "report": ("loadgen.report.cli", "regenerate a run's report (HTML, CSV, hlog) offline from its folder"),
    "compare": (
        "loadgen.report.compare_cli",
        "per-turn deltas between two runs; non-zero exit past thresholds",
    ),
    "transports": ("loadgen.transports.list_cli", "list the transports --transport can name: built in and plug-ins"),
    "compare-transports": (
        "loadgen.report.transports_cli",
        "run the same load over each transport in interleaved rounds and write one comparison with intervals",
    ),
    "sweep": ("loadgen.load.sweep_cli", "measured steps of rising load per transport: the knee within the SLOs"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """All sub-commands are listed; only ``command`` (the one being run) is imported and configured, so a
    `loadgen report` never imports Locust (which monkey-patches the process with gevent)."""
    parser = argparse.ArgumentParser(prog="loadgen", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text, add_help=name == command)
        if name != command:
            continue
        module = importlib.import_module(module_name)
        module.configure(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(args_list)
    try:
        code: int = args._run(args)
    except ConfigError as exc:  # bad input a command found late: one line, exit 2, as argparse does
        print(f"loadgen {args.command}: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
