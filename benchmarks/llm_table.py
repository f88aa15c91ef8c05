"""Runs of `python -m recarena.train` → one markdown table of accuracy, invalid rate, time and memory per run.

Usage: python -m benchmarks.llm_table RUN_DIR [RUN_DIR ...] [--users-from RUN_DIR]
With --users-from, every run's per-user test metrics are also averaged over that run's (sampled) test users, so
models evaluated on all users and on an eval.max_users sample are compared on the same users."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import polars as pl

from recarena.topk import GENERATION_ERRORS

METRICS = ("recall@10", "ndcg@10", "coverage@10")


def row(run: Path, users: pl.Series | None, label: str) -> dict[str, str]:
    saved = json.loads((run / "metrics.json").read_text())
    test, timing, sampling = saved["test"], saved.get("timing", {}), saved.get("sampling", {})
    evaluated = sampling.get("eval_users", {}).get("test")
    total = sampling.get("all_eval_users", {}).get("test")
    out = {"run": label, "test users": f"{evaluated}/{total}" if evaluated != total else str(total)}
    out |= {m: f"{test[m]:.4f}" for m in METRICS}
    out["invalid_rate"] = f"{test['invalid_rate']:.3f}" if "invalid_rate" in test else "—"
    for name in GENERATION_ERRORS:  # title generators: what their raw outputs were (RecLM-eval's error rates)
        out[name] = f"{test[name + '_rate']:.3f}" if name + "_rate" in test else "—"
    if users is not None:
        frame = pl.read_parquet(run / "per_user_metrics.parquet").filter(pl.col("stage") == "test")
        common = frame.filter(pl.col("user").is_in(users.implode()))
        for metric in METRICS[:2]:
            out[f"{metric} (common {common.height})"] = f"{common[metric].mean():.4f}" if common.height else "—"
    train = timing.get("train_seconds", timing.get("fit_seconds"))
    trained_here = (run / ".hydra").is_dir()  # a training run; else a re-evaluation (recarena.eval, grounding_weights)
    out["train s"] = f"{train:.0f}" if train is not None else "0 (zero-shot)" if trained_here else "— (re-evaluated)"
    out["eval s (val+test)"] = f"{timing.get('val_seconds', 0) + timing.get('test_seconds', 0):.0f}"
    out["peak RSS MiB"] = f"{timing['peak_rss_mib']:.0f}" if "peak_rss_mib" in timing else _time_log_rss(run)
    return out


def _time_log_rss(run: Path) -> str:
    """Max RSS from a `/usr/bin/time -v` log saved beside the run folder as <run>.log, when there is one."""
    log = run.with_suffix(".log")
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if "Maximum resident set size" in line:
            return f"{int(line.split()[-1]) / 1024:.0f}"
    return "—"


def labels(runs: list[Path]) -> list[str]:
    """Each run's folder name, or its path under the runs' common folder where two names are the same."""
    names = [run.name for run in runs]
    if len(set(names)) == len(names):
        return names
    resolved = [run.resolve() for run in runs]
    common = Path(os.path.commonpath(resolved))
    return [str(r.relative_to(common)) for r in resolved]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--users-from", type=Path, default=None)
    args = parser.parse_args()
    users = None
    if args.users_from is not None:
        frame = pl.read_parquet(args.users_from / "per_user_metrics.parquet").filter(pl.col("stage") == "test")
        users = frame["user"]
    runs = [run for run in args.runs if (run / "metrics.json").exists()]
    rows = [row(run, users, label) for run, label in zip(runs, labels(runs), strict=True)]
    columns = list(rows[0]) if rows else []
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(r.get(c, "") for c in columns) + " |")


if __name__ == "__main__":
    main()
