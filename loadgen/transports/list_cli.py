"""``loadgen transports``: the transports ``--transport`` can name here (built in and installed plug-ins).

One row each: name, the distribution that provides it, its version, the URL schemes of its targets and its
``module:Class``; a plug-in that cannot be loaded (or whose name is taken) shows why instead, and the exit code is
then 1. ``--json`` prints the same as a JSON list. Loading a plug-in imports it (and its libraries).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from loadgen.transports.base import API_VERSION
from loadgen.transports.plugins import ENTRY_POINT_GROUP, TransportInfo, describe

HEADER = ("NAME", "FROM", "VERSION", "SCHEMES", "MODULE")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        f"A plug-in registers under the entry point group {ENTRY_POINT_GROUP!r}; any other transport class is "
        "named --transport package.module:Class. docs/TRANSPORT_API.md describes the interface."
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def table(rows: list[TransportInfo]) -> str:
    """The rows as aligned text, then the API version line."""
    lines = [HEADER]
    for row in rows:
        schemes = ", ".join(row.schemes) if row.error is None else f"cannot load: {row.error}"
        lines.append((row.name, row.source, row.version, schemes, row.module))
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER) - 1)]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1]
           for line in lines]  # fmt: skip
    out.append(f"transport API version {API_VERSION}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    rows = describe()
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=1))
    else:
        print(table(rows))
    return 1 if any(row.error is not None for row in rows) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadgen transports", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
