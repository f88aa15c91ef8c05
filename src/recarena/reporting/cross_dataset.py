"""Models compared across datasets (Demšar 2006, "Statistical comparisons of classifiers over multiple data sets"):
a models × datasets table of one test metric (mean over seeds) with each model's rank on every dataset, the mean
ranks, the Friedman test with the Iman–Davenport F, the Nemenyi critical difference and pairwise p-values, and the
critical-difference diagram. A "dataset" is one (data, split) leaderboard; a "model" is a leaderboard label."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from recarena.reporting.leaderboard import SORT_METRIC, Column, Leaderboard
from recarena.utils.io import atomic_write

CD_PLOT = "cross_dataset_cd"  # the diagram's name among the report's plots (file: cross_dataset_cd.png)


@dataclass(frozen=True)
class Friedman:
    """The Friedman test of k models (treatments) over N datasets (blocks) on their ranks (1 = best, ties averaged),
    with the Iman–Davenport F and the Nemenyi critical difference at `alpha`."""

    ranks: np.ndarray  # N × k: each model's rank on each dataset
    chi2: float  # χ²_F = 12N/(k(k+1)) [Σ_j R_j² − k(k+1)²/4], divided by the tie correction (1 when nothing ties)
    p: float  # P(χ²(k − 1) ≥ χ²_F)
    f: float  # Iman–Davenport F = (N − 1) χ²_F / (N(k − 1) − χ²_F)
    p_f: float  # P(F(k − 1, (k − 1)(N − 1)) ≥ F)
    q_alpha: float  # the Studentized range quantile at 1 − alpha (k groups, infinite dof) divided by √2
    cd: float  # Nemenyi critical difference q_α √(k(k+1)/(6N)): mean ranks further apart differ significantly
    alpha: float

    @property
    def n_datasets(self) -> int:
        return int(self.ranks.shape[0])

    @property
    def n_models(self) -> int:
        return int(self.ranks.shape[1])

    @property
    def mean_ranks(self) -> np.ndarray:
        """R_j: each model's rank averaged over the datasets (lower is better)."""
        return self.ranks.mean(axis=0)


@dataclass
class CrossDataset:
    """One metric across the sweep's datasets: values and ranks (models × datasets), the models left out of the test
    and why, and the Friedman/Nemenyi results (None, with `note` saying why, when there is nothing to test)."""

    metric: str
    alpha: float
    datasets: list[str]  # board titles, e.g. "ml1m · leave_one_out": the table's columns
    keys: list[str]  # board keys, e.g. "ml1m_leave_one_out": the csv's column prefixes
    models: list[str]  # the table's rows: tested models by mean rank, then the models left out
    values: np.ndarray  # models × datasets: test metric, mean over seeds (NaN: no finished job)
    ranks: np.ndarray  # models × datasets: rank among the tested models (1 = best, ties averaged; NaN if left out)
    tested: list[str]  # the models with a value on every dataset: the Friedman test's treatments
    left_out: dict[str, str] = field(default_factory=dict)  # model → why it is not in the test
    sampled: list[str] = field(default_factory=list)  # models scored on a user sample: labelled, never ranked
    empty: list[str] = field(default_factory=list)  # leaderboards without any value, not counted as datasets
    friedman: Friedman | None = None
    nemenyi: np.ndarray | None = None  # tested × tested Nemenyi p-values (scikit-posthocs), 1 on the diagonal
    note: str = ""  # why there is no test ("" when there is one)

    def mean_rank(self, model: str) -> float:
        """A model's mean rank over the datasets (NaN when it is left out)."""
        return float(np.nanmean(self.ranks[self.models.index(model)])) if model in self.tested else math.nan


# -- the statistics ----------------------------------------------------------------------------------------------
def rank_models(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Ranks within each row of `values` (datasets × models): 1 = best, tied models share their average rank."""
    values = np.asarray(values, dtype=float)
    return stats.rankdata(-values if higher_is_better else values, method="average", axis=1)


def critical_difference(n_models: int, n_datasets: int, alpha: float = 0.05) -> float:
    """Nemenyi's CD = q_α √(k(k+1)/(6N)), q_α = the Studentized range quantile (k groups, ∞ dof) / √2."""
    q_alpha = float(stats.studentized_range.ppf(1 - alpha, n_models, np.inf)) / math.sqrt(2)
    return q_alpha * math.sqrt(n_models * (n_models + 1) / (6 * n_datasets))


def friedman_test(values: np.ndarray, alpha: float = 0.05, higher_is_better: bool = True) -> Friedman:
    """Friedman χ²_F and Iman–Davenport F on `values` (N datasets × k models, complete), as in Demšar (2006), with
    the usual correction for ties (so χ²_F equals scipy.stats.friedmanchisquare), and the Nemenyi CD at `alpha`."""
    values = np.asarray(values, dtype=float)
    n, k = values.shape
    if n < 2 or k < 2 or np.isnan(values).any():
        raise ValueError(f"the Friedman test needs ≥ 2 datasets and ≥ 2 models, all values known; got {n} × {k}")
    ranks = rank_models(values, higher_is_better)
    mean_ranks = ranks.mean(axis=0)
    chi2 = 12 * n / (k * (k + 1)) * (float(np.sum(mean_ranks**2)) - k * (k + 1) ** 2 / 4)
    ties = sum(float(t**3 - t) for row in ranks for t in np.unique(row, return_counts=True)[1])
    correction = 1 - ties / (n * k * (k * k - 1))
    chi2 = chi2 / correction if correction > 0 else 0.0  # every model tied on every dataset: no difference at all
    denominator = n * (k - 1) - chi2
    f = (n - 1) * chi2 / denominator if denominator > 0 else math.inf  # ranks agree perfectly on every dataset
    q_alpha = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return Friedman(
        ranks=ranks,
        chi2=chi2,
        p=float(stats.chi2.sf(chi2, k - 1)),
        f=f,
        p_f=float(stats.f.sf(f, k - 1, (k - 1) * (n - 1))),
        q_alpha=q_alpha,
        cd=q_alpha * math.sqrt(k * (k + 1) / (6 * n)),
        alpha=alpha,
    )


def nemenyi_pvalues(values: np.ndarray, models: list[str]) -> np.ndarray:
    """Nemenyi's pairwise p-values (models × models) on `values` (datasets × models), from scikit-posthocs."""
    import pandas as pd
    import scikit_posthocs

    frame = pd.DataFrame(np.asarray(values, dtype=float), columns=list(models))
    return scikit_posthocs.posthoc_nemenyi_friedman(frame).loc[list(models), list(models)].to_numpy(dtype=float)


# -- from the leaderboards -----------------------------------------------------------------------------------------
def cross_dataset(boards: list[Leaderboard], metric: str | None = None, alpha: float | None = None) -> CrossDataset:
    """Compare the boards' models on `metric` (default: test SORT_METRIC@k of the report): only the models with a
    value on every dataset enter the Friedman test; fewer than 2 datasets or 2 such models give a note, no test."""
    k = boards[0].k if boards else 10
    metric = metric or f"{SORT_METRIC}@{k}"
    alpha = alpha if alpha is not None else (boards[0].alpha if boards else 0.05)
    higher = Column(metric, "").higher_is_better
    means = {b.title: {r.label: s.mean for r in b.rows if (s := r.stats.get(metric)) is not None} for b in boards}
    means = {title: {m: v for m, v in row.items() if not math.isnan(v)} for title, row in means.items()}
    used = [b for b in boards if means[b.title]]
    empty = [b.title for b in boards if not means[b.title]]
    datasets, keys = [b.title for b in used], [b.key for b in used]
    labels = list(dict.fromkeys(label for b in used for label in means[b.title]))
    # a model scored on a sample of users (eval.max_users) is not ranked against models scored on every user
    sampled: dict[str, list[str]] = {}
    for board in used:
        for row in board.rows:
            if any(job.sampled for job in row.jobs):
                sampled.setdefault(row.label, []).append(board.title)
    tested = [m for m in labels if all(m in means[d] for d in datasets) and m not in sampled]
    left_out = {
        m: "no finished job (or no " + metric + ") on " + ", ".join(d for d in datasets if m not in means[d])
        for m in labels
        if m not in tested and m not in sampled
    }
    left_out |= {
        m: "scored on a sample of users (eval.max_users) on " + ", ".join(where) + ", not on every user as the others"
        for m, where in sampled.items()
    }
    complete = np.array([[means[d][m] for m in tested] for d in datasets], dtype=float).reshape(len(datasets), -1)
    ranks_t = rank_models(complete, higher) if complete.size else complete  # datasets × tested models
    friedman, nemenyi, note = None, None, ""
    if len(datasets) < 2 or len(tested) < 2:
        note = (
            f"No Friedman test: it needs at least 2 datasets and 2 models with a value on every dataset; this sweep "
            f"has {len(datasets)} dataset{'' if len(datasets) == 1 else 's'} with results and {len(tested)} such "
            f"model{'' if len(tested) == 1 else 's'}."
        )
    else:
        friedman = friedman_test(complete, alpha, higher)
        nemenyi = nemenyi_pvalues(complete, tested)
    order = sorted(range(len(tested)), key=lambda j: (ranks_t[:, j].mean(), j)) if tested else []
    tested = [tested[j] for j in order]
    if friedman is not None:
        friedman = replace(friedman, ranks=friedman.ranks[:, order])
        nemenyi = nemenyi[np.ix_(order, order)]
    models = [*tested, *(m for m in labels if m not in tested)]
    values = np.array([[means[d].get(m, math.nan) for d in datasets] for m in models], dtype=float)
    ranks = np.full(values.shape, np.nan)
    if tested:
        ranks[: len(tested)] = ranks_t[:, order].T
    return CrossDataset(
        metric=metric,
        alpha=alpha,
        datasets=datasets,
        keys=keys,
        models=models,
        values=values.reshape(len(models), len(datasets)),
        ranks=ranks,
        tested=tested,
        left_out=left_out,
        sampled=list(sampled),
        empty=empty,
        friedman=friedman,
        nemenyi=nemenyi,
        note=note,
    )


def cross_dataset_frame(result: CrossDataset) -> pl.DataFrame:
    """One row per model: whether it is tested, its mean rank, then per dataset `<key>/<metric>` (mean over seeds)
    and `<key>/rank` (cross_dataset.csv and the W&B `cross_dataset` Table)."""
    records = []
    for i, model in enumerate(result.models):
        record: dict[str, object] = {
            "model": model,
            "in_test": model in result.tested,
            "sampled": model in result.sampled,
            "mean_rank": _or_none(result.mean_rank(model)),
        }
        for j, key in enumerate(result.keys):
            record[f"{key}/{result.metric}"] = _or_none(float(result.values[i, j]))
            record[f"{key}/rank"] = _or_none(float(result.ranks[i, j]))
        records.append(record)
    if not records:
        return pl.DataFrame({"model": [], "in_test": [], "sampled": [], "mean_rank": []})
    return pl.DataFrame(records, infer_schema_length=None)


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


# -- markdown ----------------------------------------------------------------------------------------------------
def markdown_lines(result: CrossDataset, plot: Path | None = None) -> list[str]:
    """The section body (no heading): the models × datasets table, Friedman, Iman–Davenport, Nemenyi, the diagram."""
    n = len(result.datasets)
    lines = [
        f"Test {result.metric} (mean over seeds) of every model on each of the {n} dataset{'' if n == 1 else 's'} "
        f"(one dataset = one data · split leaderboard) and, in brackets, its rank there among the models tested "
        "(1 = best; tied models share their average rank). Mean rank: over the datasets, lower is better.",
        "",
    ]
    head = ["model", "mean rank", *result.datasets]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for i, model in enumerate(result.models):
        mean = result.mean_rank(model)
        label = f"{model} (sampled users)" if model in result.sampled else model
        cells = [label, "—" if math.isnan(mean) else f"{mean:.2f}"]
        for j in range(n):
            value, rank = result.values[i, j], result.ranks[i, j]
            text = "—" if math.isnan(value) else f"{value:.4f}"
            cells.append(text if math.isnan(rank) else f"{text} ({rank:g})")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if result.empty:
        lines += [f"Not counted as datasets (no finished job): {', '.join(result.empty)}.", ""]
    if result.left_out:
        why = "; ".join(f"**{model}**: {reason}" for model, reason in result.left_out.items())
        lines += [f"Left out of the test (the Friedman test needs every model on every dataset): {why}.", ""]
    if result.friedman is None:
        return [*lines, result.note, ""]
    fr, a = result.friedman, result.alpha
    k, n = fr.n_models, fr.n_datasets
    verdict = "the models' ranks differ" if fr.p_f < a else "no evidence that the models' ranks differ"
    lines += [
        f"**Friedman test** ({k} models over {n} datasets): χ²_F = {fr.chi2:.3f} (χ², {k - 1} dof), p = {_p(fr.p)}; "
        f"**Iman–Davenport** F = {fr.f:.3f} (F({k - 1}, {(k - 1) * (n - 1)})), p = {_p(fr.p_f)}: {verdict} "
        f"(α = {a}). χ²_F = 12N/(k(k+1)) [Σ R_j² − k(k+1)²/4], corrected for ties.",
        "",
        f"**Nemenyi critical difference**: CD = q_α √(k(k+1)/(6N)) = {fr.q_alpha:.3f} · √({k}·{k + 1}/(6·{n})) = "
        f"{fr.cd:.3f}; two models whose mean ranks differ by more than CD differ significantly (α = {a}).",
        "",
        "Nemenyi pairwise p-values (scikit-posthocs):",
        "",
        "| model | " + " | ".join(result.tested) + " |",
        "|---" * (len(result.tested) + 1) + "|",
    ]
    for i, model in enumerate(result.tested):
        cells = ["—" if i == j else _p(float(result.nemenyi[i, j])) + (" *" if result.nemenyi[i, j] < a else "")
                 for j in range(len(result.tested))]  # fmt: skip
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", f"\\* = p < {a}.", ""]
    if plot is not None:
        lines += [f"![{CD_PLOT}]({plot.name})", ""]
    return lines


def to_markdown(result: CrossDataset, sweep_name: str, plot: Path | None = None) -> str:
    """cross_dataset.md: the section under its own title."""
    return "\n".join([f"# Across datasets: {sweep_name}", "", *markdown_lines(result, plot)]).rstrip() + "\n"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else (f"{value:.2e}" if value < 1e-3 else f"{value:.3f}")


# -- the diagram -------------------------------------------------------------------------------------------------
def cd_diagram_figure(result: CrossDataset) -> Figure:
    """The critical-difference diagram (scikit-posthocs): mean ranks on an axis, a bar joining the models Nemenyi
    cannot tell apart, and the CD as a scale bar."""
    import pandas as pd
    import scikit_posthocs

    fr = result.friedman
    if fr is None or result.nemenyi is None:
        raise ValueError(f"no critical-difference diagram without a Friedman test: {result.note}")
    ranks = pd.Series(fr.mean_ranks, index=result.tested)
    p_values = pd.DataFrame(result.nemenyi, index=result.tested, columns=result.tested)
    fig = Figure(figsize=(8.0, 2.2 + 0.32 * len(result.tested)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    scikit_posthocs.critical_difference_diagram(
        ranks, p_values, cd=fr.cd, alpha=result.alpha, ax=ax,
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}",
    )  # fmt: skip
    k = len(result.tested)
    ax.set_xlim(1, k)  # the whole rank scale, 1 (best) to k, as in Demšar's diagrams
    ax.set_xticks(np.arange(1, k + 1))
    best = result.tested[0]
    verdict = f"Friedman/Iman–Davenport p = {_p(fr.p_f)}"
    fig.suptitle(f"{best} has the best mean rank ({fr.mean_ranks[0]:.2f}); {verdict}", fontsize=11, fontweight="bold")
    fig.text(
        0.5,
        0.01,
        f"Mean rank on test {result.metric} over {fr.n_datasets} datasets (1 = best); a bar joins the models Nemenyi "
        f"cannot tell apart (α = {result.alpha}); CD = {fr.cd:.2f}",
        ha="center",
        va="bottom",
        fontsize=9,
    )
    fig.subplots_adjust(top=0.8, bottom=0.12)
    return fig


def cd_diagram(result: CrossDataset, path: Path) -> Path | None:
    """Write the critical-difference diagram as PNG (None when there is no test to draw)."""
    if result.friedman is None:
        return None
    fig = cd_diagram_figure(result)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
