"""A soak benchmark (reports/BENCHMARKS.md, "Soak: cost over a long run"): one headless run against the embedded
server, sampled from outside while it goes, then per-window figures and the projected 8-hour ones.

    python tests/locust_plugin/soak_benchmark.py --minutes 60 --users 200 --out /tmp/soak

Every ``--sample`` seconds: the generator's and the server's RSS (``/proc/<pid>/status``), the last checkpoint's
cost (``run.checkpoints`` in summary.json: wall-clock and its own CPU time) and the run folder's size. At the end,
per ``--window`` minutes: RSS, generator lag p99 (summary.json ``windows``), checkpoint time and folder size, and
each figure's Theil-Sen slope per hour over the run's second half (the first half holds the warm-up), projected to
8 hours. Not collected by pytest (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from loadgen.analysis.drift import theil_sen  # noqa: E402


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*") if p.is_file()) / 1e6 if folder.exists() else 0.0


def sample(locust: int, run_dir: Path, started: float) -> dict[str, Any]:
    server = next(iter(children(locust)), None)
    row: dict[str, Any] = {
        "t_s": round(time.monotonic() - started, 1),
        "generator_rss_mb": rss_mb(locust),
        "server_rss_mb": rss_mb(server) if server else None,
        "folder_mb": round(folder_mb(run_dir), 3),
    }
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        row["checkpoint"] = summary["run"].get("checkpoints")
        row["intervals"] = summary["run"].get("intervals")
    except (OSError, ValueError, KeyError):
        pass
    return row


def _per_window(samples: list[dict[str, Any]], summary: dict[str, Any], window_s: float) -> list[dict[str, Any]]:
    rows = []
    lag_rows = summary.get("windows", {}).get("rows", [])
    end = max(s["t_s"] for s in samples)
    k = 1
    while (k - 1) * window_s < end:
        inside = [s for s in samples if (k - 1) * window_s < s["t_s"] <= k * window_s]
        if not inside:
            break
        last = inside[-1]
        ck = [s["checkpoint"]["last_ms"] for s in inside if s.get("checkpoint") and s["checkpoint"]["last_ms"]]
        cpu = [s["checkpoint"]["cpu_last_ms"] for s in inside if s.get("checkpoint") and s["checkpoint"]["cpu_last_ms"]]
        blocks = [s["checkpoint"]["max_block_ms"] for s in inside if s.get("checkpoint")]
        lag = next((r["generator_lag_ms"]["p99"] for r in lag_rows if abs(r["end_s"] - k * window_s) < window_s / 2),
                   None)  # fmt: skip
        rows.append({
            "minute": round(k * window_s / 60, 2),
            "generator_rss_mb": last["generator_rss_mb"],
            "server_rss_mb": last["server_rss_mb"],
            "lag_p99_ms": lag,
            "checkpoint_ms": round(sum(ck) / len(ck), 1) if ck else None,
            "checkpoint_cpu_ms": round(sum(cpu) / len(cpu), 1) if cpu else None,
            "max_block_ms": max((b for b in blocks if b is not None), default=None),
            "folder_mb": last["folder_mb"],
            "intervals": last.get("intervals"),
        })  # fmt: skip
        k += 1
    return rows


def _projection(samples: list[dict[str, Any]], field: str, hours: float = 8.0) -> tuple[float | None, float | None]:
    """(slope per hour over the second half of the run, the value projected to ``hours``)."""
    end = max(s["t_s"] for s in samples)
    points = [(s["t_s"] / 3600.0, s[field]) for s in samples if s["t_s"] >= end / 2 and s.get(field) is not None]
    if len(points) < 3:
        return None, None
    slope = theil_sen([p[0] for p in points], [p[1] for p in points])
    if slope is None:
        return None, None
    last_t, last_v = points[-1]
    return slope, last_v + slope * (hours - last_t)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--window", type=float, default=10.0, help="minutes per row of the table")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--transport", default="rest")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = args.out / "reports" / "soak"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(REPO / "scenarios" / "multiturn.py"), "--headless",
        "-u", str(args.users), "-r", str(max(1, args.users // 20)), "-t", f"{int(args.minutes * 60)}s",
        "--transport", args.transport, "--dialogues", str(REPO / "scenarios" / "dialogues"),
        "--reports-dir", str(args.out / "reports"), "--run-id", "soak", "--drift-window", f"{args.window}m",
        "--only-summary", "--stop-timeout", "5",
    ]  # fmt: skip
    started = time.monotonic()
    with (args.out / "locust.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=args.out)
    samples = []
    with (args.out / "samples.jsonl").open("a") as out:
        while proc.poll() is None:
            time.sleep(args.sample)
            if proc.poll() is not None:
                break
            row = sample(proc.pid, run_dir, started)
            samples.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
    summary = json.loads((run_dir / "summary.json").read_text())
    table = _per_window(samples, summary, args.window * 60)
    projected = {f: _projection(samples, f) for f in ("generator_rss_mb", "server_rss_mb", "folder_mb")}
    result = {
        "exit_code": proc.returncode,
        "turns": summary["transports"].get(args.transport, {}).get("count"),
        "failures": summary["transports"].get(args.transport, {}).get("failures"),
        "checkpoints": summary["run"].get("checkpoints"),
        "drift": summary.get("drift"),
        "table": table,
        "slope_per_hour_and_8h": projected,
        "report_files_mb": {p.name: round(p.stat().st_size / 1e6, 3) for p in sorted(run_dir.glob("*"))},
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
