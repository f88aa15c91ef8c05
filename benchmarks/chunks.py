"""Memory check of chunked full ranking: `python -m benchmarks.chunks --scale ml20m --models usercf,itemcf,mf,pop`.

For each model (fresh process each): the real RecDataModule and the model's FitOnceModule, fit once, then the first
`--batches` batches of the real test loader through `recommend` (score → mask → top-K). Reports the peak RSS above
the fitted state while scoring (the kernel's high-water mark is reset after fitting), seconds per batch and the
extrapolated val + test time: a bounded check for families too slow to evaluate fully at this scale (UserKNN)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import table
from benchmarks.scales import MODELS, overrides

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "benchmarks"
COLUMNS = [
    ("model", "model"), ("eval_batch", "eval batch"), ("batch_mib", "batch scores MiB"),
    ("fitted_rss_gib", "RSS fitted GiB"), ("scoring_peak_mib", "peak above fitted MiB"), ("s_per_batch", "s/batch"),
    ("eval_estimate_s", "val+test est. s"), ("fit_s", "fit s"),
]  # fmt: skip


def _status_kib(field: str) -> int:
    """A VmRSS/VmHWM line of /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def measure(scale: str, model_name: str, batches: int) -> dict:
    """Fit, reset the RSS high-water mark, score `batches` test batches; the measured row."""
    import torch

    from benchmarks.worker import compose
    from recarena.utils.instantiate import build

    torch.set_num_threads(1)
    cfg = compose(overrides(scale, model_name, 1), OUT / "runs" / f"chunks-{scale}-{model_name}")
    datamodule, module = build(cfg.data, "data"), build(cfg.model, "model")
    datamodule.setup("fit")
    data = datamodule.data
    start = time.perf_counter()
    module.recommender.fit(data)
    fit_s = time.perf_counter() - start
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    fitted = _status_kib("VmRSS")
    loader = datamodule.test_dataloader()
    seconds, seen = 0.0, 0
    for i, batch in enumerate(loader):
        if i == batches:
            break
        start = time.perf_counter()
        module.recommend(batch["users"], batch["history"], 20, batch["sequences"])
        seconds += time.perf_counter() - start
        seen += 1
    n_eval = len(data.eval_users("val")) + len(data.eval_users("test"))
    per_batch = seconds / max(seen, 1)
    return {
        "model": model_name, "eval_batch": datamodule.eval_batch_size,
        "batch_mib": datamodule.eval_batch_size * data.n_items * 4 / 2**20,
        "fitted_rss_gib": fitted / 2**20, "scoring_peak_mib": (_status_kib("VmHWM") - fitted) / 1024,
        "s_per_batch": per_batch, "eval_estimate_s": per_batch * n_eval / datamodule.eval_batch_size, "fit_s": fit_s,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="ml20m")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this model in this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.scale, args.one, args.batches)))
        return
    rows = []
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for model in args.models.split(","):
        cmd = [sys.executable, "-m", "benchmarks.chunks", "--scale", args.scale, "--batches", str(args.batches),
               "--one", model]  # fmt: skip
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else
                    {"model": model, "eval_batch": f"failed: {done.stderr[-300:]}"})  # fmt: skip
        print(rows[-1], flush=True)
    title = f"## Chunked scoring at {args.scale}: first {args.batches} test batches per model"
    text = f"{title}\n\n{table(rows, COLUMNS)}\n"
    print(text)
    (OUT / f"chunks-{args.scale}-{time.strftime('%Y%m%d-%H%M%S')}.md").write_text(text)


if __name__ == "__main__":
    main()
