"""How much a ``kill -9`` of a running Locust loses (reports/BENCHMARKS.md): a reference server of its own counts
the turns it completed; the run folder left behind is read as ``loadgen report`` reads it.

    python tests/locust_plugin/kill9_benchmark.py --users 200 --seconds 60 --out /tmp/kill9

Not collected by pytest (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="run time before the kill")
    parser.add_argument("--checkpoint-interval", default="5")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "serve", "--bind", "127.0.0.1", "--rest-port", "0"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert server.stdout is not None
    url = next(json.loads(line.split(" ", 1)[1])["rest"] for line in server.stdout if line.startswith("loadgen-ready"))
    cmd = [
        sys.executable, "-m", "locust", "-f", str(REPO / "scenarios" / "multiturn.py"), "--headless",
        "-u", str(args.users), "-r", str(max(1, args.users // 10)), "-t", "3600s", "--host", url,
        "--dialogues", str(REPO / "scenarios" / "dialogues"), "--reports-dir", str(args.out / "reports"),
        "--run-id", "killed", "--checkpoint-interval", args.checkpoint_interval, "--only-summary",
    ]  # fmt: skip
    with (args.out / "locust.log").open("wb") as log:
        locust = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        time.sleep(args.seconds)
        killed_at = time.time()
        locust.send_signal(signal.SIGKILL)
        locust.wait(30)
        time.sleep(1.0)
        served = httpx.get(f"{url}/stats", timeout=10).json()["service"]
    finally:
        server.terminate()
        server.wait(30)
    run_dir = args.out / "reports" / "killed"
    summary = json.loads((run_dir / "summary.json").read_text())
    kept = summary["transports"]["rest"]["count"]
    done = served["completed"] + served.get("cancelled", 0) + served.get("failed", 0)
    report = subprocess.run([sys.executable, "-m", "loadgen", "report", str(run_dir), "--no-html"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    result = {
        "users": args.users,
        "checkpoint_interval_s": float(args.checkpoint_interval),
        "run_s": round(killed_at - summary["run"]["started_at"], 1),
        "server_turns": done,
        "run_folder_turns": kept,
        "lost_turns": done - kept,
        "lost_pct": round(100.0 * (done - kept) / done, 2) if done else None,
        "seconds_since_last_checkpoint": round(killed_at - summary["run"]["ended_at"], 2),
        "turns_per_s": round(kept / summary["run"]["duration_s"], 1),
        "loadgen_report_exit_code": report.returncode,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
