"""Streamed turns/s of the sim server with zero step costs: is the server ever what limits a client benchmark?

Not a test (pytest does not collect it). Run::

    python tests/server/measure_throughput.py --server-cpu 0 --client-cpus 1 --clients 1 --concurrency 32

It starts ``loadgen serve`` (zero step and prefill costs, 64-token replies) pinned to one core, then client
processes (a plain asyncio loop of httpx streaming POSTs, SSE lines read one by one) pinned to the others,
and prints turns/s, tokens/s and the server's CPU use over the measured window.

Measured on a shared 2-core VM (server pinned to core 0, one client process on core 1, 32 streams, 64-token
replies, zero step costs; other jobs were running): the server spent 0.8-1.4 ms of CPU per streamed turn
(asyncio loop 0.88-1.37 ms, uvloop 0.79-1.16 ms), i.e. one server core sustains roughly 700-1250 turns/s
(45k-80k tokens/s), most of it one ``send()`` syscall per token. The client core was always the limit:
the httpx asyncio client reached 80-200 turns/s, the raw-socket client 285-415 turns/s, with the server core
at most 35% busy. So a client benchmark needs ~5-10 client cores per server core before the server could be
what limits it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY = "loadgen-ready "


def client_proc(
    url: str, concurrency: int, seconds: float, warmup: float, max_tokens: int, cpu: int | None, out: mp.Queue
) -> None:  # type: ignore[type-arg]
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    import httpx

    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    async def main() -> tuple[int, int, int]:
        turns = tokens = errors = 0
        t_start = time.perf_counter() + warmup
        t_end = t_start + seconds
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def user() -> None:
                nonlocal turns, tokens, errors
                while True:
                    now = time.perf_counter()
                    if now >= t_end:
                        return
                    n = 0
                    try:
                        async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
                            async for line in r.aiter_lines():
                                if line.startswith("data: {") and '"content":"' in line and '"role"' not in line:
                                    n += 1
                        ok = r.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if time.perf_counter() >= t_start and time.perf_counter() < t_end:
                        if ok:
                            turns += 1
                            tokens += n
                        else:
                            errors += 1

            await asyncio.gather(*(user() for _ in range(concurrency)))
        return turns, tokens, errors

    out.put(asyncio.run(main()))


def raw_client_proc(
    url: str, concurrency: int, seconds: float, warmup: float, max_tokens: int, cpu: int | None, out: mp.Queue
) -> None:  # type: ignore[type-arg]
    """A lean client: asyncio protocols writing raw HTTP/1.1 and waiting for the end of each chunked reply, to
    drive the server harder than httpx can (tokens are not parsed; the httpx client checks those)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(
        {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": max_tokens, "stream": True}
    ).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    counts = {"turns": 0}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t_start = time.perf_counter() + warmup
        t_end = t_start + seconds
        finished = loop.create_future()
        open_conns = [concurrency]

        class Conn(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport
                transport.write(request)  # type: ignore[attr-defined]

            def data_received(self, data: bytes) -> None:
                if data.endswith(b"\r\n0\r\n\r\n"):
                    now = time.perf_counter()
                    if t_start <= now < t_end:
                        counts["turns"] += 1
                    if now < t_end:
                        self.transport.write(request)  # type: ignore[attr-defined]
                    else:
                        self.transport.close()

            def connection_lost(self, exc: Exception | None) -> None:
                open_conns[0] -= 1
                if open_conns[0] == 0 and not finished.done():
                    finished.set_result(None)

        for _ in range(concurrency):
            await loop.create_connection(Conn, host, int(port))
        await finished

    asyncio.run(main())
    out.put((counts["turns"], counts["turns"] * max_tokens, 0))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpus", default="1", help="comma-separated cores, one client process each")
    ap.add_argument("--concurrency", type=int, default=32, help="concurrent streams per client process")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--loop", default="asyncio", help="the server's event loop: asyncio | uvloop")
    ap.add_argument("--client", default="httpx", help="httpx (parses every SSE line) | raw (lean, counts replies)")
    args = ap.parse_args()
    cmd = [
        sys.executable,
        "-m",
        "loadgen",
        "serve",
        "--rest-port",
        "0",
        "--step-base-us",
        "0",
        "--step-per-seq-us",
        "0",
        "--prefill-us-per-token",
        "0",
        "--log-level",
        "warning",
        "--loop",
        args.loop,
    ]
    server = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, cwd=REPO, preexec_fn=lambda: os.sched_setaffinity(0, {args.server_cpu})
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    assert line.startswith(READY), line
    url = json.loads(line[len(READY) :])["rest"]
    cpus = [int(c) for c in args.client_cpus.split(",")]
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [
        mp.Process(
            target=client_proc if args.client == "httpx" else raw_client_proc,
            args=(url, args.concurrency, args.seconds, args.warmup, args.max_tokens, cpu, out),
        )
        for cpu in cpus
    ]
    for p in procs:
        p.start()
    time.sleep(args.warmup)
    cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
    time.sleep(args.seconds)
    cpu1, t1 = cpu_seconds(server.pid), time.perf_counter()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    server.send_signal(signal.SIGTERM)
    server.wait(20)
    turns = sum(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    print(
        json.dumps(
            {
                "loop": args.loop,
                "client": args.client,
                "clients": len(cpus),
                "concurrency_per_client": args.concurrency,
                "max_tokens": args.max_tokens,
                "seconds": args.seconds,
                "turns_per_s": round(turns / args.seconds, 1),
                "tokens_per_s": round(tokens / args.seconds),
                "tokens_per_turn": round(tokens / turns, 1) if turns else 0,
                "errors": errors,
                "server_cpu_util": round((cpu1 - cpu0) / (t1 - t0), 3),
                "server_cpu_us_per_turn": round((cpu1 - cpu0) / turns * 1e6 * args.seconds / (t1 - t0))
                if turns
                else None,
            }
        )
    )


if __name__ == "__main__":
    main()
