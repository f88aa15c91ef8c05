"""Sweep folder → leaderboard: every job's metrics.json and per-user metrics, mean ± std over seeds, paired
significance against the best model, failed jobs with their error line; written as leaderboard.md/.csv."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from omegaconf import DictConfig, OmegaConf

from recarena.evaluation.stats import Summary, holm, paired_tests, summarize
from recarena.reporting.plots import plot_report
from recarena.utils import resolvers  # noqa: F401  (job configs interpolate ${monitor_k:...})
from recarena.utils.io import atomic_write

log = logging.getLogger(__name__)

ACCURACY = ("recall", "precision", "ndcg", "hit", "coverage")
BEYOND = ("novelty", "arp", "gini", "ild")
MAIN = ("recall", "ndcg", "precision")  # metrics tested for significance against the best model
LOWER_IS_BETTER = ("arp", "gini", "fit_s", "eval_s")
SORT_METRIC = "ndcg"  # the metric sweeps optimise (val/ndcg@10); rows are sorted by its test value
_ERROR_LINE = re.compile(r"(Error|Exception)\b|\[ERROR\]")
_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[[A-Z]+\] - ")
_NOT_JOBS = {"wandb"}
WANDB_CHOICES = ("auto", "on", "off")


# -- jobs ----------------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One job folder of a sweep: its config, test metrics (None when it failed) and error line."""

    path: Path
    model: str
    seed: int | None = None
    overrides: list[str] = field(default_factory=list)
    config: DictConfig | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None
    label: str = ""
    sampled: tuple[int, int] | None = None  # (evaluated, all) test users of an eval.max_users run

    @property
    def ok(self) -> bool:
        return self.metrics is not None


def collect_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job folder directly under `sweep_dir` (one with .hydra/, metrics.json or a log), in job order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep folder")
    folders = [
        p
        for p in sweep_dir.iterdir()
        if p.is_dir()
        and not p.name.startswith((".", "_"))
        and p.name not in _NOT_JOBS
        and ((p / ".hydra").is_dir() or (p / "metrics.json").exists() or any(p.glob("*.log")))
    ]
    if not folders:
        single = (sweep_dir / "metrics.json").exists()
        hint = " (a single run's folder: pass the sweep folder above it)" if single else ""
        raise FileNotFoundError(f"{sweep_dir}: no job folders (sub-folders with .hydra/ or metrics.json){hint}")
    jobs = [read_job(p) for p in sorted(folders, key=_job_order)]
    assign_labels(jobs)
    return jobs


def read_job(path: Path) -> Job:
    """Read one job folder; a job without test metrics is failed, with the last error line of its logs."""
    hydra_dir = path / ".hydra"
    config = OmegaConf.load(hydra_dir / "config.yaml") if (hydra_dir / "config.yaml").exists() else None
    model = _model_name(path)
    overrides = [str(o) for o in OmegaConf.load(o_path)] if (o_path := hydra_dir / "overrides.yaml").exists() else []
    seed = config.get("seed") if config is not None else None
    job = Job(path=path, model=model, seed=int(seed) if isinstance(seed, int) else None, overrides=overrides)
    job.config = config
    metrics_file = path / "metrics.json"
    saved = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    if "test" in saved:
        timing = saved.get("timing", {})
        job.metrics = {**saved["test"], **_times(timing)}
        sampling = saved.get("sampling") or {}
        if sampling.get("eval_max_users") is not None:
            job.sampled = (int(sampling["eval_users"]["test"]), int(sampling["all_eval_users"]["test"]))
    else:
        reason = "metrics.json has no test stage" if saved else "no metrics.json"
        job.error = last_error_line(path) or f"{reason} (unfinished, or no error line in its logs)"
    return job


def last_error_line(path: Path, tail_bytes: int = 1 << 20) -> str | None:
    """The last line mentioning an Error/Exception in the job's `*.log` files (log prefix stripped)."""
    found = None
    for log_file in sorted(path.glob("*.log")):
        with open(log_file, "rb") as handle:
            handle.seek(max(0, log_file.stat().st_size - tail_bytes))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
        for line in lines:
            if _ERROR_LINE.search(line):
                found = _LOG_PREFIX.sub("", line.strip())
    return found[:500] if found else None


def assign_labels(jobs: list[Job]) -> None:
    """Label = model name plus the overrides that vary between jobs (seed excepted), e.g. `itemcf (k=50)`."""
    parsed = [dict(_split_override(o) for o in job.overrides) for job in jobs]
    known = [p for job, p in zip(jobs, parsed, strict=True) if job.config is not None]  # jobs with a .hydra record
    keys = sorted({k for p in known for k in p})
    varying = [
        k
        for k in keys
        if k not in ("seed", "model") and not k.startswith("hydra") and len({p.get(k) for p in known}) > 1
    ]
    for job, values in zip(jobs, parsed, strict=True):
        extra = ", ".join(f"{_short(k)}={values[k]}" for k in varying if k in values)
        job.label = f"{job.model} ({extra})" if extra else job.model


def _model_name(path: Path) -> str:
    """hydra.runtime.choices.model from .hydra/hydra.yaml, else the `<num>-<model>` folder name's model part."""
    hydra_yaml = path / ".hydra" / "hydra.yaml"
    if hydra_yaml.exists():
        choice = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.choices.model")
        if choice:
            return str(choice)
    match = re.fullmatch(r"\d+-(.+)", path.name)
    return match.group(1) if match else path.name


def _times(timing: dict[str, float]) -> dict[str, float]:
    """fit_s: fitting (fit-once) or training time; eval_s: test evaluation time."""
    fit = timing.get("fit_seconds", timing.get("train_seconds"))
    return {"fit_s": float(fit) if fit is not None else math.nan, "eval_s": float(timing.get("test_seconds", math.nan))}


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def _short(key: str) -> str:
    for prefix in ("model.recommender.", "model."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _job_order(path: Path) -> tuple:
    head = re.match(r"(\d+)", path.name)
    return (0, int(head.group(1)), path.name) if head else (1, 0, path.name)


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
    cols += [Column("fit_s", "time", "fit (s)"), Column("eval_s", "time", "test eval (s)")]
    return cols


def build_leaderboard(sweep_dir: str | Path, k: int = 10, alpha: float = 0.05) -> Leaderboard:
    """Read the sweep and compute the table, the paired tests against the best model and the failure list."""
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
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
    board = Leaderboard(sweep_dir, k, columns, rows, [j for j in jobs if not j.ok], [], alpha)
    board.cold_threshold = _cold_threshold(done)
    board.comparisons, board.best_by_metric = significance(rows, [f"{m}@{k}" for m in MAIN])
    return board


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


def significance(rows: list[Row], metrics: list[str]) -> tuple[list[Comparison], dict[str, str]]:
    """For each metric: paired t-test and Wilcoxon of every model against the best one (highest mean) on per-user
    test values (joined on user), Holm-corrected across the models compared."""
    per_user = {r.label: per_user_means(r.jobs, metrics) for r in rows}
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
    for row in board.rows:
        record: dict[str, Any] = {
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


def _eval_users(row: Row) -> str:
    sampled = sorted({j.sampled for j in row.jobs if j.sampled is not None})
    return ", ".join(f"{n}/{total} (sampled)" for n, total in sampled) if sampled else "all"


def _fmt(key: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    name = key.split("@")[0]
    if name in ("fit_s", "eval_s"):
        return f"{value:.3g}"
    if name in ("arp", "novelty"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def _cell(board: Leaderboard, row: Row, column: Column) -> str:
    summary = row.stats[column.key]
    text = _fmt(column.key, summary.mean)
    if not math.isnan(summary.std):
        text += f" ± {_fmt(column.key, summary.std)}"
    if row.label in board.best(column.key):
        text = f"**{text}**"
    comparison = board.comparison(column.key, row.label)
    if comparison is not None and comparison.p_wilcoxon < board.alpha and comparison.mean_diff < 0:
        text += " †"
    return text


def _table(board: Leaderboard, columns: list[Column], with_seeds: bool = False) -> list[str]:
    head = ["model", *(["seeds"] if with_seeds else []), *(c.title for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for row in board.rows:
        cells = [row.label, *([str(len(row.jobs))] if with_seeds else []), *(_cell(board, row, c) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else (f"{value:.2e}" if value < 1e-3 else f"{value:.3f}")


def to_markdown(board: Leaderboard, plots: dict[str, Path] | None = None) -> str:
    """The human-readable report: tables by section, significance, failed jobs and the plots."""
    k, sections = board.k, {}
    for column in board.columns:
        sections.setdefault(column.section, []).append(column)
    n_jobs = sum(len(r.jobs) for r in board.rows)
    cold = f"≤ {board.cold_threshold}" if board.cold_threshold is not None else "few"
    lines = [
        f"# Leaderboard: {board.sweep_dir.name}",
        "",
        f"{_count(n_jobs, 'finished job')}, {_count(len(board.rows), 'model')}, {len(board.failed)} failed. "
        "Test stage; each cell is the "
        "mean ± std over seeds (sample std; one seed shows the mean only). Best per column in **bold** (highest; "
        f"lowest for ARP, Gini and times). Rows sorted by {SORT_METRIC}@{k}.",
        f"† = below the best model of that column with Holm-adjusted Wilcoxon p < {board.alpha} (paired on per-user "
        "test values, each user's values averaged over seeds first).",
        *_sampled_lines(board),
        "",
        f"## Accuracy @{k}",
        *_table(board, sections.get("main", []), with_seeds=True),
        "",
        "## Accuracy at every cut-off",
        *_table(board, sections.get("cutoffs", [])),
        "",
        f"## Beyond accuracy @{k}",
        "novelty: mean −log2(popularity share); ARP: mean train popularity; Gini: 0 = every item recommended "
        "equally often; ILD: mean pairwise dissimilarity within a list.",
        "",
        *_table(board, sections.get("beyond", [])),
        "",
        f"## Cold ({cold} train interactions) vs warm users",
        *_table(board, sections.get("slices", [])),
        "",
        "## Time",
        "fit: fitting (non-gradient models) or training time; test eval: scoring and evaluating the test users.",
        "",
        *_table(board, sections.get("time", [])),
        "",
        *_significance_lines(board),
        *_failed_lines(board),
    ]
    if plots:
        lines += ["## Plots", ""] + [f"![{name}]({path.name})" for name, path in plots.items()] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _sampled_lines(board: Leaderboard) -> list[str]:
    """A warning naming every row scored on a sample of users (eval.max_users), so it is never read as a full run."""
    sampled = sorted({(r.label, j.sampled) for r in board.rows for j in r.jobs if j.sampled is not None})
    if not sampled:
        return []
    rows = "; ".join(f"**{label}** on {n} of {total} test users" for label, (n, total) in sampled)
    return [
        f"⚠ SAMPLED EVALUATION (eval.max_users): {rows}. Their coverage and Gini are over the sample's lists only, "
        "and significance tests pair them with other models on the users both scored."
    ]


def _significance_lines(board: Leaderboard) -> list[str]:
    lines = [
        "## Significance against the best model",
        "Paired two-sided tests on per-user test values (users joined across models); p-values Holm-adjusted "
        "across the models compared for each metric and test. Δ = model − best (mean over users).",
        "",
    ]
    if not board.comparisons:
        return [*lines, "No comparison (fewer than two models with per-user metrics).", ""]
    lines += ["| metric | best | model | Δ mean | p t-test (Holm) | p Wilcoxon (Holm) | users |", "|---" * 7 + "|"]
    for c in board.comparisons:
        lines.append(
            f"| {c.metric} | {c.best} | {c.label} | {c.mean_diff:+.4f} | {_p(c.p_ttest)} | {_p(c.p_wilcoxon)} "
            f"| {c.n_users} |"
        )
    return [*lines, ""]


def _failed_lines(board: Leaderboard) -> list[str]:
    if not board.failed:
        return []
    lines = ["## Failed jobs", "", "| job | model | overrides | error |", "|---|---|---|---|"]
    for job in board.failed:
        error = (job.error or "").replace("|", "\\|")
        overrides = " ".join(job.overrides).replace("|", "\\|")
        lines.append(f"| {job.path.name} | {job.model} | {overrides} | {error} |")
    return [*lines, ""]


def write_leaderboard(board: Leaderboard, plots: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write leaderboard.md and leaderboard.csv atomically into the sweep folder."""
    out = board.sweep_dir
    markdown = to_markdown(board, plots)
    frame = to_frame(board)
    return {
        "md": atomic_write(out / "leaderboard.md", lambda tmp: tmp.write_text(markdown)),
        "csv": atomic_write(out / "leaderboard.csv", lambda tmp: frame.write_csv(tmp)),
    }


# -- the report: files, plots, W&B -------------------------------------------------------------------------


@dataclass
class Report:
    """What `make_report` produced: the leaderboard, the files written and the W&B run folder (if any)."""

    board: Leaderboard
    files: dict[str, Path] = field(default_factory=dict)
    wandb_dir: Path | None = None


def make_report(sweep_dir: str | Path, k: int = 10, alpha: float = 0.05, wandb: str = "auto") -> Report:
    """Write leaderboard.md/.csv and the plots into `sweep_dir`; log them to W&B (`auto`: when the jobs did)."""
    if wandb not in WANDB_CHOICES:
        raise ValueError(f"wandb={wandb!r}: expected one of {WANDB_CHOICES}")
    board = build_leaderboard(sweep_dir, k=k, alpha=alpha)
    plots = plot_report(board)
    report = Report(board, {**write_leaderboard(board, plots), **plots})
    settings = wandb_settings(board)
    if wandb == "on" or (wandb == "auto" and settings is not None):
        try:
            report.wandb_dir = log_report_to_wandb(board, plots, settings or {})
        except Exception as error:  # the files are the report; a W&B problem must not lose them
            log.warning("report: could not log to W&B (%s: %s); the files are written", type(error).__name__, error)
    return report


def wandb_settings(board: Leaderboard) -> dict[str, Any] | None:
    """The jobs' W&B logger config (project, entity, mode), or None when no job logged to W&B."""
    for job in [*(j for r in board.rows for j in r.jobs), *board.failed]:
        node = OmegaConf.select(job.config, "logger.wandb") if job.config is not None else None
        if node is not None:
            return {key: node.get(key) for key in ("project", "entity", "mode") if isinstance(node.get(key), str)}
    return None


def log_report_to_wandb(board: Leaderboard, plots: dict[str, Path], settings: dict[str, Any]) -> Path | None:
    """One W&B run (job_type="report", group = sweep folder name like the jobs): leaderboard Table, plot Images,
    failed jobs Table and the best model per main metric in the summary. Returns the run's local folder."""
    import wandb

    from recarena.utils.wandb_logger import resolve_mode  # imports Lightning: only when logging

    mode = resolve_mode(settings.get("mode") or "auto")
    if mode == "disabled":
        return None
    group = board.sweep_dir.resolve().name
    run = wandb.init(
        project=settings.get("project") or "recarena",
        entity=settings.get("entity"),
        group=group,
        job_type="report",
        name=f"report-{group}",
        dir=str(board.sweep_dir),
        mode=mode,
        config={"sweep_dir": str(board.sweep_dir.resolve()), "k": board.k, "alpha": board.alpha},
    )
    try:
        frame = to_frame(board)
        payload: dict[str, Any] = {
            "leaderboard": wandb.Table(columns=frame.columns, data=[list(r) for r in frame.rows()])
        }
        for name, path in plots.items():
            payload[f"plots/{name}"] = wandb.Image(str(path), caption=path.name)
        if board.failed:
            rows = [[j.path.name, j.model, " ".join(j.overrides), j.error or ""] for j in board.failed]
            payload["failed_jobs"] = wandb.Table(columns=["job", "model", "overrides", "error"], data=rows)
        run.log(payload)
        for metric, label in board.best_by_metric.items():
            run.summary[f"best/{metric}"] = label
        run.summary["n_failed_jobs"] = len(board.failed)
        local = Path(run.dir).parent
    finally:
        run.finish()
    if mode == "offline":
        log.info("wandb: offline report run; upload later with: wandb sync %s", local)
    return local
