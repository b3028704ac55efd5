"""``loadgen dialogues check FILE...``: validate dialogue scripts before a run.

Prints ``ok: N dialogues (name: T turns, ...)`` and exits 0, or prints every problem (``FILE:LINE: field
`...`: ...``, one per line, on stderr) and exits 2.
"""

from __future__ import annotations

import argparse
import sys

from loadgen.dialogues.conversation import ConversationFactory
from loadgen.dialogues.fakers import DEFAULT_LOCALE
from loadgen.dialogues.loader import load_dialogues
from loadgen.dialogues.model import DialogueError
from loadgen.errors import ConfigError

EXIT_OK = 0
EXIT_PROBLEMS = 2


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dialogues_action", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="validate dialogue files; every problem is named by file, line and field",
        description="Validate dialogue scripts (YAML). Exit 0 when all are valid, 2 otherwise.",
    )
    check.add_argument(
        "paths",
        nargs="*",
        metavar="FILE",
        help="dialogue files or folders of *.yaml/*.yml (default: scenarios/dialogues)",
    )
    check.add_argument(
        "--locale",
        default=DEFAULT_LOCALE,
        help=f"Faker locale the slot providers must exist in (default {DEFAULT_LOCALE})",
    )
    check.set_defaults(_dialogues_action=_check)


def run(args: argparse.Namespace) -> int:
    code: int = args._dialogues_action(args)
    return code


def _check(args: argparse.Namespace) -> int:
    from loadgen.dialogues import default_dialogues_dir

    paths = list(args.paths) or [str(default_dialogues_dir())]
    try:
        dialogues = load_dialogues(paths, locale=args.locale)
        ConversationFactory(dialogues, seed=0, locale=args.locale)  # providers exist for this locale
    except DialogueError as exc:
        for problem in exc.problems:
            print(problem.format(), file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} in dialogue scripts", file=sys.stderr)
        return EXIT_PROBLEMS
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    listing = ", ".join(f"{d.name}: {len(d.turns)} turns" for d in dialogues)
    noun = "dialogue" if len(dialogues) == 1 else "dialogues"
    print(f"ok: {len(dialogues)} {noun} ({listing})")
    return EXIT_OK
