"""Bad options stop a real Locust run before any user starts: exit code 2, one line of ours, no traceback, no run
folder, within seconds (never a run that idles to ``-t``). Targets are checked too (``--host`` that does not suit
the transport, a broker that refuses connections), and an embedded server that cannot start says why in the same
one line. (The option table itself is unit-tested in ``gevent_cases.py``.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LOCUSTFILE = REPO_ROOT / "scenarios" / "multiturn.py"
SAMPLE_DATASET = REPO_ROOT / "scenarios" / "datasets" / "sample_openai.jsonl"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--run-id", "nightly/1"], "chat-loadgen: --run-id 'nightly/1': use letters, digits, '.', '_' and '-' only"),
        (["--think-min", "2", "--think-max", "1"], "chat-loadgen: --think-min 2.0 is larger than --think-max 1.0"),
        (["--checkpoint-interval", "0"], "chat-loadgen: --checkpoint-interval 0.0: must be > 0 seconds"),
        (["--plant-probes"],
         "chat-loadgen: --plant-probes needs --dataset FILE: it plants facts into replayed dataset conversations "
         "(dialogues have their own probes)"),
        (["--dataset", "missing.jsonl"], "chat-loadgen: --dataset missing.jsonl: no such file"),
        (["--dataset-history", "recorded"],
         "chat-loadgen: --dataset-history recorded needs --dataset FILE: it sends a dataset's recorded replies as the "
         "history"),
        (["--dataset", str(SAMPLE_DATASET), "--dataset-history", "recorded", "--history", "server"],
         "chat-loadgen: --dataset-history recorded needs --history client: in server mode the server keeps its own "
         "history"),
        (["--prefix-count", "4"],
         "chat-loadgen: --prefix-count needs --shared-prefix-tokens K (the length of the shared prefix)"),
        (["--shared-prefix-tokens", "64", "--shared-prefix-share", "1.5"],
         "chat-loadgen: --shared-prefix-share 1.5: must be between 0 and 1"),
        (["--host", "htp://127.0.0.1:1"],
         "chat-loadgen: target 'htp://127.0.0.1:1' does not suit transport 'rest': expected a URL starting with "
         "http:// or https://"),
        (["--transport", "grpc", "--host", "http://127.0.0.1:50051"],
         "chat-loadgen: target 'http://127.0.0.1:50051' does not suit transport 'grpc': expected a URL starting with "
         "grpc:// or grpcs://"),
        (["--transport", "amqp", "--host", "amqp://guest:sekrit@127.0.0.1:5999/"],
         "chat-loadgen: target 'amqp://guest:***@127.0.0.1:5999/': connection refused to the broker at "
         "127.0.0.1:5999: is RabbitMQ running? (start one with `rabbitmq-server -detached`)"),
    ],
)  # fmt: skip
def test_a_bad_option_exits_2_with_one_line_and_no_run_folder(tmp_path: Path, args: list[str], line: str) -> None:
    done = _locust(tmp_path, args)
    assert done.returncode == 2, done.stderr
    ours = [text for text in done.stderr.splitlines() if "chat-loadgen" in text]
    assert ours == [line]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "reports").exists()


def _locust(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1", "-r", "1", "-t", "120s",
         "--dialogues", str(REPO_ROOT / "scenarios" / "dialogues"), "--reports-dir", str(tmp_path / "reports"), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_an_embedded_server_that_cannot_start_is_one_line_with_its_reason(tmp_path: Path) -> None:
    began = time.monotonic()
    done = _locust(
        tmp_path, ["--transport", "amqp", "--embedded-server-args", "--amqp-url amqp://u:sekrit@127.0.0.1:5999/"]
    )
    assert time.monotonic() - began < 60  # not the server's 120 s start-up limit, nor -t
    assert done.returncode == 2, done.stderr
    (ours,) = [text for text in done.stderr.splitlines() if "chat-loadgen" in text]
    assert ours.startswith("chat-loadgen: the embedded reference server for 'amqp' exited (code 2)")
    assert "before it was ready: " in ours and "5999" in ours and "within 120 s" not in ours
    assert "sekrit" not in done.stderr
    assert not (tmp_path / "reports").exists()
