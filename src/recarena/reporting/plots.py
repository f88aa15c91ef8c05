"""Report plots (PNG, Agg canvas, no pyplot state): accuracy vs coverage, metrics @K per model, cold vs warm."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recarena.utils.io import atomic_write

if TYPE_CHECKING:  # the leaderboard module imports this one
    from recarena.reporting.leaderboard import Leaderboard


def _mean_std(board: Leaderboard, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and std of a column (std 0 where there is one seed, so error bars are simply absent)."""
    means = np.array([r.stats[key].mean for r in board.rows], dtype=float)
    stds = np.nan_to_num(np.array([r.stats[key].std for r in board.rows], dtype=float))
    return means, stds


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _new_figure(n_models: int, height: float = 4.8) -> Figure:
    fig = Figure(figsize=(max(6.4, 1.2 * n_models + 3), height))
    FigureCanvasAgg(fig)
    return fig


def _titles(fig: Figure, ax, takeaway: str, what: str) -> None:
    """The finding as the figure title, what is plotted as the axes title."""
    fig.suptitle(takeaway, fontsize=11, fontweight="bold")
    ax.set_title(what, fontsize=9)


def _label_ticks(ax, labels: list[str]) -> None:
    long = len(labels) > 4 or max((len(s) for s in labels), default=0) > 10
    ax.set_xticks(np.arange(len(labels)), labels, rotation=30 if long else 0, ha="right" if long else "center")


def _best(labels: list[str], values: np.ndarray, highest: bool = True) -> tuple[str, float]:
    finite = np.where(np.isfinite(values), values, -np.inf if highest else np.inf)
    i = int(np.argmax(finite) if highest else np.argmin(finite))
    return labels[i], float(values[i])


def recall_vs_coverage(board: Leaderboard, path: Path) -> Path:
    """Scatter of recall@K against coverage@K with std-over-seeds error bars: the accuracy/diversity trade-off."""
    k, labels = board.k, [r.label for r in board.rows]
    recall, recall_std = _mean_std(board, f"recall@{k}")
    coverage, coverage_std = _mean_std(board, f"coverage@{k}")
    fig = _new_figure(0, 5.2)
    ax = fig.add_subplot()
    for i, label in enumerate(labels):
        ax.errorbar(coverage[i], recall[i], xerr=coverage_std[i], yerr=recall_std[i], fmt="o", capsize=4)
        ax.annotate(label, (coverage[i], recall[i]), textcoords="offset points", xytext=(6, 6), fontsize=9)
    best, best_recall = _best(labels, recall)
    widest, widest_coverage = _best(labels, coverage)
    if best == widest:
        takeaway = f"{best} is both the most accurate and the most diverse"
    else:
        takeaway = f"{best} is the most accurate, {widest} covers the most items"
    _titles(fig, ax, takeaway, f"Recall vs catalogue coverage @{k} (test): up and to the right is better")
    ax.set_xlabel(f"catalogue coverage@{k} (share of items recommended to anyone)")
    ax.set_ylabel(f"recall@{k} (test, mean ± std over seeds)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def metrics_bars(board: Leaderboard, path: Path) -> Path:
    """Grouped bars of recall, precision and coverage @K per model, with std-over-seeds error bars."""
    k, labels = board.k, [r.label for r in board.rows]
    names = [f"recall@{k}", f"precision@{k}", f"coverage@{k}"]
    fig = _new_figure(len(labels))
    ax = fig.add_subplot()
    x, width = np.arange(len(labels)), 0.8 / len(names)
    for j, name in enumerate(names):
        mean, std = _mean_std(board, name)
        ax.bar(x + (j - 1) * width, mean, width, yerr=std, capsize=3, label=name)
    best, value = _best(labels, _mean_std(board, f"recall@{k}")[0])
    takeaway = f"{best} leads recall@{k} ({value:.3f})"
    ties = [c.label for c in board.comparisons if c.metric == f"recall@{k}" and c.p_wilcoxon >= board.alpha]
    if ties:
        takeaway += f", not significantly above {', '.join(ties)}"
    _titles(fig, ax, takeaway, f"Test metrics @{k} per model (mean ± std over seeds)")
    ax.set_ylabel("value (0–1, higher is better)")
    ax.set_xlabel("model")
    _label_ticks(ax, labels)
    ax.legend(fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def cold_warm(board: Leaderboard, path: Path) -> Path:
    """Bars of recall@K for cold vs warm users per model: who copes with short histories."""
    k, labels = board.k, [r.label for r in board.rows]
    cold, cold_std = _mean_std(board, f"recall@{k}/cold")
    warm, warm_std = _mean_std(board, f"recall@{k}/warm")
    fig = _new_figure(len(labels))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    threshold = f"≤ {board.cold_threshold}" if board.cold_threshold is not None else "few"
    ax.bar(x - 0.2, cold, 0.4, yerr=cold_std, capsize=3, label=f"cold ({threshold} train interactions)")
    ax.bar(x + 0.2, warm, 0.4, yerr=warm_std, capsize=3, label="warm (the rest)")
    best_cold, value = _best(labels, cold)
    takeaway = f"{best_cold} is the best for cold users (recall@{k} {value:.3f})"
    gap = warm - cold
    if np.isfinite(gap).any():
        i = int(np.nanargmax(np.abs(gap)))
        takeaway += f"\n{labels[i]} has the largest warm − cold gap ({gap[i]:+.3f})"
    _titles(fig, ax, takeaway, f"Recall@{k}: cold vs warm users (test)")
    ax.set_ylabel(f"recall@{k} (test, mean ± std over seeds)")
    ax.set_xlabel("model")
    _label_ticks(ax, labels)
    ax.legend(fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_report(board: Leaderboard) -> dict[str, Path]:
    """Write the three report plots into the sweep folder; none when no job finished."""
    if not board.rows or math.isnan(board.rows[0].stats[f"recall@{board.k}"].mean):
        return {}
    out = board.sweep_dir
    return {
        "recall_vs_coverage": recall_vs_coverage(board, out / "recall_vs_coverage.png"),
        "metrics_at_k": metrics_bars(board, out / "metrics_at_k.png"),
        "cold_vs_warm": cold_warm(board, out / "cold_vs_warm.png"),
    }
