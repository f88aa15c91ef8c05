"""Sweep folder → one leaderboard per split (per dataset and split when the sweep holds several datasets): every
job's metrics.json and per-user metrics, mean ± std over seeds, paired significance against the best model and between
all pairs, and the failed jobs with their error line."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from omegaconf import OmegaConf

from recarena.evaluation.metrics import ITEM_SLICES
from recarena.evaluation.stats import Summary, holm, paired_tests, summarize
from recarena.reporting.jobs import Job, by_data_split, collect_jobs, datasets_of
from recarena.reporting.pairwise import Pairwise, pairwise_tests
from recarena.utils import resolvers  # noqa: F401  (job configs interpolate ${monitor_k:...})

log = logging.getLogger(__name__)

ACCURACY = ("recall", "precision", "ndcg", "hit", "coverage")
BEYOND = ("novelty", "arp", "gini", "ild")
MAIN = ("recall", "ndcg", "precision")  # metrics tested for significance against the best model
LOWER_IS_BETTER = ("arp", "gini", "fit_s", "eval_s", "peak_mib")
SORT_METRIC = "ndcg"  # the metric sweeps optimise (val/ndcg@10); rows are sorted by its test value
PAIRWISE_METRIC = "ndcg"  # the all-pairs matrix compares per-user ndcg@k


# -- the table -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A leaderboard column: the metrics.json key, its section and which direction is better."""

    key: str
    section: str
    header: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.key.split("@")[0] not in LOWER_IS_BETTER

    @property
    def title(self) -> str:
        return self.header or self.key


@dataclass(frozen=True)
class Comparison:
    """One model against the best model on one metric: mean per-user difference and Holm-adjusted p-values."""

    metric: str
    best: str
    label: str
    n_users: int
    mean_diff: float
    p_ttest: float
    p_wilcoxon: float


@dataclass
class Row:
    """One model (label) over its seeds."""

    label: str
    model: str
    jobs: list[Job]
    stats: dict[str, Summary]
    failed: int = 0

    @property
    def seeds(self) -> list[int | None]:
        return [j.seed for j in self.jobs]


@dataclass
class Leaderboard:
    """Everything the report shows: rows (sorted by the sort metric), columns, significance and failed jobs."""

    sweep_dir: Path
    k: int
    columns: list[Column]
    rows: list[Row]
    failed: list[Job]
    comparisons: list[Comparison]
    alpha: float = 0.05
    cold_threshold: int | None = None
    best_by_metric: dict[str, str] = field(default_factory=dict)
    split: str = ""
    pairwise: Pairwise | None = None  # all pairs on per-user PAIRWISE_METRIC@k
    pairwise_cold: Pairwise | None = None  # the same on the cold users only (train interactions <= cold_threshold)
    data: str = ""  # the jobs' dataset (hydra.runtime.choices.data)
    multi_data: bool = False  # the sweep holds several datasets: titles, file names and W&B keys name the dataset

    @property
    def title(self) -> str:
        """`split` (a one-dataset sweep) or `data · split`, e.g. "ml1m · leave_one_out"."""
        if not self.multi_data:
            return self.split or "all jobs"
        return f"{self.data or 'unknown data'} · {self.split}" if self.split else self.data or "unknown data"

    @property
    def key(self) -> str:
        """The name in file names, plot names and W&B keys: the split, or `<data>_<split>` (several datasets)."""
        if not self.multi_data:
            return self.split
        return "_".join(part for part in (self.data or "unknown", self.split) if part)

    def value(self, label: str, key: str) -> Summary | None:
        row = next((r for r in self.rows if r.label == label), None)
        return row.stats.get(key) if row is not None else None

    def comparison(self, metric: str, label: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.metric == metric and c.label == label), None)

    def best(self, key: str) -> set[str]:
        """Labels with the best mean in a column (ties share it)."""
        column = next(c for c in self.columns if c.key == key)
        means = {r.label: r.stats[key].mean for r in self.rows if key in r.stats and not math.isnan(r.stats[key].mean)}
        if not means:
            return set()
        target = (max if column.higher_is_better else min)(means.values())
        return {label for label, m in means.items() if m == target}


def columns_for(ks: Iterable[int], k: int) -> list[Column]:
    """Accuracy at every K, beyond-accuracy and cold/warm slices at the main K, and times."""
    ks = sorted(set(ks))
    cols = [Column(f"{m}@{k}", "main") for m in ACCURACY]
    cols += [Column(f"{m}@{c}", "cutoffs") for m in ACCURACY for c in ks]
    cols += [Column(f"{m}@{k}", "beyond") for m in BEYOND]
    cols += [Column(f"{m}@{k}/{s}", "slices", f"{m}@{k} {s}") for m in ("recall", "ndcg") for s in ("cold", "warm")]
    cols += [Column(f"{m}@{k}/{s}", "items", f"{m}@{k} {s}") for m in ("recall", "listed") for s in ITEM_SLICES]
    cols += [Column("fit_s", "time", "fit (s)"), Column("eval_s", "time", "test eval (s)")]
    cols += [Column("peak_mib", "time", "peak RSS (MiB)")]
    return cols


def build_leaderboards(sweep_dir: str | Path, k: int = 10, alpha: float = 0.05) -> list[Leaderboard]:
    """Read the sweep and compute one leaderboard per (dataset, split): a sweep over `split=a,b` gets two, one over
    `data=x,y split=a,b` four."""
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    multi_data = len(datasets_of(jobs)) > 1
    boards = []
    for (data, split), members in by_data_split(jobs).items():
        board = build_leaderboard(sweep_dir, members, split, k, alpha)
        board.data, board.multi_data = data, multi_data
        boards.append(board)
    return boards


def build_leaderboard(sweep_dir: Path, jobs: list[Job], split: str, k: int = 10, alpha: float = 0.05) -> Leaderboard:
    """One split's (or one dataset and split's) table, paired tests against the best model, all-pairs matrix and
    failure list."""
    done = [j for j in jobs if j.ok]
    ks = sorted({int(name.split("@")[1]) for j in done for name in j.metrics if re.fullmatch(r"recall@\d+", name)})
    if done and k not in ks:
        raise ValueError(f"report: K={k} is not among the sweep's cut-offs {ks} (pass --k)")
    columns = columns_for(ks or [k], k)
    by_label: dict[str, list[Job]] = {}
    for job in done:
        by_label.setdefault(job.label, []).append(job)
    rows = []
    for label, members in by_label.items():
        stats = {c.key: summarize([j.metrics.get(c.key, math.nan) for j in members]) for c in columns}
        failed = sum(1 for j in jobs if not j.ok and j.label == label)
        rows.append(Row(label, members[0].model, members, stats, failed))
    sort_key = f"{SORT_METRIC}@{k}"
    rows.sort(key=lambda r: -r.stats[sort_key].mean if not math.isnan(r.stats[sort_key].mean) else math.inf)
    board = Leaderboard(sweep_dir, k, columns, rows, [j for j in jobs if not j.ok], [], alpha, split=split)
    board.cold_threshold = _cold_threshold(done)
    metrics = [f"{m}@{k}" for m in MAIN]
    per_user = {r.label: per_user_means(r.jobs, [*metrics, "train_interactions"]) for r in rows}
    board.comparisons, board.best_by_metric = significance(rows, metrics, per_user)
    board.pairwise = pairwise_tests(per_user, f"{PAIRWISE_METRIC}@{k}")
    if board.cold_threshold is not None:
        cold = {label: _cold_users(frame, board.cold_threshold) for label, frame in per_user.items()}
        board.pairwise_cold = pairwise_tests(cold, f"{PAIRWISE_METRIC}@{k}")
    return board


def _cold_users(frame: pl.DataFrame | None, threshold: int) -> pl.DataFrame | None:
    """The per-user rows of the cold slice (as the callback defines it: train interactions <= threshold)."""
    if frame is None or "train_interactions" not in frame.columns:
        return None
    return frame.filter(pl.col("train_interactions") <= threshold)


def _cold_threshold(jobs: list[Job]) -> int | None:
    for job in jobs:
        value = OmegaConf.select(job.config, "eval.cold_threshold") if job.config is not None else None
        if isinstance(value, int):
            return value
    return None


# -- significance ----------------------------------------------------------------------------------------------
def per_user_means(jobs: list[Job], metrics: list[str]) -> pl.DataFrame | None:
    """Per-user test values of `metrics`, averaged over the jobs (seeds) per user; None if a file is missing."""
    frames = []
    for job in jobs:
        path = job.path / "per_user_metrics.parquet"
        if not path.exists():
            return None
        frame = pl.read_parquet(path).filter(pl.col("stage") == "test")
        frames.append(frame.select("user", *[m for m in metrics if m in frame.columns]))
    merged = pl.concat(frames, how="diagonal_relaxed")
    return merged.group_by("user").agg([pl.col(m).mean() for m in merged.columns if m != "user"]).sort("user")


def significance(
    rows: list[Row], metrics: list[str], per_user: dict[str, pl.DataFrame | None]
) -> tuple[list[Comparison], dict[str, str]]:
    """For each metric: paired t-test and Wilcoxon of every model against the best one (highest mean) on per-user
    test values (`per_user`: label → per-user means over seeds, joined on user), Holm-corrected across the models
    compared."""
    comparisons, best_by_metric = [], {}
    for metric in metrics:
        means = {r.label: r.stats[metric].mean for r in rows if not math.isnan(r.stats[metric].mean)}
        if not means:
            continue
        best = max(means, key=means.get)
        best_by_metric[metric] = best
        best_frame = per_user.get(best)
        if best_frame is None or metric not in best_frame.columns:
            continue
        raw = []
        for label in means:
            frame = per_user.get(label)
            if label == best or frame is None or metric not in frame.columns:
                continue
            joined = frame.select("user", pl.col(metric).alias("a")).join(
                best_frame.select("user", pl.col(metric).alias("b")), on="user", how="inner"
            )
            raw.append((label, paired_tests(joined["a"].to_numpy(), joined["b"].to_numpy())))
        p_t = holm([t.t_p for _, t in raw])
        p_w = holm([t.wilcoxon_p for _, t in raw])
        for (label, test), pt, pw in zip(raw, p_t, p_w, strict=True):
            comparisons.append(Comparison(metric, best, label, test.n, test.mean_diff, float(pt), float(pw)))
    return comparisons, best_by_metric


# -- output ------------------------------------------------------------------------------------------------------
def to_frame(board: Leaderboard) -> pl.DataFrame:
    """One row per model: label, model, seeds, every column's mean and std, significance vs the best model."""
    records = []
    for rank, row in enumerate(board.rows, start=1):
        record: dict[str, Any] = {
            "data": board.data,  # the dataset (hydra.runtime.choices.data)
            "split": board.split,
            "rank": rank,  # by test SORT_METRIC@k within the split
            "model": row.label,
            "family": row.model,
            "n_seeds": len(row.jobs),
            "seeds": " ".join(str(s) for s in row.seeds),
            "failed_jobs": row.failed,
            "eval_users": _eval_users(row),  # "100/943 (sampled)" for an eval.max_users row, else "all"
        }
        for column in board.columns:
            if column.key in record:
                continue
            summary = row.stats[column.key]
            record[column.key] = summary.mean
            record[f"{column.key}_std"] = summary.std
        for metric in (f"{m}@{board.k}" for m in MAIN):
            c = board.comparison(metric, row.label)
            record[f"{metric}_diff_vs_best"] = c.mean_diff if c else None
            record[f"{metric}_p_ttest_holm"] = c.p_ttest if c else None
            record[f"{metric}_p_wilcoxon_holm"] = c.p_wilcoxon if c else None
        records.append(record)
    return pl.DataFrame(records, infer_schema_length=None)


def frame_of(boards: list[Leaderboard]) -> pl.DataFrame:
    """Every board's rows in one frame (the `data` and `split` columns say which)."""
    frames = [to_frame(b) for b in boards if b.rows]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame({"data": [], "split": [], "model": []})


def _eval_users(row: Row) -> str:
    sampled = sorted({j.sampled for j in row.jobs if j.sampled is not None})
    return ", ".join(f"{n}/{total} (sampled)" for n, total in sampled) if sampled else "all"


def slice_users(board: Leaderboard) -> dict[str, str]:
    """Test users in the cold and warm slices (metrics.json `users/cold`, `users/warm`) over the split's jobs scored
    on all users: one number, or "lowest–highest" when the seeds' data or split differ (a seeded split or source)."""
    return _slice_counts(board, "users", ("cold", "warm"))


def slice_interactions(board: Leaderboard) -> dict[str, str]:
    """Test interactions in each item slice (metrics.json `interactions/<slice>`), counted like slice_users."""
    return _slice_counts(board, "interactions", ITEM_SLICES)


def _slice_counts(board: Leaderboard, what: str, names: Sequence[str]) -> dict[str, str]:
    jobs = [j for r in board.rows for j in r.jobs]
    full = [j for j in jobs if j.sampled is None] or jobs
    counts = {}
    for name in names:
        values = {int(v) for j in full if (v := j.metrics.get(f"{what}/{name}")) is not None and not math.isnan(v)}
        counts[name] = "n/a" if not values else (
            str(min(values)) if len(values) == 1 else f"{min(values)}–{max(values)}"
        )  # fmt: skip
    return counts
