"""``loadgen adapters check FILE|NAME...`` and ``loadgen adapters list``.

``check`` prints ``ok: ollama (rest, POST /api/chat, ndjson)`` per adapter and exits 0, or prints every problem
(``FILE:LINE: field `...`: ...``, one per line, on stderr) and exits 2. ``list`` names the shipped profiles.
"""

from __future__ import annotations

import argparse
import sys

from loadgen.adapters.loader import AdapterError, load_adapter, shipped_profiles
from loadgen.errors import ConfigError

EXIT_OK = 0
EXIT_PROBLEMS = 2


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="adapters_action", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="validate adapter files; every problem is named by file, line and field",
        description="Validate adapter files (YAML) or shipped profiles by name. Exit 0 if all are valid, 2 otherwise.",
    )
    check.add_argument("adapters", nargs="+", metavar="FILE", help="adapter files, or names of shipped profiles")
    check.set_defaults(_adapters_action=_check)
    listing = sub.add_parser("list", help="list the shipped adapter profiles", description="List the shipped profiles.")
    listing.set_defaults(_adapters_action=_list)


def run(args: argparse.Namespace) -> int:
    code: int = args._adapters_action(args)
    return code


def _check(args: argparse.Namespace) -> int:
    count = 0
    for ref in args.adapters:
        try:
            adapter = load_adapter(ref)
        except AdapterError as exc:
            for problem in exc.problems:
                print(problem.format(), file=sys.stderr)
            count += len(exc.problems)
            continue
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            count += 1
            continue
        print(f"ok: {adapter.describe()}")
    if count:
        print(f"{count} problem{'s' if count != 1 else ''} in adapter files", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    profiles = shipped_profiles()
    if not profiles:
        print("no shipped adapter profiles found (they live in scenarios/adapters/)", file=sys.stderr)
        return EXIT_PROBLEMS
    for name, path in profiles.items():
        print(f"{name}\t{path}")
    return EXIT_OK
