"""``loadgen dataset check FILE...``: what a run would replay from conversation datasets, and what is wrong with them.

Reads each file once, streamed (see :mod:`loadgen.datasets.reader`), and prints on stdout a line of counts per
file (conversations, usable, short, malformed with their line numbers), a total line for several files, then a
table of distributions over the usable conversations: user turns per conversation, and user and recorded
assistant turn lengths in characters and in tokens (``count min p50 p90 max``, nearest-rank percentiles), and
which counter counted the tokens (:mod:`loadgen.datasets.tokens`).

Malformed lines are listed on stderr as ``FILE:LINE: problem`` (the first few per file). Exit 0 when a run
would start: at least one usable conversation, and no malformed line unless ``--skip-bad`` (as a run skips
them). Otherwise exit 2 with one last line on stderr saying why.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from loadgen.datasets.model import DEFAULT_MIN_USER_TURNS
from loadgen.datasets.reader import FileCounts, iter_entries
from loadgen.datasets.stats import SUMMARY_COLUMNS, DatasetStats, Distribution
from loadgen.datasets.tokens import TokenCounter, token_counter
from loadgen.errors import ConfigError

EXIT_OK = 0
EXIT_PROBLEMS = 2
_LABEL_WIDTH = 26


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_action", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="count a dataset's usable conversations, their turn and token lengths, and its malformed lines",
        description="Check conversation datasets (JSONL, OpenAI `messages` or ShareGPT `conversations`, "
        "gzip allowed). Exit 0 when a run could use them, 2 otherwise.",
    )
    check.add_argument("paths", nargs="+", metavar="FILE", help="JSONL dataset files (.jsonl or .jsonl.gz)")
    check.add_argument(
        "--min-turns",
        type=int,
        default=DEFAULT_MIN_USER_TURNS,
        help=f"conversations with fewer user turns are skipped (default {DEFAULT_MIN_USER_TURNS})",
    )
    check.add_argument(
        "--skip-bad", action="store_true", help="malformed lines are skipped with a count (exit 0), not errors"
    )
    check.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="count tokens with this local tokenizer.json (needs the `tokenizers` package); "
        "default: estimate ~4 characters a token",
    )
    check.set_defaults(_dataset_action=_check)


def run(args: argparse.Namespace) -> int:
    code: int = args._dataset_action(args)
    return code


def _check(args: argparse.Namespace) -> int:
    if args.min_turns < 1:
        return _fail(f"--min-turns must be 1 or more, not {args.min_turns}")
    try:
        tokens = token_counter(args.tokenizer)
        counts, stats = _scan(args.paths, args.min_turns, tokens)
    except ConfigError as exc:
        return _fail(str(exc))
    for file_counts in counts:
        print(_counts_line(file_counts.path, file_counts, args.min_turns))
    if len(counts) > 1:
        print(_counts_line("total", _totals(counts), args.min_turns))
    print(_table(stats))
    print(f"tokens: {tokens.name}")
    for file_counts in counts:
        _print_problems(file_counts)
    malformed = sum(c.malformed for c in counts)
    if not any(c.usable for c in counts):
        return _fail(f"no usable conversation (none with {args.min_turns} or more user turns and well formed)")
    if malformed and not args.skip_bad:
        noun = "line" if malformed == 1 else "lines"
        return _fail(f"{malformed} malformed {noun}: fix, or skip malformed lines with --skip-bad")
    return EXIT_OK


def _scan(paths: Sequence[str], min_turns: int, tokens: TokenCounter) -> tuple[list[FileCounts], DatasetStats]:
    counts: list[FileCounts] = []
    stats = DatasetStats()
    for path in paths:
        file_counts = FileCounts(path)
        for entry in iter_entries(path, min_user_turns=min_turns, skip_bad=True, counts=file_counts):
            stats.add(entry.conversation, tokens)
        counts.append(file_counts)
    return counts, stats


def _totals(counts: Sequence[FileCounts]) -> FileCounts:
    total = FileCounts("total")
    for c in counts:
        total.conversations += c.conversations
        total.usable += c.usable
        total.short += c.short
        total.malformed += c.malformed
    return total


def _counts_line(label: str, c: FileCounts, min_turns: int) -> str:
    text = (
        f"{label}: {c.conversations} conversations: {c.usable} usable, "
        f"{c.short} short (fewer than {min_turns} user turns), {c.malformed} malformed"
    )
    if c.problems:
        more = ", ..." if c.malformed > len(c.problems) else ""
        noun = "line" if c.malformed == 1 else "lines"
        text += f" ({noun} {', '.join(str(line) for line, _ in c.problems)}{more})"
    return text


def _table(stats: DatasetStats) -> str:
    rows: list[tuple[str, Distribution]] = [
        ("user turns / conversation", stats.turns),
        ("user turn chars", stats.user_chars),
        ("user turn tokens", stats.user_tokens),
        ("assistant turn chars", stats.assistant_chars),
        ("assistant turn tokens", stats.assistant_tokens),
    ]
    lines = ["".ljust(_LABEL_WIDTH) + "".join(f"{column:>9}" for column in SUMMARY_COLUMNS)]
    for label, distribution in rows:
        lines.append(label.ljust(_LABEL_WIDTH) + "".join(f"{value:>9}" for value in distribution.summary()))
    return "\n".join(lines)


def _print_problems(counts: FileCounts) -> None:
    for line, problem in counts.problems:
        print(f"{counts.path}:{line}: {problem}", file=sys.stderr)
    if counts.malformed > len(counts.problems):
        print(f"{counts.path}: ... and {counts.malformed - len(counts.problems)} more malformed", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_PROBLEMS
