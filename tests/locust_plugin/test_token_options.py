"""Bad token-shape and accounting options stop the run before load starts: exit 2, one line naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.locust_plugin.test_options import _locust


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--input-tokens", "200-50"],
         "chat-loadgen: --input-tokens '200-50': expected N or N±S tokens (e.g. 200 or 200±50, also written "
         "200+-50), whole numbers with 0 <= S < N"),
        (["--output-tokens", "5000"],
         "chat-loadgen: --output-tokens '5000': asks for up to 5000 tokens; at most 4096 are allowed"),
        (["--output-tokens", "64", "--max-tokens", "32"],
         "chat-loadgen: --max-tokens and --output-tokens both set the reply length: give one of them"),
        (["--token-tolerance", "2"], "chat-loadgen: --token-tolerance 2.0: must be between 0 and 1"),
        (["--tokenizer", "missing.json"],
         "chat-loadgen: missing.json: not a readable tokenizer file (tokenizer.json): "),
    ],
)  # fmt: skip
def test_bad_token_options_exit_2_with_one_line(tmp_path: Path, args: list[str], line: str) -> None:
    done = _locust(tmp_path, args)
    assert done.returncode == 2, done.stderr
    ours = [text for text in done.stderr.splitlines() if "chat-loadgen" in text]
    assert len(ours) == 1 and ours[0].startswith(line), ours
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "reports").exists()
