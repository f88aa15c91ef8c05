"""Bounded load test of `python -m recarena.serve` on 127.0.0.1: requests/s and p50/p99 latency of
GET /recommend at a fixed concurrency for a fixed time, per run; then POST /feedback writes/s, with the rows in
the database counted afterwards (acknowledged = stored, nothing lost).

The server runs in its own process (one BLAS/torch thread); the client is aiohttp on one asyncio loop in this
process, so on a 2-core machine the two share the cores, as they would on one small host.

The last column of a GET row is what the server's batcher did (GET /health's `batches`: mean and largest batch,
model calls); `--serve serve.batch.max_size=1` measures one request per model call.

Usage: python -m benchmarks.serve_load --runs itemcf=outputs/serve/itemcf mf=outputs/serve/mf
       [--seconds 30] [--concurrency 8] [--k 10] [--feedback-seconds 10] [--serve KEY=VALUE ...]"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import polars as pl

from recarena.data.feedback import FeedbackStore

ROOT = Path(__file__).resolve().parents[1]
WARMUP_S = 2.0


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run_dir: Path, port: int, database: Path, overrides: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("RECARENA_WRITE_TOKEN", None)
    command = [sys.executable, "-m", "recarena.serve", f"run_dir={run_dir}", f"port={port}",
               f"serve.feedback_db={database}", *overrides]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def wait_up(base: str, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    async with aiohttp.ClientSession() as session:
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {process.stderr.read()[-2000:]}")
            try:
                async with session.get(f"{base}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{base}: not up in {timeout} s")


async def load(base: str, make_request, seconds: float, concurrency: int) -> tuple[list[float], int, int]:
    """`concurrency` workers, each with requests back to back for `seconds` (after a warm-up that is not counted);
    returns the counted latencies (s) and errors, and the events acknowledged over the whole run."""
    latencies: list[float] = []
    errors, acknowledged = 0, 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        counted_from, end = start + WARMUP_S, start + WARMUP_S + seconds

        async def worker(seed: int) -> None:
            nonlocal errors, acknowledged
            rng = random.Random(seed)
            while (now := time.perf_counter()) < end:
                method, url, body = make_request(rng)
                async with session.request(method, f"{base}{url}", json=body) as response:
                    payload = await response.json()
                    done = time.perf_counter()
                if method == "POST" and response.status == 200:
                    acknowledged += int(payload["stored"])  # warm-up writes too: all of them must be stored
                if now >= counted_from:
                    latencies.append(done - now)
                    errors += response.status != 200

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return latencies, errors, acknowledged


async def health(base: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/health") as response:
        return await response.json()


def row(name: str, what: str, latencies: list[float], seconds: float, errors: int, extra: str = "") -> str:
    ms = np.asarray(latencies) * 1000
    return (f"| {name} | {what} | {len(ms)} | {len(ms) / seconds:,.0f} | {np.percentile(ms, 50):.1f} | "
            f"{np.percentile(ms, 99):.1f} | {errors} | {extra} |")  # fmt: skip


def bench(name: str, run_dir: Path, args: argparse.Namespace) -> list[str]:
    users = pl.read_parquet(run_dir / "recommendations.parquet")["user"].unique().cast(pl.String).to_list()
    items = pl.read_parquet(run_dir / "recommendations.parquet")["item"].drop_nulls().unique().cast(pl.String).to_list()
    port = _port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "feedback.sqlite"
        process = start_server(run_dir, port, database, args.serve)
        try:
            asyncio.run(wait_up(base, process))
            lines = []
            recommend = lambda rng: ("GET", f"/recommend?user={rng.choice(users)}&k={args.k}", None)  # noqa: E731
            latencies, errors, _ = asyncio.run(load(base, recommend, args.seconds, args.concurrency))
            batches = asyncio.run(health(base))["batches"]
            sizes = [int(size) for size in batches["sizes"]]
            seen = f"batches: mean {batches['mean_size']:.2f}, max {max(sizes, default=0)}, {batches['calls']} calls"
            lines.append(row(name, f"GET /recommend k={args.k}", latencies, args.seconds, errors, seen))
            if args.feedback_seconds > 0:
                event = lambda rng: {"user": rng.choice(users), "item": rng.choice(items), "kind": "click",  # noqa: E731
                                     "timestamp": 893286638 + rng.randrange(10**6)}  # fmt: skip
                feedback = lambda rng: ("POST", "/feedback", {"events": [event(rng)]})  # noqa: E731
                latencies, errors, acked = asyncio.run(load(base, feedback, args.feedback_seconds, args.concurrency))
                process.kill()  # SIGKILL: what was acknowledged must already be in the database
                process.wait(30)
                stored = FeedbackStore(database).count()
                lost = f"{acked} acknowledged, {stored} stored after SIGKILL: {acked - stored} lost"
                lines.append(row(name, "POST /feedback (1 event)", latencies, args.feedback_seconds, errors, lost))
            return lines
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__)
    parser.add_argument("--runs", nargs="+", required=True, help="name=run_dir pairs")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--feedback-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--serve", nargs="*", default=[], help="serve overrides, e.g. serve.batch.max_size=1")
    args = parser.parse_args(argv)
    print(f"concurrency {args.concurrency}, {args.seconds:.0f} s per run after {WARMUP_S:.0f} s warm-up, "
          f"{os.cpu_count()} cores shared by server and client")  # fmt: skip
    print(f"server overrides: {' '.join(args.serve) or 'none'}")
    print("| run | request | requests | requests/s | p50 ms | p99 ms | errors | batches / feedback rows |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in args.runs:
        name, _, path = spec.partition("=")
        for line in bench(name, Path(path), args):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
