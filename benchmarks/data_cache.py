"""The processed-data cache, measured: seconds to get a job's data (read/generate + preprocess + split) without the
cache, on the run that writes it, and on a cache hit, per scale (medians of repeats; one BLAS thread).

Usage: python -m benchmarks.data_cache [--scales ml100k,ml1m] [--repeats 3]"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.scales import SCALES
from recarena.utils.compose import compose_train_config
from recarena.utils.instantiate import build

ROOT = Path(__file__).resolve().parents[1]


def seconds(overrides: list[str], data_dir: Path, out: Path) -> float:
    """Wall time of one datamodule load (what every job of a sweep does first)."""
    cfg = compose_train_config([*overrides, "logger=none"], out, data_dir)
    module = build(cfg.data, "data")
    module.prepare_data()
    start = time.perf_counter()
    module.load()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.data_cache", description=__doc__)
    parser.add_argument("--scales", default="ml100k,ml1m")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print("| scale | no cache (s) | miss: builds the cache (s) | hit (s) | saved per job (s) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        out, data_dir = Path(tmp) / "run", Path(tmp) / "data"
        (out).mkdir()
        if (ROOT / "data" / "ml-100k").is_dir():  # the fetched MovieLens files (else prepare_data fetches them)
            shutil.copytree(ROOT / "data" / "ml-100k", data_dir / "ml-100k")
        for scale in args.scales.split(","):
            base = SCALES[scale]
            plain = statistics.median(seconds([*base, "data.cache=false"], data_dir, out) for _ in range(args.repeats))
            misses, hits = [], []
            for _ in range(args.repeats):
                shutil.rmtree(data_dir / "cache" / "processed", ignore_errors=True)
                misses.append(seconds(base, data_dir, out))
                hits.append(seconds(base, data_dir, out))
            miss, hit = statistics.median(misses), statistics.median(hits)
            print(f"| {scale} | {plain:.3f} | {miss:.3f} | {hit:.3f} | {plain - hit:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
