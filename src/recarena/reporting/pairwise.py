"""All-pairs significance: every two models of one split compared on per-user test values, Holm-adjusted over all
pairs, so a claim like "model A beats every CF model" is read off one matrix instead of checked by hand."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from recarena.evaluation.stats import holm, paired_tests


@dataclass(frozen=True)
class Pairwise:
    """Models × models matrices for one metric: mean per-user difference (row − column), and the paired t-test and
    Wilcoxon p-values, each Holm-adjusted over the m·(m−1)/2 pairs (symmetric; NaN on the diagonal and where two
    models share no user)."""

    metric: str
    labels: list[str]
    mean_diff: np.ndarray
    p_ttest: np.ndarray
    p_wilcoxon: np.ndarray
    n_users: np.ndarray

    def wins(self, label: str, alpha: float) -> list[str]:
        """The models that `label` is significantly above (Holm-adjusted Wilcoxon p < alpha, positive difference)."""
        i = self.labels.index(label)
        return [
            other
            for j, other in enumerate(self.labels)
            if j != i and self.p_wilcoxon[i, j] < alpha and self.mean_diff[i, j] > 0
        ]


def pairwise_tests(per_user: dict[str, pl.DataFrame | None], metric: str) -> Pairwise:
    """Paired tests of every two models in `per_user` (label → per-user frame with `user` and `metric`; None or a
    frame without `metric` leaves that model's row NaN), joined on the users both scored."""
    labels = list(per_user)
    m = len(labels)
    diff, p_t, p_w = (np.full((m, m), np.nan) for _ in range(3))
    n_users = np.zeros((m, m), dtype=np.int64)
    pairs, raw_t, raw_w = [], [], []
    for i, j in itertools.combinations(range(m), 2):
        a, b = per_user[labels[i]], per_user[labels[j]]
        if a is None or b is None or metric not in a.columns or metric not in b.columns:
            continue
        joined = a.select("user", pl.col(metric).alias("a")).join(
            b.select("user", pl.col(metric).alias("b")), on="user", how="inner"
        )
        test = paired_tests(joined["a"].to_numpy(), joined["b"].to_numpy())
        if test.n == 0:
            continue
        diff[i, j], diff[j, i] = test.mean_diff, -test.mean_diff
        n_users[i, j] = n_users[j, i] = test.n
        pairs.append((i, j))
        raw_t.append(test.t_p)
        raw_w.append(test.wilcoxon_p)
    for (i, j), t, w in zip(pairs, holm(raw_t), holm(raw_w), strict=True):
        p_t[i, j] = p_t[j, i] = t
        p_w[i, j] = p_w[j, i] = w
    return Pairwise(metric, labels, diff, p_t, p_w, n_users)


def markdown_matrix(pairwise: Pairwise, alpha: float) -> list[str]:
    """The matrix as a markdown table: cell = Δ (row − column) and the Holm-adjusted Wilcoxon p; ▲/▼ where the row
    model is significantly above/below the column model."""
    labels = pairwise.labels
    lines = ["| row − column | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for i, label in enumerate(labels):
        cells = []
        for j in range(len(labels)):
            d, p = pairwise.mean_diff[i, j], pairwise.p_wilcoxon[i, j]
            if i == j:
                cells.append("—")
            elif math.isnan(d):
                cells.append("n/a")
            else:
                mark = (" ▲" if d > 0 else " ▼") if p < alpha else ""
                cells.append(f"{d:+.4f} (p {_p(p)}){mark}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else (f"{value:.1e}" if value < 1e-3 else f"{value:.3f}")
