"""`python -m benchmarks.run --scale ml100k|ml1m|ml20m [--models pop,itemcf,usercf,mf] [--threads 1,2] [--repeats 5]`

Runs each (model, threads) in a fresh process (benchmarks.worker) so peak RSS is per model, prints markdown
tables and writes them (plus a CSV of every field) to outputs/benchmarks/<scale>-<time>.{md,csv}."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import markdown, write_csv
from benchmarks.scales import MODELS, SCALES

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "benchmarks"


def run_one(scale: str, model: str, threads: int, compare: bool, timeout: float, repeats: int = 5) -> dict[str, Any]:
    """One worker process with `threads` torch/BLAS/OpenMP threads; a failed or timed-out run still yields a row."""
    stem = f"{scale}-{model}-t{threads}"
    out, run_dir = OUT / "rows" / f"{stem}.json", OUT / "runs" / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}  # fmt: skip
    cmd = [sys.executable, "-m", "benchmarks.worker", "--scale", scale, "--model", model, "--threads", str(threads),
           "--out", str(out), "--run-dir", str(run_dir), "--repeats", str(repeats),
           *([] if compare else ["--no-compare"])]  # fmt: skip
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"scale": scale, "model": model, "threads": threads, "status": f"timeout>{timeout:.0f}s"}
    if done.returncode != 0 or not out.exists():
        print(done.stderr[-3000:], file=sys.stderr)
        return {"scale": scale, "model": model, "threads": threads, "status": f"failed rc={done.returncode}",
                "e2e_s": time.perf_counter() - start}  # fmt: skip
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="ml100k")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model configs")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    parser.add_argument("--no-compare", action="store_true", help="skip the implicit-direct and plain yardsticks")
    parser.add_argument("--timeout", type=float, default=25 * 60, help="seconds before a run is given up")
    parser.add_argument("--repeats", type=int, default=5, help="evaluations timed for (b); the median is shown")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: time at least one evaluation")
    models = [m for m in args.models.split(",") if m]
    threads = [int(t) for t in args.threads.split(",") if t]
    load = os.getloadavg()
    header = (
        f"## recarena benchmark: scale={args.scale}, models={models}, threads={threads}\n"
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {platform.node()}, {os.cpu_count()} CPUs, "
        f"load average at start {load[0]:.2f} (timings on a shared machine are noisy)"
    )
    rows = []
    for model in models:
        for n in threads:
            row = run_one(args.scale, model, n, not args.no_compare, args.timeout, args.repeats)
            rows.append(row)
            print(f"{model} threads={n}: {row.get('status')} e2e={row.get('e2e_s', float('nan')):.1f}s", flush=True)
    text = markdown(rows, header)
    print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"{args.scale}-{stamp}.md").write_text(text)
    write_csv(rows, OUT / f"{args.scale}-{stamp}.csv")
    return rows


if __name__ == "__main__":
    main()
