"""Per-turn JSONL log (``--turn-log PATH``): one JSON object per finished turn, written by the process that
ran the turn. In a distributed run (``--processes N`` or ``--worker``) each worker writes its own file, the
process id inserted before the suffix (``turns.jsonl`` -> ``turns.12345.jsonl``), so no two processes share a
file. Lines are buffered and flushed about once a second and when the test stops.

Fields: ``ts`` (unix seconds at the end of the turn), ``conversation_id``, ``transport``, ``dialogue``,
``turn``, ``verdict`` (``ok`` | ``transport_error`` | ``retention_failure`` | ``session_lost``), ``error``
(``Kind: reason`` or null), ``e2e_ms``, ``ttft_ms``, ``itl_ms_mean``, ``chunks``, ``output_tokens``,
``prompt_tokens``, ``schedule_lag_ms``, ``retention`` (``{"checked", "passed", "reason"}``: the reason with the
forgotten values, which the grouped reasons of reports leave out).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

from loadgen.metrics.turns import TurnOutcome

FLUSH_EVERY_S = 1.0


def turn_record(outcome: TurnOutcome, conversation_id: str, now: float | None = None) -> dict[str, Any]:
    reply = outcome.reply
    if outcome.error is not None or reply is None:
        verdict = "transport_error"
        error = f"{type(outcome.error).__name__}: {outcome.error.reason}" if outcome.error is not None else "no reply"
    elif outcome.session_lost is not None:
        verdict = "session_lost"
        error = f"SessionLost: {outcome.session_lost}"
    elif outcome.retention_checked and not outcome.retention_passed:
        verdict = "retention_failure"
        error = f"RetentionFailure: {outcome.retention_reason or ''}"
    else:
        verdict = "ok"
        error = None
    record: dict[str, Any] = {
        "ts": round(time.time() if now is None else now, 6),
        "conversation_id": conversation_id,
        "transport": outcome.transport,
        "dialogue": outcome.dialogue,
        "turn": outcome.turn,
        "verdict": verdict,
        "error": error,
        "e2e_ms": None,
        "ttft_ms": None,
        "itl_ms_mean": None,
        "chunks": 0,
        "output_tokens": None,
        "prompt_tokens": None,
        "schedule_lag_ms": round(outcome.schedule_lag_s * 1000.0, 3),
        "retention": {
            "checked": outcome.retention_checked,
            "passed": outcome.retention_passed if outcome.retention_checked else None,
            "reason": outcome.retention_detail or outcome.retention_reason,
        },
    }
    if reply is not None:
        ttft = reply.ttft_s()
        samples = reply.inter_token_samples()
        tokens = sum(n for _, n in samples)
        record.update(
            e2e_ms=round(reply.e2e_s() * 1000.0, 3),
            ttft_ms=round(ttft * 1000.0, 3) if ttft is not None else None,
            itl_ms_mean=round(1000.0 * sum(s * n for s, n in samples) / tokens, 3) if tokens else None,
            chunks=len(reply.chunk_times),
            output_tokens=reply.output_tokens,
            prompt_tokens=reply.usage.prompt_tokens if reply.usage is not None else None,
        )
    return record


def path_for_process(path: Path | str, per_process: bool, pid: int | None = None) -> Path:
    """``turns.jsonl`` -> ``turns.<pid>.jsonl`` for workers; unchanged for the only process."""
    p = Path(path)
    if not per_process:
        return p
    pid = os.getpid() if pid is None else pid
    return p.with_name(f"{p.stem}.{pid}{p.suffix}") if p.suffix else p.with_name(f"{p.name}.{pid}")


class TurnLog:
    """A turn listener (``runtime.turn_listeners``) appending one JSON line per turn. Opens lazily, so the
    file is created in the process that runs the users (after any fork)."""

    def __init__(self, path: Path | str, per_process: bool = False) -> None:
        self._base = Path(path)
        self._per_process = per_process
        self._fh: IO[str] | None = None
        self._path: Path | None = None
        self._last_flush = 0.0
        self._lock = threading.Lock()
        self.lines = 0

    @property
    def path(self) -> Path:
        return self._path or path_for_process(self._base, self._per_process)

    def _open(self) -> IO[str]:
        self._path = path_for_process(self._base, self._per_process)
        if self._path.parent != Path(""):
            self._path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self._path.open("a", encoding="utf-8")
        self._last_flush = time.monotonic()
        return self._fh

    def __call__(self, outcome: TurnOutcome, conversation_id: str) -> None:
        line = json.dumps(turn_record(outcome, conversation_id), separators=(",", ":"))
        with self._lock:
            fh = self._fh or self._open()
            fh.write(line + "\n")
            self.lines += 1
            now = time.monotonic()
            if now - self._last_flush >= FLUSH_EVERY_S:
                fh.flush()
                self._last_flush = now

    def flush(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
