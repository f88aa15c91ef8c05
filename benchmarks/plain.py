"""A plain vectorised evaluator (numpy/scipy, no framework): score a user chunk, mask known items, top-K, metrics.

The yardstick for recarena's overhead: the same arithmetic a hand-written script would do."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

ScoreFn = Callable[[np.ndarray, sp.csr_matrix], np.ndarray]


@dataclass
class PlainResult:
    """Top-K lists of the evaluated users, recall/ndcg@k means and the seconds spent."""

    users: np.ndarray
    topk: np.ndarray
    metrics: dict[str, float]
    seconds: float


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k highest scores, best first (argpartition, then sort the k)."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def recall_ndcg(topk: np.ndarray, truth: sp.csr_matrix, k: int) -> dict[str, float]:
    """recall@k and ndcg@k averaged over users; `truth` rows align with `topk` rows (all non-empty)."""
    truth = sp.csr_matrix(truth)
    truth.sort_indices()
    n_items = truth.shape[1]
    n_rel = np.diff(truth.indptr)
    keys = np.repeat(np.arange(truth.shape[0], dtype=np.int64), n_rel) * n_items + truth.indices
    asked = np.arange(topk.shape[0], dtype=np.int64)[:, None] * n_items + topk[:, :k]
    pos = np.minimum(np.searchsorted(keys, asked), len(keys) - 1)
    hit = (keys[pos] == asked) & (topk[:, :k] >= 0)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    return {
        f"recall@{k}": float((hit.sum(axis=1) / n_rel).mean()),
        f"ndcg@{k}": float(((hit * discount).sum(axis=1) / ideal).mean()),
    }


def evaluate(
    score: ScoreFn, users: np.ndarray, known: sp.csr_matrix, truth: sp.csr_matrix, chunk: int, k: int = 20
) -> PlainResult:
    """Full ranking of `users` in chunks of `chunk` users: score, known items to -inf, top-k; recall/ndcg@10.

    `score` must return a new array (it is masked in place, as a hand-written script would)."""
    start = time.perf_counter()
    lists = []
    for lo in range(0, len(users), chunk):
        rows = users[lo : lo + chunk]
        history = known[rows]
        scores = np.asarray(score(rows, history), dtype=np.float32)  # fresh from `score`: masked in place
        scores[np.repeat(np.arange(len(rows)), np.diff(history.indptr)), history.indices] = -np.inf
        lists.append(top_k(scores, k))
    topk = np.concatenate(lists) if lists else np.zeros((0, k), np.int64)
    metrics = recall_ndcg(topk, truth[users], 10)
    return PlainResult(users, topk, metrics, time.perf_counter() - start)


def timed_metrics(topk: np.ndarray, truth: sp.csr_matrix) -> tuple[dict[str, float], float]:
    """recall/ndcg@10 of given lists and the seconds it took (the metric-only yardstick)."""
    start = time.perf_counter()
    out = recall_ndcg(topk, truth, 10)
    return out, time.perf_counter() - start
