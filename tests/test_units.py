"""Sizes in bytes as options take them (loadgen.units)."""

from __future__ import annotations

import argparse

import pytest

from loadgen.units import byte_size, format_bytes


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4194304", 4194304),
        ("4MiB", 4194304),
        ("4mib", 4194304),
        ("4M", 4194304),
        ("512KiB", 524288),
        ("512k", 524288),
        ("10MB", 10_000_000),
        ("1.5GiB", 1610612736),
        ("2 kB", 2000),
        ("1b", 1),
    ],
)
def test_sizes(text: str, value: int) -> None:
    assert byte_size(text) == value


@pytest.mark.parametrize("text", ["", "MiB", "4 parsecs", "-4MiB", "0", "0.0001KiB", "4MiBs"])
def test_bad_sizes_say_what_to_write(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"not a size: write e\.g\. 4194304, 4MiB|at least 1 byte"):
        byte_size(text)


def test_format_bytes() -> None:
    assert [format_bytes(v) for v in (4194304, 268435456, 1536, 1000, 1073741824)] == [
        "4MiB",
        "256MiB",
        "1536",
        "1000",
        "1GiB",
    ]
