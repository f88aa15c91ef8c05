"""docs/protocol.md §4 metrics in numpy, vectorised over users; no Lightning imports.

A top-K array holds item indices per user, best first; -1 marks an empty slot (a user with fewer
than K recommendable items, or an invalid generated id) and never counts as a hit or as coverage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

ACCURACY = ("recall", "precision", "hit", "ndcg", "mrr", "map")
USER_BEYOND = ("novelty", "arp", "ild")


def as_truth_matrix(truth: sp.csr_matrix | Sequence[Iterable[int]], n_items: int) -> sp.csr_matrix:
    """Ground truth as a users × items binary CSR (accepts a CSR or one iterable of items per user)."""
    if sp.issparse(truth):
        return sp.csr_matrix(truth)
    rows = [np.full(len(list(t)), u) for u, t in enumerate(truth)]
    cols = [np.fromiter(t, dtype=np.int64) for t in truth]
    rows_a = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols_a = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    data = np.ones(len(cols_a), dtype=np.float32)
    return sp.csr_matrix((data, (rows_a, cols_a)), shape=(len(cols), n_items))


def hits(topk: np.ndarray, truth: sp.csr_matrix, block_bytes: int = 2**24) -> np.ndarray:
    """Boolean (users × K): whether the item at each rank is in the user's ground truth.

    Rows are looked up in blocks through a dense boolean copy of the block's truth (at most `block_bytes`):
    a gather from it is about twice as fast as scipy's per-element search of the CSR."""
    n_users, n_items = truth.shape
    found = np.zeros(topk.shape, dtype=bool)
    step = max(1, block_bytes // max(n_items, 1))
    for lo in range(0, n_users, step):
        block, lists = truth[lo : lo + step], topk[lo : lo + step]
        dense = np.zeros(block.shape, dtype=bool)
        dense[np.repeat(np.arange(block.shape[0]), np.diff(block.indptr)), block.indices] = block.data > 0
        found[lo : lo + step] = np.take_along_axis(dense, np.maximum(lists, 0), axis=1) & (lists >= 0)
    return found


def accuracy_per_user(topk: np.ndarray, truth: sp.csr_matrix, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """recall/precision/hit/ndcg/mrr/map@K of every user (rows of truth must be non-empty)."""
    n_relevant = np.diff(truth.indptr).astype(np.float64)
    if (n_relevant == 0).any():
        raise ValueError("accuracy metrics need a non-empty ground truth for every evaluated user")
    if topk.shape[1] < max(ks):
        raise ValueError(f"top-K lists have {topk.shape[1]} columns, fewer than the largest K={max(ks)}")
    found = hits(topk, truth).astype(np.float64)
    ranks = np.arange(1, found.shape[1] + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    ideal_cumulative = np.cumsum(discount)
    hits_so_far = np.cumsum(found, axis=1)  # counts of 0/1 are exact in any order: column k-1 is the hits in k
    first_hit = np.where(hits_so_far[:, -1] > 0, found.argmax(axis=1) + 1, 0)  # rank of the first hit, 0: none
    out: dict[str, np.ndarray] = {}
    for k in ks:
        h = found[:, :k]
        n_hits = hits_so_far[:, k - 1]
        ideal_len = np.minimum(k, n_relevant).astype(np.int64)
        out[f"recall@{k}"] = n_hits / n_relevant
        out[f"precision@{k}"] = n_hits / k
        out[f"hit@{k}"] = (n_hits > 0).astype(np.float64)
        out[f"ndcg@{k}"] = (h * discount[:k]).sum(axis=1) / ideal_cumulative[ideal_len - 1]
        first = np.where(first_hit <= k, first_hit, 0)
        out[f"mrr@{k}"] = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
        precision_at_r = hits_so_far[:, :k] / ranks[:k]
        out[f"map@{k}"] = (precision_at_r * h).sum(axis=1) / ideal_len
    return out


ITEM_SLICES = ("unseen", "tail", "head")  # by train popularity: none, below the head threshold, at or above it


def item_slices(popularity: np.ndarray, head_share: float) -> tuple[np.ndarray, float]:
    """Each item's slice code (index into ITEM_SLICES) and the head threshold: items never seen in train are
    unseen; of the seen items, the `head_share` most popular (ties at the boundary included) are head, the rest tail.
    The threshold is the smallest train count that is head (inf when head_share is 0)."""
    popularity = np.asarray(popularity)
    seen = np.sort(popularity[popularity > 0])[::-1]
    n_head = math.ceil(head_share * seen.size) if seen.size else 0
    threshold = float(seen[n_head - 1]) if n_head else math.inf
    return np.where(popularity == 0, 0, np.where(popularity >= threshold, 2, 1)).astype(np.int8), threshold


def item_slice_metrics(
    topk: np.ndarray, truth: sp.csr_matrix, ks: Sequence[int], slices: np.ndarray
) -> dict[str, float]:
    """recall@K and ndcg@K of each item slice, with the ground truth restricted to the slice's items and averaged
    over the users who have some (ndcg's ideal is over those items), and listed@K: the share of the slice's items
    that some top-K list contains. A slice without ground truth gets counts only (nothing to measure)."""
    out: dict[str, float] = {}
    for code, name in enumerate(ITEM_SLICES):
        in_slice = slices == code
        part = truth.multiply(in_slice[None, :].astype(truth.dtype)).tocsr()
        part.eliminate_zeros()
        out[f"items/{name}"] = float(in_slice.sum())
        out[f"interactions/{name}"] = float(part.nnz)
        rows = np.diff(part.indptr) > 0
        if not rows.any():
            continue
        accuracy = accuracy_per_user(topk[rows], part[rows], ks)
        for k in ks:
            listed = np.unique(topk[:, :k])
            listed = listed[listed >= 0]
            out[f"recall@{k}/{name}"] = float(accuracy[f"recall@{k}"].mean())
            out[f"ndcg@{k}/{name}"] = float(accuracy[f"ndcg@{k}"].mean())
            out[f"listed@{k}/{name}"] = float(in_slice[listed].sum() / in_slice.sum())
    return out


def beyond_per_user(
    topk: np.ndarray,
    ks: Sequence[int],
    popularity: np.ndarray,
    n_users: int,
    item_features: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """novelty/arp (and ild when item features exist) of every user's list at each K.

    novelty = mean of −log2(pop(i)/n_users) with pop from train; an item never seen in train counts
    as popularity 1 so novelty stays finite. ild = mean pairwise (1 − cosine) of item features."""
    valid = topk >= 0
    safe = np.where(valid, topk, 0)
    pop = popularity.astype(np.float64)
    self_info = -np.log2(np.maximum(pop, 1.0) / n_users)
    width = min(max(ks), topk.shape[1])
    info, popular = self_info[safe[:, :width]] * valid[:, :width], pop[safe[:, :width]] * valid[:, :width]
    normed = None
    if item_features is not None:
        features = np.asarray(item_features, dtype=np.float64)  # float32 flags would round the norms (1e-8)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        normed = np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)
    ild = _intra_list_diversity(normed, safe, valid, ks) if normed is not None else {}
    out: dict[str, np.ndarray] = {}
    for k in ks:  # gathered once at the longest K; each k sums its first columns
        count = np.maximum(valid[:, :k].sum(axis=1), 1)
        out[f"novelty@{k}"] = info[:, :k].sum(axis=1) / count
        out[f"arp@{k}"] = popular[:, :k].sum(axis=1) / count
        if normed is not None:
            out[f"ild@{k}"] = ild[k]
    return out


def _intra_list_diversity(
    normed: np.ndarray, items: np.ndarray, valid: np.ndarray, ks: Sequence[int]
) -> dict[int, np.ndarray]:
    """Mean over pairs a≠b of (1 − cos(a, b)) within each list's first k items, for every k.

    Σ_{a≠b} cos(a, b) = |Σ_a v_a|² − Σ_a |v_a|² for unit vectors v. Each list's Σ_a v_a is a sparse (lists ×
    items) selection times the feature matrix, added in rank order like a running sum, without materialising a
    users × K × features array."""
    n_lists, width = items.shape
    result = {k: np.zeros(n_lists) for k in ks}
    if width == 0:
        return result
    squares = np.cumsum(np.einsum("id,id->i", normed, normed)[items] * valid, axis=1)
    counts = np.cumsum(valid, axis=1, dtype=np.float64)
    for k in ks:
        last = min(k, width)
        sums = _list_sums(normed, items[:, :last], valid[:, :last])
        total_sim = np.einsum("ud,ud->u", sums, sums) - squares[:, last - 1]
        pairs = counts[:, last - 1] * (counts[:, last - 1] - 1)
        result[k] = np.where(pairs > 0, (pairs - total_sim) / np.maximum(pairs, 1), 0.0)
    return result


def _list_sums(vectors: np.ndarray, items: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Σ of `vectors[item]` over each row's valid items: a CSR selection times the matrix, which scipy accumulates
    in stored (rank) order, so the sums equal a running sum over ranks bit for bit."""
    n_lists, width = items.shape
    indptr = np.arange(0, n_lists * width + 1, width, dtype=np.int64)
    weights = valid.astype(vectors.dtype).ravel()
    selection = sp.csr_matrix((weights, items.ravel(), indptr), shape=(n_lists, vectors.shape[0]))
    return np.asarray(selection @ vectors)


def coverage(topk: np.ndarray, n_items: int, k: int) -> float:
    """Catalogue coverage: share of items that appear in at least one user's top-k."""
    items = topk[:, :k]
    return float(np.count_nonzero(np.bincount(items[items >= 0], minlength=n_items)) / n_items)


def gini(topk: np.ndarray, n_items: int, k: int) -> float:
    """Gini index of recommendation counts over the whole catalogue (0 = even, →1 = one item)."""
    items = topk[:, :k]
    counts = np.sort(np.bincount(items[items >= 0], minlength=n_items)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    j = np.arange(1, n_items + 1)
    return float(((2 * j - n_items - 1) * counts).sum() / (n_items * total))


def ranking_metrics(
    topk: np.ndarray,
    truth: sp.csr_matrix | Sequence[Iterable[int]],
    n_items: int,
    k: int | Sequence[int],
    popularity: np.ndarray | None = None,
    n_users: int | None = None,
    item_features: np.ndarray | None = None,
) -> dict[str, float]:
    """All §4 metrics averaged over users (coverage and Gini over the union of lists)."""
    ks = [k] if isinstance(k, int) else list(k)
    topk = np.asarray(topk)
    per_user = accuracy_per_user(topk, as_truth_matrix(truth, n_items), ks)
    if popularity is not None:
        per_user.update(beyond_per_user(topk, ks, popularity, n_users or topk.shape[0], item_features))
    result = {name: float(values.mean()) for name, values in per_user.items()}
    for kk in ks:
        result[f"coverage@{kk}"] = coverage(topk, n_items, kk)
        result[f"gini@{kk}"] = gini(topk, n_items, kk)
    return result
