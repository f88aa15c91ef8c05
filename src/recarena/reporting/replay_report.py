"""The replay sweep's report: one table and one plot of ndcg@K per window per family, static vs updated, with the
update cost per window (`replay.csv`, `replay.md`, `replay.png` in the sweep folder)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recarena.reporting.jobs import collect_jobs
from recarena.utils.io import atomic_write


def is_replay_sweep(sweep_dir: str | Path) -> bool:
    """Whether the sweep's jobs are replay runs (they write replay.csv instead of metrics.json)."""
    return any(Path(sweep_dir).glob("*/replay.csv"))


def replay_table(sweep_dir: str | Path) -> pl.DataFrame:
    """Every job's replay rows, with its model (and seed) named."""
    frames = []
    for job in collect_jobs(sweep_dir):
        path = job.path / "replay.csv"
        if path.exists():
            frame = pl.read_csv(path).with_columns(model=pl.lit(job.model), seed=pl.lit(job.seed))
            frames.append(frame.select("model", "seed", pl.all().exclude("model", "seed")))
    if not frames:
        raise FileNotFoundError(f"{sweep_dir}: no job has a replay.csv")
    return pl.concat(frames, how="diagonal_relaxed")


def make_replay_report(sweep_dir: str | Path, k: int = 10) -> dict[str, Path]:
    """Write replay.csv (all rows), replay.md (ndcg@k per window, static | updated, and update seconds) and
    replay.png (ndcg@k against the window, one panel per family); returns the paths."""
    sweep_dir = Path(sweep_dir)
    table = replay_table(sweep_dir)
    metric = f"ndcg@{k}"
    means = table.group_by("model", "arm", "window", maintain_order=True).agg(
        pl.col(metric).mean(), pl.col("update_s").mean(), pl.col("users").first()
    )
    files = {
        "csv": atomic_write(sweep_dir / "replay.csv", lambda tmp: table.write_csv(tmp)),
        "md": atomic_write(sweep_dir / "replay.md", lambda tmp: tmp.write_text(to_markdown(means, metric))),
        "png": atomic_write(sweep_dir / "replay.png", lambda tmp: _plot(means, metric, tmp)),
    }
    return files


def to_markdown(means: pl.DataFrame, metric: str) -> str:
    windows = sorted(means["window"].unique().to_list())
    users = {w: means.filter(pl.col("window") == w)["users"].max() for w in windows}
    lines = [
        f"# Replay: {metric} per window, static vs updated",
        "",
        "Each cell: static / updated (the update's seconds before the window). Windows: "
        + ", ".join(f"{w} ({users[w]} users)" for w in windows),
        "",
        "| model | " + " | ".join(f"window {w}" for w in windows) + " | mean static | mean updated |",
        "|---|" + "---|" * (len(windows) + 2),
    ]
    for model in means["model"].unique(maintain_order=True).to_list():
        rows = means.filter(pl.col("model") == model)
        cells, totals = [], {}
        for w in windows:
            static = rows.filter((pl.col("arm") == "static") & (pl.col("window") == w))
            updated = rows.filter((pl.col("arm") == "updated") & (pl.col("window") == w))
            cells.append(f"{static[metric][0]:.4f} / {updated[metric][0]:.4f} ({updated['update_s'][0]:.1f} s)")
        for arm in ("static", "updated"):
            totals[arm] = rows.filter(pl.col("arm") == arm)[metric].mean()
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {totals['static']:.4f} | {totals['updated']:.4f} |")
    return "\n".join(lines) + "\n"


def _plot(means: pl.DataFrame, metric: str, path: Path) -> None:
    models = means["model"].unique(maintain_order=True).to_list()
    figure = Figure(figsize=(3.2 * len(models), 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(models), sharey=True, squeeze=False)[0]
    for axis, model in zip(axes, models, strict=True):
        for arm, style in (("static", "--o"), ("updated", "-s")):
            rows = means.filter((pl.col("model") == model) & (pl.col("arm") == arm)).sort("window")
            axis.plot(rows["window"].to_list(), rows[metric].to_list(), style, label=arm)
        axis.set_title(model)
        axis.set_xlabel("window")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend()
    figure.savefig(path, format="png", dpi=110)
