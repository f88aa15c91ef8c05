"""Validation curves of gradient runs (CSV logger): val ndcg@10 per epoch and against training seconds, as a table
and one PNG, to compare training recipes (e.g. the defaults before and after a change) on quality per CPU-second.

Usage: python -m benchmarks.val_curves NAME=RUN_DIR [NAME=RUN_DIR ...] --out curves.png
A run needs `logger=csv` (or csv among its loggers) and a finished metrics.json (training seconds)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recarena.utils.io import atomic_write

METRIC = "val/ndcg@10"


def curve(run: Path) -> tuple[list[int], list[float], float]:
    """(epochs, val ndcg@10 per epoch, training seconds) of one run folder."""
    files = sorted(run.glob("csv/version_*/metrics.csv"))
    if not files:
        raise FileNotFoundError(f"{run}: no csv/version_*/metrics.csv (train with logger=csv)")
    frame = pl.read_csv(files[-1], infer_schema_length=None)
    if METRIC not in frame.columns:
        raise ValueError(f"{files[-1]}: no {METRIC} column")
    # the training epochs only (those with a train/loss_epoch row): the validation after fit re-scores the best
    # checkpoint under the next epoch number
    trained = frame.filter(pl.col("train/loss_epoch").is_not_null())["epoch"].unique()
    rows = frame.filter(pl.col(METRIC).is_not_null() & pl.col("epoch").is_in(trained.implode())).select("epoch", METRIC)
    rows = rows.unique("epoch", keep="first").sort("epoch")
    timing = json.loads((run / "metrics.json").read_text())["timing"]
    return rows["epoch"].to_list(), rows[METRIC].to_list(), float(timing["train_seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.val_curves", description=__doc__)
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    fig = Figure(figsize=(12, 4.8))
    FigureCanvasAgg(fig)
    by_epoch, by_time = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    print("| run | epochs | train s | best val ndcg@10 (epoch) | s to reach 99% of best |")
    print("|---|---|---|---|---|")
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        epochs, values, seconds = curve(Path(folder))
        per_epoch = seconds / len(epochs)
        times = [(e + 1) * per_epoch for e in epochs]
        best = max(values)
        reach = next(t for t, v in zip(times, values, strict=True) if v >= 0.99 * best)
        print(f"| {name} | {len(epochs)} | {seconds:.0f} | {best:.4f} ({epochs[values.index(best)]}) | {reach:.0f} |")
        by_epoch.plot(epochs, values, marker=".", label=name)
        by_time.plot(times, values, marker=".", label=name)
    by_epoch.set_xlabel("epoch")
    by_time.set_xlabel("training seconds (train_seconds / epochs × epoch)")
    for ax in (by_epoch, by_time):
        ax.set_ylabel(METRIC)
        ax.grid(alpha=0.3)
    by_time.legend(fontsize=8)
    fig.suptitle("Validation ndcg@10 per epoch and per training second", fontweight="bold")
    fig.tight_layout()
    atomic_write(args.out, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
