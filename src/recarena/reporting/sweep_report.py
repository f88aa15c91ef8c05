"""The report of a sweep: leaderboard.md/.csv, the all-pairs tables, the plots of every split (every dataset and
split), the comparison across datasets (cross_dataset.md/.csv/_cd.png, when the sweep holds several) and one W&B report
run that carries the same tables and figures."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from omegaconf import OmegaConf

from recarena.reporting import cross_dataset
from recarena.reporting.cross_dataset import CrossDataset, cross_dataset_frame
from recarena.reporting.leaderboard import Leaderboard, build_leaderboards, frame_of, to_frame
from recarena.reporting.markdown import to_markdown
from recarena.reporting.plots import plot_report, ranks_across_splits
from recarena.utils.io import atomic_write

log = logging.getLogger(__name__)

WANDB_CHOICES = ("auto", "on", "off")


@dataclass
class Report:
    """What `make_report` produced: one leaderboard per split (per dataset and split), the comparison across datasets
    (None for a one-dataset sweep), the files written and the W&B run folder (if any)."""

    boards: list[Leaderboard]
    files: dict[str, Path] = field(default_factory=dict)
    wandb_dir: Path | None = None
    across: CrossDataset | None = None


def make_report(sweep_dir: str | Path, k: int = 10, alpha: float = 0.05, wandb: str = "auto") -> Report:
    """Write the report files into `sweep_dir`; log them to W&B (`auto`: when the jobs did)."""
    if wandb not in WANDB_CHOICES:
        raise ValueError(f"wandb={wandb!r}: expected one of {WANDB_CHOICES}")
    boards = build_leaderboards(sweep_dir, k=k, alpha=alpha)
    plots = {f"{b.key}/{name}": path for b in boards for name, path in plot_report(b).items()}
    if len(boards) > 1 and any(b.rows for b in boards):
        plots["ranks_across_splits"] = ranks_across_splits(boards, Path(sweep_dir) / "ranks_across_splits.png")
    across = cross_dataset.cross_dataset(boards) if boards[0].multi_data else None
    if across is not None and (diagram := cross_dataset.cd_diagram(across, Path(sweep_dir) / "cross_dataset_cd.png")):
        plots[cross_dataset.CD_PLOT] = diagram
    report = Report(boards, {**write_tables(boards, plots, across), **plots}, across=across)
    settings = wandb_settings(boards)
    if wandb == "on" or (wandb == "auto" and settings is not None):
        try:
            report.wandb_dir = log_report_to_wandb(boards, plots, settings or {}, across)
        except Exception as error:  # the files are the report; a W&B problem must not lose them
            log.warning("report: could not log to W&B (%s: %s); the files are written", type(error).__name__, error)
    return report


def pairwise_frame(board: Leaderboard) -> pl.DataFrame:
    """The all-pairs matrices (all users, cold users) as rows: model_a, model_b, Δ mean a − b, Holm-adjusted
    p-values and the number of users paired."""
    rows = [
        {
            "split": board.split,
            "users": users,
            "metric": pw.metric,
            "model_a": a,
            "model_b": b,
            "mean_diff": float(pw.mean_diff[i, j]),
            "p_ttest_holm": float(pw.p_ttest[i, j]),
            "p_wilcoxon_holm": float(pw.p_wilcoxon[i, j]),
            "n_users": int(pw.n_users[i, j]),
        }
        for users, pw in (("all", board.pairwise), ("cold", board.pairwise_cold))
        if pw is not None
        for i, a in enumerate(pw.labels)
        for j, b in enumerate(pw.labels)
        if i != j
    ]
    return pl.DataFrame(rows, infer_schema_length=None)


def write_tables(
    boards: list[Leaderboard], plots: dict[str, Path], across: CrossDataset | None = None
) -> dict[str, Path]:
    """leaderboard.md, leaderboard.csv (every board, `data` and `split` columns), pairwise_<split>.csv (or
    pairwise_<data>_<split>.csv) and, given `across`, cross_dataset.md/.csv, written atomically."""
    out = boards[0].sweep_dir
    markdown, frame = to_markdown(boards, plots, across), frame_of(boards)
    files = {
        "md": atomic_write(out / "leaderboard.md", lambda tmp: tmp.write_text(markdown)),
        "csv": atomic_write(out / "leaderboard.csv", lambda tmp: frame.write_csv(tmp)),
    }
    for board in boards:
        if board.pairwise is not None and len(board.pairwise.labels) > 1:
            pairs = pairwise_frame(board)
            name = f"pairwise_{board.key or 'all'}"
            files[name] = atomic_write(out / f"{name}.csv", lambda tmp, pairs=pairs: pairs.write_csv(tmp))
    if across is not None:
        text = cross_dataset.to_markdown(across, out.name, plots.get(cross_dataset.CD_PLOT))
        table = cross_dataset_frame(across)
        files["cross_dataset_md"] = atomic_write(out / "cross_dataset.md", lambda tmp: tmp.write_text(text))
        files["cross_dataset_csv"] = atomic_write(out / "cross_dataset.csv", lambda tmp: table.write_csv(tmp))
    return files


def wandb_settings(boards: list[Leaderboard]) -> dict[str, Any] | None:
    """The jobs' W&B logger config (project, entity, mode), or None when no job logged to W&B."""
    for board in boards:
        for job in [*(j for r in board.rows for j in r.jobs), *board.failed]:
            node = OmegaConf.select(job.config, "logger.wandb") if job.config is not None else None
            if node is not None:
                return {key: node.get(key) for key in ("project", "entity", "mode") if isinstance(node.get(key), str)}
    return None


def log_report_to_wandb(
    boards: list[Leaderboard], plots: dict[str, Path], settings: dict[str, Any], across: CrossDataset | None = None
) -> Path | None:
    """One W&B run (job_type="report", group = sweep folder name like the jobs): the `leaderboard` Table of every
    split, a `leaderboard/<split>` and `pairwise/<split>` Table per split (`<data>_<split>` with several datasets),
    the plots as Images (`plots/<split>/...`, the CD diagram as `plots/cross_dataset_cd`), the `cross_dataset` Table,
    the failed jobs, the best model per split and main metric and `friedman/chi2`, `friedman/p`, `nemenyi/cd` in the
    summary. Returns the run's local folder."""
    import wandb

    from recarena.utils.wandb_logger import resolve_mode  # imports Lightning: only when logging

    mode = resolve_mode(settings.get("mode") or "auto")
    if mode == "disabled":
        return None
    sweep_dir = boards[0].sweep_dir
    group = sweep_dir.resolve().name
    run = wandb.init(
        project=settings.get("project") or "recarena",
        entity=settings.get("entity"),
        group=group,
        job_type="report",
        name=f"report-{group}",
        dir=str(sweep_dir),
        mode=mode,
        config={
            "sweep_dir": str(sweep_dir.resolve()),
            "k": boards[0].k,
            "alpha": boards[0].alpha,
            "splits": [b.split for b in boards],
            "datasets": list(dict.fromkeys(b.data for b in boards)),
        },
    )
    try:
        payload: dict[str, Any] = {"leaderboard": _table(wandb, frame_of(boards))}
        for board in boards:
            if board.rows:
                payload[f"leaderboard/{board.key or 'all'}"] = _table(wandb, to_frame(board))
            if board.pairwise is not None and len(board.pairwise.labels) > 1:
                payload[f"pairwise/{board.key or 'all'}"] = _table(wandb, pairwise_frame(board))
        if across is not None:
            payload["cross_dataset"] = _table(wandb, cross_dataset_frame(across))
        for name, path in plots.items():
            payload[f"plots/{name.strip('/')}"] = wandb.Image(str(path), caption=path.name)
        failed = [j for b in boards for j in b.failed]
        if failed:
            rows = [[j.path.name, j.model, j.split, " ".join(j.overrides), j.error or ""] for j in failed]
            payload["failed_jobs"] = wandb.Table(columns=["job", "model", "split", "overrides", "error"], data=rows)
        run.log(payload)
        for board in boards:
            prefix = f"best/{board.key}/" if len(boards) > 1 else "best/"
            for metric, label in board.best_by_metric.items():
                run.summary[f"{prefix}{metric}"] = label
        run.summary["n_failed_jobs"] = len(failed)
        if across is not None and across.friedman is not None:
            fr = across.friedman
            run.summary.update(
                {
                    "friedman/chi2": fr.chi2,
                    "friedman/p": fr.p,
                    "friedman/iman_davenport_f": fr.f,
                    "friedman/iman_davenport_p": fr.p_f,
                    "nemenyi/cd": fr.cd,
                    **{f"friedman/mean_rank/{m}": float(r) for m, r in zip(across.tested, fr.mean_ranks, strict=True)},
                }
            )
        local = Path(run.dir).parent
    finally:
        run.finish()
    if mode == "offline":
        log.info("wandb: offline report run; upload later with: wandb sync %s", local)
    return local


def _table(wandb, frame: pl.DataFrame):
    return wandb.Table(columns=frame.columns, data=[list(r) for r in frame.rows()])
