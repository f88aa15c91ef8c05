"""A plain vectorised evaluator (numpy/scipy, no framework): score a user chunk, mask known items, top-K, metrics.

The yardstick for recarena's overhead: the arithmetic a hand-written script following docs/protocol.md would do (ties
to the lower item index, so its lists equal recarena's), at two workloads — the metrics RecEvalCallback reports
(same names, same K, same slices: equal work, so the ratio is overhead) and recall/ndcg@10 alone (the least a
script would compute)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

ScoreFn = Callable[[np.ndarray, sp.csr_matrix], np.ndarray]
Measure = Callable[[np.ndarray, sp.csr_matrix], dict[str, float]]


@dataclass
class PlainResult:
    """Top-K lists of the evaluated users, the measured metrics and the seconds spent."""

    users: np.ndarray
    topk: np.ndarray
    metrics: dict[str, float]
    seconds: float


@dataclass
class Catalogue:
    """What the beyond-accuracy metrics and slices need: train popularity, users, item features, cold users."""

    popularity: np.ndarray
    n_users: int
    features: np.ndarray | None
    cold: np.ndarray  # per evaluated user (rows of truth): train interactions <= the cold threshold
    head_share: float = 0.2  # item slices: the most popular share of the seen items is the head


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's k highest scores, best first, ties to the lower item index (docs/protocol.md §3); -1 where the score
    is -inf. argpartition picks k + 1 candidates; only rows tied at the cut are redone over the whole row."""
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    if k == n_items:
        picked = np.broadcast_to(np.arange(n_items), scores.shape)
    else:
        picked = np.argpartition(-scores, k, axis=1)[:, : k + 1]
    values = np.take_along_axis(scores, picked, axis=1)
    order = np.lexsort((picked, -values), axis=1)
    picked, values = np.take_along_axis(picked, order, axis=1), np.take_along_axis(values, order, axis=1)
    lists = picked[:, :k].copy()
    if k < n_items:
        cut = np.flatnonzero(values[:, k] == values[:, k - 1])  # the candidates may have missed lower-index ties
        if cut.size:
            rows, kth = scores[cut], values[cut, k - 1 : k]
            above, tied = rows > kth, rows == kth
            take = above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(axis=1, keepdims=True)))
            cols = np.nonzero(take)[1].reshape(cut.size, k)
            chosen = np.take_along_axis(rows, cols, axis=1)
            lists[cut] = np.take_along_axis(cols, np.lexsort((cols, -chosen), axis=1), axis=1)
    return np.where(np.isneginf(np.take_along_axis(scores, lists, axis=1)), -1, lists)


def hit_matrix(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Boolean users × K: the item at each rank is relevant (a sorted-key search; -1 slots never hit)."""
    truth = sp.csr_matrix(truth)
    truth.sort_indices()
    n_items = truth.shape[1]
    keys = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr)) * n_items + truth.indices
    asked = np.arange(topk.shape[0], dtype=np.int64)[:, None] * n_items + topk
    pos = np.minimum(np.searchsorted(keys, asked), len(keys) - 1)
    return (keys[pos] == asked) & (topk >= 0)


def recall_ndcg(topk: np.ndarray, truth: sp.csr_matrix, k: int = 10) -> dict[str, float]:
    """recall@k and ndcg@k averaged over users; `truth` rows align with `topk` rows (all non-empty)."""
    hit = hit_matrix(topk[:, :k], truth)
    n_rel = np.diff(sp.csr_matrix(truth).indptr)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    return {
        f"recall@{k}": float((hit.sum(axis=1) / n_rel).mean()),
        f"ndcg@{k}": float(((hit * discount).sum(axis=1) / ideal).mean()),
    }


def all_metrics(topk: np.ndarray, truth: sp.csr_matrix, ks: Sequence[int], catalogue: Catalogue) -> dict[str, float]:
    """Every number RecEvalCallback's summary holds, from the textbook formulas (docs/protocol.md §4), per K."""
    hit = hit_matrix(topk, truth).astype(np.float64)
    n_rel = np.diff(sp.csr_matrix(truth).indptr)
    valid = topk >= 0
    safe = np.where(valid, topk, 0)
    n_items = catalogue.popularity.shape[0]
    self_info = -np.log2(np.maximum(catalogue.popularity, 1) / catalogue.n_users)
    normed = None
    if catalogue.features is not None:
        features = np.asarray(catalogue.features, dtype=np.float64)  # genre flags may come as float32
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        normed = features / np.where(norms > 0, norms, 1.0)
    per_user: dict[str, np.ndarray] = {}
    summary: dict[str, float] = {}
    for k in ks:
        h, v, idx = hit[:, :k], valid[:, :k], safe[:, :k]
        n_hits, ideal_len, shown = h.sum(axis=1), np.minimum(n_rel, k), np.maximum(v.sum(axis=1), 1)
        discount = 1.0 / np.log2(np.arange(2, k + 2))
        first = np.where(n_hits > 0, h.argmax(axis=1) + 1, 0)
        per_user[f"recall@{k}"] = n_hits / n_rel
        per_user[f"precision@{k}"] = n_hits / k
        per_user[f"hit@{k}"] = (n_hits > 0).astype(np.float64)
        per_user[f"ndcg@{k}"] = (h * discount).sum(axis=1) / np.cumsum(discount)[ideal_len - 1]
        per_user[f"mrr@{k}"] = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
        per_user[f"map@{k}"] = (np.cumsum(h, axis=1) / np.arange(1, k + 1) * h).sum(axis=1) / ideal_len
        per_user[f"novelty@{k}"] = (self_info[idx] * v).sum(axis=1) / shown
        per_user[f"arp@{k}"] = (catalogue.popularity[idx] * v).sum(axis=1) / shown
        if normed is not None:
            vectors = normed[idx] * v[..., None]  # users × k × features; Σ_a≠b cos = |Σ_a v_a|² − Σ_a |v_a|²
            total = vectors.sum(axis=1)
            similarity = (total * total).sum(axis=1) - (vectors * vectors).sum(axis=(1, 2))
            pairs = v.sum(axis=1) * (v.sum(axis=1) - 1)
            per_user[f"ild@{k}"] = np.where(pairs > 0, (pairs - similarity) / np.maximum(pairs, 1), 0.0)
        counts = np.bincount(topk[:, :k][v], minlength=n_items)
        summary[f"coverage@{k}"] = np.count_nonzero(counts) / n_items
        ascending = np.sort(counts).astype(np.float64)
        j = np.arange(1, n_items + 1)
        summary[f"gini@{k}"] = ((2 * j - n_items - 1) * ascending).sum() / (n_items * max(ascending.sum(), 1.0))
    summary.update({name: float(values.mean()) for name, values in per_user.items()})
    for label, members in (("cold", catalogue.cold), ("warm", ~catalogue.cold)):
        summary[f"users/{label}"] = float(members.sum())
        if members.any():
            for name, values in per_user.items():
                if name.split("@")[0] in ("recall", "precision", "hit", "ndcg", "mrr", "map"):
                    summary[f"{name}/{label}"] = float(values[members].mean())
    summary.update(item_slice_metrics(topk, truth, ks, catalogue))
    return summary


def item_slice_metrics(
    topk: np.ndarray, truth: sp.csr_matrix, ks: Sequence[int], catalogue: Catalogue
) -> dict[str, float]:
    """Item slices written out one user and one item at a time: unseen (train count 0), head (count at least that of
    the ceil(head_share * seen)-th most popular seen item), tail (the other seen items)."""
    popularity = catalogue.popularity
    seen_counts = sorted((int(c) for c in popularity if c > 0), reverse=True)
    n_head = math.ceil(catalogue.head_share * len(seen_counts))
    threshold = seen_counts[n_head - 1] if n_head else math.inf
    slice_of = ["unseen" if c == 0 else "head" if c >= threshold else "tail" for c in popularity]
    truth = sp.csr_matrix(truth)
    out: dict[str, float] = {"items/head_min_train_count": float(threshold)}
    for name in ("unseen", "tail", "head"):
        members = {i for i, s in enumerate(slice_of) if s == name}
        relevant = [{int(i) for i in truth.indices[truth.indptr[u] : truth.indptr[u + 1]]} & members
                    for u in range(truth.shape[0])]  # fmt: skip
        out[f"items/{name}"] = float(len(members))
        out[f"interactions/{name}"] = float(sum(len(r) for r in relevant))
        users = [u for u, r in enumerate(relevant) if r]
        if not users:
            continue
        for k in ks:
            recall, ndcg = [], []
            for u in users:
                ranked = [int(i) for i in topk[u, :k]]
                gains = [1.0 / math.log2(r + 2) for r, i in enumerate(ranked) if i in relevant[u]]
                ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(relevant[u]))))
                recall.append(len(gains) / len(relevant[u]))
                ndcg.append(sum(gains) / ideal)
            listed = {int(i) for i in topk[:, :k].ravel() if i >= 0}
            out[f"recall@{k}/{name}"] = float(np.mean(recall))
            out[f"ndcg@{k}/{name}"] = float(np.mean(ndcg))
            out[f"listed@{k}/{name}"] = len(listed & members) / len(members)
    return out


def evaluate(
    score: ScoreFn, users: np.ndarray, known: sp.csr_matrix, truth: sp.csr_matrix, chunk: int, k: int, measure: Measure
) -> PlainResult:
    """Full ranking of `users` in chunks of `chunk` users: score, known items to -inf, top-k; then `measure`.

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
    metrics = measure(topk, truth[users])
    return PlainResult(users, topk, metrics, time.perf_counter() - start)
