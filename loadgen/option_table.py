"""One table of command-line options feeds every parser that takes them, and reads back what they gave.

An :class:`Option` states a flag once: its type, its default, its environment variable, its help and its
validator. :func:`add_options` registers a table on a parser (argparse's, or Locust's configargparse one, which
also reads the environment variables); :func:`read_options` reads the parsed values back by attribute name,
validated, the table's default standing in for an option the parser never saw. A default is written in the table
only: help texts show it with ``%(default)s``.

A flag that was renamed keeps its old spelling in the table (``renamed_from``): given, it stops the command with
one line naming the new spelling (exit 2), never silently meaning something else.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from loadgen.errors import ConfigError

#: Environment variables of options are this prefix + the option's name in capitals (``LOADGEN_THINK_MIN``).
ENV_PREFIX = "LOADGEN_"

#: Checks a parsed value, given the flag it came from; returns the value to keep, raises ConfigError.
Validator = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Option:
    """One command-line option, stated once."""

    flag: str
    help: str
    default: Any = None
    #: How the parser reads the value (``int``, ``float``, a checking function); None: a switch (store_true).
    type: Callable[[str], Any] | None = str
    #: The attribute the value is read back as; empty: the flag's own name (``--think-min`` -> ``think_min``).
    attr: str = ""
    group: str = ""
    choices: tuple[str, ...] | None = None
    #: The option may be given several times; its value is then a list (the default: empty).
    repeat: bool = False
    metavar: str | None = None
    #: Also read from the environment variable ``LOADGEN_<NAME>`` (on parsers that read them).
    env: bool = True
    validate: Validator | None = None
    #: An old spelling of this flag, refused with a line naming this one.
    renamed_from: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def name(self) -> str:
        return self.attr or self.dest

    @property
    def env_var(self) -> str | None:
        return ENV_PREFIX + self.dest.upper() if self.env else None

    def argument(self, *, env_vars: bool) -> dict[str, Any]:
        """The keyword arguments of ``add_argument`` for this option."""
        kwargs: dict[str, Any] = {"help": self.help}
        if self.type is None:
            kwargs.update(action="store_true", default=bool(self.default))
        elif self.repeat:
            kwargs.update(action="append", default=list(self.default or ()), type=self.type)
        else:
            kwargs.update(default=self.default, type=self.type)
        if self.choices is not None:
            kwargs["choices"] = self.choices
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        if env_vars and self.env_var is not None:
            kwargs["env_var"] = self.env_var
        return kwargs

    def read(self, parsed: Any) -> Any:
        """This option's value in ``parsed`` (its default when absent), validated."""
        value = getattr(parsed, self.dest, None)
        if value is None:
            value = list(self.default or ()) if self.repeat else self.default
        return value if self.validate is None else self.validate(value, self.flag)


def add_options(
    parser: Any, table: Sequence[Option], groups: dict[str, str | None] | None = None, *, env_vars: bool = False
) -> None:
    """Register ``table`` on ``parser``: each option in its group (``groups``: title -> description, in order;
    an option of no listed group goes on the parser itself), renamed flags as refusals."""
    containers: dict[str, Any] = {
        title: parser.add_argument_group(title, text) for title, text in (groups or {}).items()
    }
    for option in table:
        container = containers.get(option.group, parser)
        container.add_argument(option.flag, **option.argument(env_vars=env_vars))
        if option.renamed_from is not None:
            container.add_argument(option.renamed_from, action=_renamed(option), nargs="?", help=argparse.SUPPRESS)


def read_options(parsed: Any, table: Iterable[Option]) -> dict[str, Any]:
    """Every option's value by attribute name (validated; :class:`ConfigError` names the flag)."""
    return {option.name: option.read(parsed) for option in table}


def _renamed(option: Option) -> type[argparse.Action]:
    class Renamed(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> NoReturn:
            what = option.help.split(" (default")[0]
            sys.stderr.write(f"{parser.prog}: {option.renamed_from} was renamed: use {option.flag} ({what})\n")
            sys.exit(2)

    return Renamed


# --- validators -------------------------------------------------------------------------------------------------
def at_least(low: float, *, strict: bool = False, unit: str = "") -> Validator:
    """A number >= ``low`` (``strict``: > ``low``), or None when not given."""

    def check(value: Any, flag: str) -> Any:
        if value is not None and (value <= low if strict else value < low):
            raise ConfigError(f"{flag} {value}: must be {'>' if strict else '>='} {low:g}{unit}")
        return value

    return check


def between(low: float, high: float) -> Validator:
    """A number from ``low`` to ``high``, or None when not given."""

    def check(value: Any, flag: str) -> Any:
        if value is not None and not low <= value <= high:
            raise ConfigError(f"{flag} {value}: must be between {low:g} and {high:g}")
        return value

    return check


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 for any free one."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0: any free port), got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def whole_number(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def non_negative(text: str) -> float:
    """An argparse type: a number >= 0."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """An argparse type: seconds, as a number or with a unit (``90``, ``90s``, ``30m``, ``1.5h``, ``500ms``)."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (write e.g. 90, 90s, 30m, 1h)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
