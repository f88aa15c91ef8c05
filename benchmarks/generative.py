"""Throughput of the generative families: training tokens/s and seconds per epoch, evaluation users/s and peak RSS,
on real ml100k and synthetic data at MovieLens-1M size, at 1 and 2 threads — each run in a fresh process through
`recarena.train`'s road (the default model config, `trainer.max_epochs` epochs, no early stopping).

Usage: python -m benchmarks.generative [--scales ml100k,ml1m] [--models gpt_dgrs,bert_dgrs] [--threads 1,2]
       [--epochs 1] [--extra model.loss=sampled ...]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from benchmarks.scales import SCALES

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("scale", "model", "threads", "epochs", "train_batches", "train_tokens_per_s", "s_per_epoch",
           "eval_users", "eval_users_per_s", "peak_rss_gib", "val_ndcg@10")  # fmt: skip


class TrainClock(pl.Callback):
    """Seconds spent in training batches (forward, backward, optimizer step) and the target tokens they held."""

    def __init__(self) -> None:
        self.seconds, self.tokens, self.batches, self._start = 0.0, 0, 0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # target positions: labels that are not -100 (gpt/bert, llm titles) or the item targets (llm item tokens)
        self.tokens += int((batch["labels"] != -100).sum()) if "labels" in batch else len(batch["targets"])
        self.batches += 1
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._start


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def clock() -> TrainClock:
    """The callback `+callbacks.clock._target_=benchmarks.generative.clock` builds, kept in benchmarks.probe.LAST (this
    file also runs as __main__, a module of its own, so a dict here would not be the one the config filled)."""
    from benchmarks.probe import LAST

    LAST["clock"] = TrainClock()
    return LAST["clock"]


def run_one(scale: str, model: str, epochs: int, extra: list[str], out: Path) -> None:
    """One run in this process; writes its row as JSON."""
    import resource

    from benchmarks.probe import LAST
    from recarena.train import train
    from recarena.utils.compose import compose_train_config

    overrides = [f"model={model}", *SCALES[scale], "logger=none", f"trainer.max_epochs={epochs}",
                 "callbacks.early_stopping=null", "trainer.enable_progress_bar=false",
                 "+callbacks.probe._target_=benchmarks.probe.Probe",
                 "+callbacks.clock._target_=benchmarks.generative.clock", *extra]  # fmt: skip
    with tempfile.TemporaryDirectory() as run_dir:
        results = train(compose_train_config(overrides, Path(run_dir), ROOT / "data"))
    data, evaluator, timer = LAST["datamodule"].data, LAST["evaluator"], LAST["clock"]
    test_users, all_users = len(data.eval_users("test")), data.all_eval_users("test")
    evaluated = f"{test_users:,} of {all_users:,} (sampled)" if test_users < all_users else f"{test_users:,}"
    row = {
        "scale": scale, "model": model, "threads": int(os.environ.get("OMP_NUM_THREADS", "1")), "epochs": epochs,
        "train_tokens_per_s": timer.tokens / timer.seconds, "s_per_epoch": timer.seconds / epochs,
        "train_batches": timer.batches,
        "eval_users": evaluated, "eval_users_per_s": test_users / evaluator.timing["test_seconds"],
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "val_ndcg@10": results.get("val", {}).get("ndcg@10", float("nan")),  # none with trainer.limit_val_batches=0
    }  # fmt: skip
    out.write_text(json.dumps(row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generative", description=__doc__)
    parser.add_argument("--scales", default="ml100k,ml1m")
    parser.add_argument("--models", default="gpt_dgrs,bert_dgrs")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides for every run")
    parser.add_argument("--one", nargs=2, metavar=("SCALE", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one[0], args.one[1], args.epochs, args.extra, args.out)
        return 0
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for scale in args.scales.split(","):
        for model in args.models.split(","):
            for threads in args.threads.split(","):
                env = {
                    **os.environ,
                    **{k: threads for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
                }
                with tempfile.NamedTemporaryFile(suffix=".json") as out:
                    command = [sys.executable, "-m", "benchmarks.generative", "--one", scale, model,
                               "--epochs", str(args.epochs), "--out", out.name, "--extra", *args.extra]  # fmt: skip
                    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
                    if done.returncode != 0:
                        print(f"| {scale} | {model} | {threads} | failed: {done.stderr.strip().splitlines()[-1]} |")
                        continue
                    row: dict[str, Any] = json.loads(Path(out.name).read_text())
                print("| " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |", flush=True)
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
