"""Statistics across runs: mean/std/95% CI over seeds, paired tests on per-user metrics, Holm's correction."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

# differences smaller than this (relative to the values' scale) are treated as exactly equal
_TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1) and a two-sided Student-t confidence interval of the mean."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int


def summarize(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Summary:
    """Mean ± std and the `confidence` t-interval of the mean (std and CI are NaN with fewer than 2 values)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Summary(mean, math.nan, math.nan, math.nan, n)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(mean, std, mean - half, mean + half, n)


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of per-user values: a − b, with paired t-test and Wilcoxon signed-rank p-values."""

    n: int
    mean_diff: float
    t_stat: float
    t_p: float
    wilcoxon_stat: float
    wilcoxon_p: float


def paired_tests(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> PairedTest:
    """Two-sided paired t-test and Wilcoxon signed-rank test of a vs b (same users, same order).

    Degenerate cases get their exact answer instead of scipy's NaN: identical values → p = 1 for both;
    a constant non-zero difference → t-test p = 0 (zero variance), Wilcoxon from its exact distribution."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_tests: expected two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n == 0:
        return PairedTest(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    diff = a - b
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1.0)
    diff[np.abs(diff) <= _TIE_TOLERANCE * scale] = 0.0
    mean_diff = float(diff.mean())
    if not diff.any():
        return PairedTest(n, 0.0, 0.0, 1.0, 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns on near-constant differences
        if n < 2 or float(diff.std()) <= _TIE_TOLERANCE * scale:
            t_stat, t_p = math.copysign(math.inf, mean_diff), 0.0 if n >= 2 else math.nan
        else:
            t = stats.ttest_rel(a, b)
            t_stat, t_p = float(t.statistic), float(t.pvalue)
        w = stats.wilcoxon(diff, zero_method="wilcox")
    return PairedTest(n, mean_diff, t_stat, t_p, float(w.statistic), float(w.pvalue))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order as given; NaNs stay NaN and do not count as tests).

    Sorted ascending p_(1) ≤ … ≤ p_(m): adj_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j))."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
