"""Peers side by side: chat-loadgen, AIPerf and GuideLLM against the same reference server at the same concurrency.

Not a test (no ``test_`` prefix): a benchmark script whose figures are recorded by hand in reports/BENCHMARKS.md
("Peers side by side"). One REST reference server paced like a model (``--fixed``: first token ``--ttft-ms``
after it received the request, then one every ``--itl-ms``; ``--max-tokens`` tokens), then each tool in turn at
``--concurrency`` streams for ``--seconds``:

- chat-loadgen: the ConversationUser with no think time, ``-u CONCURRENCY``, one Locust process;
- AIPerf (``aiperf profile``, installed in its own venv: ``--aiperf-venv`` / ``$LOADGEN_PEERS_AIPERF_VENV``),
  with a local tokenizer and ``--use-server-token-count``;
- GuideLLM (``guidellm benchmark``, its own venv: ``--guidellm-venv`` / ``$LOADGEN_PEERS_GUIDELLM_VENV``), with
  ``HF_HUB_OFFLINE=1`` and the same local tokenizer.

A peer whose venv is not given or has no executable is skipped with one line saying so. For each tool: client
CPU per request (the whole process tree's user + system time, start-up included, from ``getrusage`` of the
reaped children, over the requests it completed), the most processes its tree had, requested vs achieved
concurrency (Little's law: completed requests per second x mean request latency), TTFT p50/p99 against the
server's promise, and the server's CPU per request beside it. The tokenizer (``--tokenizer``, default a tiny
word-level one built here with the ``tokenizers`` package) never touches a network::

    python tests/bench/bench_peers.py --aiperf-venv ../peers/aiperf-venv --guidellm-venv ../peers/guidellm-venv
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from loadgen.bench import cli as bench_cli  # noqa: E402 - after the repository is on the path
from loadgen.server.config import LOCAL_AMQP_URL  # noqa: E402

#: Extra seconds a tool may take past its run (start-up, draining, reports) before it is killed.
GRACE_S = 120
MODEL = "bench"
#: Seconds of a tool's load left out of its steady window at the start (ramp-up, first connections).
STEADY_SKIP_S = 3


@dataclass
class Result:
    """One tool's figures (None: not measured); ``note`` says how the tool was run or why it was not."""

    tool: str
    requests: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    processes: int = 0
    throughput: float | None = None
    latency_mean_ms: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    steady_cpu_ms: float | None = None
    note: str = ""

    def row(self, concurrency: int, promise_ms: float) -> str:
        if not self.requests:
            return f"| {self.tool} | - | - | - | - | - | {concurrency} | - | - | - | {self.note} |"
        achieved = (self.throughput or 0.0) * (self.latency_mean_ms or 0.0) / 1000.0
        cpu_ms = self.cpu_s / self.requests * 1000.0
        server_ms = self.server_cpu_s / self.requests * 1000.0
        return (
            f"| {self.tool} | {self.requests} | {self.throughput or 0.0:.1f} | {cpu_ms:.2f} "
            f"| **{_ms(self.steady_cpu_ms, 2)}** | {self.processes} "
            f"| {concurrency} | {achieved:.1f} | {_ms(self.ttft_p50_ms)} / {_ms(self.ttft_p99_ms)} "
            f"(+{_ms(_minus(self.ttft_p50_ms, promise_ms))} / +{_ms(_minus(self.ttft_p99_ms, promise_ms))}) "
            f"| {server_ms:.2f} | {self.note} |"
        )


def _ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _minus(value: float | None, base: float) -> float | None:
    return None if value is None else value - base


def build_tokenizer(folder: Path) -> Path:
    """A tiny word-level tokenizer (``tokenizer.json`` + ``tokenizer_config.json``) that loads offline."""
    import tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[UNK]", "[PAD]", *(f"w{i}" for i in range(2000))]
    vocab = {word: i for i, word in enumerate(dict.fromkeys(words))}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "pad_token": "[PAD]"}
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 1_000_000}))
    return folder


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tree_cpu(pid: int, seen: dict[tuple[int, float], float]) -> tuple[int, float]:
    """(processes now, CPU seconds so far) of ``pid``'s tree; ``seen`` keeps each process's last reading, so
    that one which exited still counts (up to its last sample)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, sum(seen.values())
    for proc in procs:
        try:
            times = proc.cpu_times()
            seen[(proc.pid, proc.create_time())] = times.user + times.system
        except psutil.Error:
            continue
    return len(procs), sum(seen.values())


def _served(stats_url: str) -> int | None:
    """Requests the reference server's REST front has received (``GET /stats``)."""
    try:
        with urllib.request.urlopen(stats_url, timeout=2) as response:
            return int(json.loads(response.read())["rest"]["requests"])
    except Exception:
        return None


class _Watch:
    """Once a second while a tool runs: its tree's size and CPU time, and the requests the server received."""

    def __init__(self, pid: int, stats_url: str) -> None:
        self.pid, self.stats_url, self.most = pid, stats_url, 0
        self.samples: list[tuple[float, int]] = []
        self._seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            count, cpu = _tree_cpu(self.pid, self._seen)
            served = _served(self.stats_url)
            self.most = max(self.most, count)
            if served is not None:
                self.samples.append((cpu, served))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.most


def steady_cpu_ms(samples: list[tuple[float, int]], ramp: int = STEADY_SKIP_S) -> float | None:
    """Client CPU ms per request while requests flow: from ``ramp`` samples after the server's count first
    rose to the sample before it stopped rising (None when that leaves under 3 samples)."""
    if len(samples) < 2:
        return None
    served = [n for _, n in samples]
    first = next((i for i, n in enumerate(served) if n > served[0]), None)
    last = max((i for i, n in enumerate(served) if n < served[-1]), default=None)
    if first is None or last is None:
        return None
    start, end = first + ramp, last - 1
    if end - start < 3 or served[end] <= served[start]:
        return None
    return (samples[end][0] - samples[start][0]) / (served[end] - served[start]) * 1000.0


def measured(tool: str, server_pid: int, run: Callable[[Result], None]) -> Result:
    """Run one tool, its CPU (reaped children) and the server's CPU over the same time around it."""
    result = Result(tool)
    cpu0, server0, wall0 = _children_cpu_s(), bench_cli._cpu_of(server_pid), time.perf_counter()
    try:
        run(result)
    except Exception as exc:  # one tool's failure is reported in its row, the others still run
        result.requests, result.note = 0, f"failed: {type(exc).__name__}: {str(exc)[-300:]}"
    result.cpu_s = _children_cpu_s() - cpu0
    result.server_cpu_s = bench_cli._cpu_of(server_pid) - server0
    result.wall_s = time.perf_counter() - wall0
    return result


def _call(cmd: list[str], env: dict[str, str], timeout_s: float, log: Path, result: Result, stats_url: str) -> int:
    """The exit code of one peer command (its output in ``log``); its tree's figures into ``result``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        watch = _Watch(proc.pid, stats_url)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        watched(result, watch)
        return proc.returncode


def watched(result: Result, watch: _Watch) -> None:
    result.processes = watch.stop()
    result.steady_cpu_ms = steady_cpu_ms(watch.samples)


def _tail(log: Path) -> str:
    return " ".join(log.read_text(errors="replace")[-400:].split())


def run_ours(args: argparse.Namespace, url: str, server_pid: int, work: Path) -> Callable[[Result], None]:
    def go(result: Result) -> None:
        run_id = "ours"
        arm = bench_cli._start_locust(
            ["-f", str(REPO / "scenarios" / "multiturn.py"), "--transport", "rest", "--think-min", "0",
             "--think-max", "0", "--max-tokens", str(args.max_tokens), "--reports-dir", str(work / "reports"),
             "--run-id", run_id],
            args.seconds, args.concurrency, work, url, server_pid,
        )  # fmt: skip
        watch = _Watch(arm.proc.pid, args.stats_url)
        done = bench_cli._finish_locust(arm)
        watched(result, watch)
        summary = json.loads((work / "reports" / run_id / "summary.json").read_text())
        row = summary["transports"]["rest"]
        result.requests = int(done["whole_turns"])
        result.throughput = float(row["turns_per_s"])
        result.latency_mean_ms = float(row["e2e_ms"]["mean"])
        result.ttft_p50_ms, result.ttft_p99_ms = row["ttft_ms"]["p50"], row["ttft_ms"]["p99"]
        result.note = "ConversationUser, think 0, one Locust process"

    return go


def run_aiperf(args: argparse.Namespace, url: str, tokenizer: Path, work: Path) -> Callable[[Result], None]:
    def go(result: Result) -> None:
        exe = Path(args.aiperf_venv) / "bin" / "aiperf"
        out = work / "aiperf"
        cmd = [
            str(exe), "profile", "-m", MODEL, "--url", url, "--endpoint-type", "chat", "--streaming",
            "--tokenizer", str(tokenizer), "--use-server-token-count", "--concurrency", str(args.concurrency),
            "--benchmark-duration", str(args.seconds), "--output-tokens-mean", str(args.max_tokens),
            "--ui", "none", "--artifact-dir", str(out), "--no-server-metrics",
        ]  # fmt: skip
        # a local tokenizer path loads only when HF_HUB_OFFLINE is unset (offline, AIPerf looks in the hub cache)
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        log = work / "aiperf.log"
        rc = _call(cmd, env, args.seconds + GRACE_S, log, result, args.stats_url)
        export = out / "profile_export_aiperf.json"
        if rc != 0 or not export.exists():
            raise RuntimeError(f"aiperf exited {rc}: {_tail(log)}")
        data = json.loads(export.read_text())
        result.requests = int(data["request_count"]["avg"])
        result.throughput = float(data["request_throughput"]["avg"])
        result.latency_mean_ms = float(data["request_latency"]["avg"])
        result.ttft_p50_ms = float(data["time_to_first_token"]["p50"])
        result.ttft_p99_ms = float(data["time_to_first_token"]["p99"])
        result.note = "aiperf profile --concurrency, synthetic prompts"

    return go


def run_guidellm(args: argparse.Namespace, url: str, tokenizer: Path, work: Path) -> Callable[[Result], None]:
    def go(result: Result) -> None:
        exe = Path(args.guidellm_venv) / "bin" / "guidellm"
        out = work / "guidellm.json"
        cmd = [
            str(exe), "run", "--backend", f"kind=openai_http,target={url},model={MODEL},request_format="
            "/v1/chat/completions", "--profile", f"kind=concurrent,streams={args.concurrency}",
            "--constraint", f"kind=max_duration,seconds={args.seconds}",
            "--tokenizer", f"kind=hf_auto,model={tokenizer}",
            "--data", f"kind=synthetic_text,prompt_tokens=128,output_tokens={args.max_tokens}",
            "--output", f"kind=json,path={out}", "--disable-progress",
        ]  # fmt: skip
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        log = work / "guidellm.log"
        rc = _call(cmd, env, args.seconds + GRACE_S, log, result, args.stats_url)
        if rc != 0 or not out.exists():
            raise RuntimeError(f"guidellm exited {rc}: {_tail(log)}")
        fill_guidellm(result, json.loads(out.read_text()))
        result.note = "guidellm run --profile kind=concurrent, synthetic 128-token prompts"

    return go


def _stat(block: Any, name: str) -> float | None:
    """A statistic of GuideLLM's distribution summaries (``successful`` requests), or None."""
    if not isinstance(block, dict):
        return None
    block = block.get("successful", block)
    value = (block.get("percentiles") or {}).get(name) if name in ("p50", "p99") else block.get(name)
    return None if value is None else float(value)


def fill_guidellm(result: Result, report: dict[str, Any]) -> None:
    """The figures of GuideLLM's report (its first benchmark); times there are seconds or milliseconds by name."""
    bench = report["benchmarks"][0]
    metrics = bench["metrics"]
    totals = metrics.get("request_totals") or {}
    result.requests = int(totals.get("successful", 0))
    result.throughput = _stat(metrics.get("requests_per_second"), "mean")
    latency_s = _stat(metrics.get("request_latency"), "mean")
    result.latency_mean_ms = None if latency_s is None else latency_s * 1000.0
    ttft = metrics.get("time_to_first_token_ms")
    result.ttft_p50_ms, result.ttft_p99_ms = _stat(ttft, "p50"), _stat(ttft, "p99")


def peer_missing(name: str, venv: str | None, exe: str) -> str | None:
    """Why a peer is skipped (its venv not given, or no executable in it), or None when it can run."""
    if not venv:
        env = f"LOADGEN_PEERS_{name.upper()}_VENV"
        return f"{name}: skipped, not installed here (give --{name}-venv DIR or ${env}: a venv with {exe} in bin/)"
    if not (Path(venv) / "bin" / exe).exists():
        return f"{name}: skipped, {venv}/bin/{exe} does not exist (pip install it into that venv)"
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_peers.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--aiperf-venv", default=os.environ.get("LOADGEN_PEERS_AIPERF_VENV"))
    parser.add_argument("--guidellm-venv", default=os.environ.get("LOADGEN_PEERS_GUIDELLM_VENV"))
    parser.add_argument("--tokenizer", default=os.environ.get("LOADGEN_PEERS_TOKENIZER"), help="a local tokenizer")
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="streams in flight (default 50)")
    parser.add_argument("-t", "--seconds", type=int, default=30, help="seconds of load per tool (default 30)")
    parser.add_argument("--ttft-ms", type=float, default=200.0, help="the server's time to first token")
    parser.add_argument("--itl-ms", type=float, default=20.0, help="the server's time per later token")
    parser.add_argument("--max-tokens", type=int, default=64, help="reply length in tokens (default 64)")
    parser.add_argument("--only", default="chat-loadgen,aiperf,guidellm", help="tools to run, comma-separated")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.seconds < 5:
        parser.error("-c/--concurrency must be at least 1 and -t/--seconds at least 5")
    return args


def main(argv: list[str] | None = None) -> int:
    from loadgen.locust_plugin.embedded import start_embedded_server

    args = parse_args(argv)
    only = {name.strip() for name in args.only.split(",")}
    pacing = ["--fixed", "--fixed-ttft-ms", f"{args.ttft_ms:g}", "--fixed-itl-ms", f"{args.itl_ms:g}"]
    os.environ["LOADGEN_BENCH_MAX_TOKENS"] = str(args.max_tokens)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer = Path(args.tokenizer) if args.tokenizer else build_tokenizer(work / "tokenizer")
        server = start_embedded_server("rest", LOCAL_AMQP_URL, [*bench_cli.ZERO_COST, *pacing])
        try:
            url, pid = server.urls["rest"], server.proc.pid
            args.stats_url = url.rstrip("/") + "/stats"
            tools: list[tuple[str, str | None, Callable[[Result], None]]] = [
                ("chat-loadgen", None, run_ours(args, url, pid, work)),
                ("aiperf", peer_missing("aiperf", args.aiperf_venv, "aiperf"), run_aiperf(args, url, tokenizer, work)),
                ("guidellm", peer_missing("guidellm", args.guidellm_venv, "guidellm"),
                 run_guidellm(args, url, tokenizer, work)),
            ]  # fmt: skip
            for name, missing, run in tools:
                if name not in only:
                    continue
                if missing:
                    print(missing, file=sys.stderr)
                    results.append(Result(name, note=missing.split(": ", 1)[1]))
                    continue
                print(f"running {name} ...", file=sys.stderr)
                results.append(measured(name, pid, run))
        finally:
            server.stop()
    print(
        f"### peers: {args.concurrency} streams, {args.seconds} s each, REST, {args.max_tokens}-token replies paced "
        f"{args.ttft_ms:g} ms to the first token then {args.itl_ms:g} ms per token"
    )
    print(
        "| tool | requests | req/s | client CPU ms/request, whole run | steady | processes | concurrency requested "
        "| achieved "
        "| TTFT p50 / p99 ms (over the promise) | server CPU ms/request | how |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in results:
        print(result.row(args.concurrency, args.ttft_ms))
    return 0 if all(r.requests or "skipped" in r.note for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
