"""Sizes in bytes as options take them: ``4194304``, ``4MiB``, ``512KiB``, ``10MB``, ``1G``.

Binary suffixes (KiB, MiB, GiB; K, M, G and k alone read as binary too) and decimal ones (kB, MB, GB); case does not
matter except for the ``i``-less single letters, which are all binary. :func:`byte_size` is an argparse type;
:func:`format_bytes` writes a size back the short way.
"""

from __future__ import annotations

import argparse
import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_FACTORS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}


def byte_size(text: str) -> int:
    """An argparse type: a whole number of bytes, at least 1, with an optional unit (see the module)."""
    match = _SIZE.match(str(text))
    factor = _FACTORS.get(match.group(2).lower()) if match else None
    if match is None or factor is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write e.g. 4194304, 4MiB, 512KiB or 10MB")
    value = int(float(match.group(1)) * factor)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text!r}")
    return value


def format_bytes(value: int) -> str:
    """``4194304`` -> ``"4MiB"``; a size that is no whole number of KiB stays in bytes."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)


__all__ = ["byte_size", "format_bytes"]
