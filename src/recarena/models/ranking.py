"""Turning scores into top-K lists: known-item masking and deterministic tie-breaking (PROTOCOL.md §3)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch


class TopK(NamedTuple):
    """Recommended item indices (users × K, best first; -1 = empty slot) and their scores.

    `invalid` (generative models) is each user's share of generated outputs that were not unknown items."""

    items: torch.Tensor
    scores: torch.Tensor
    invalid: torch.Tensor | None = None


def cat_topk(parts: list[TopK]) -> TopK:
    """Stack the TopK of consecutive user chunks."""
    invalid = None if parts[0].invalid is None else torch.cat([p.invalid for p in parts])
    return TopK(torch.cat([p.items for p in parts]), torch.cat([p.scores for p in parts]), invalid)


def mask_known(scores: torch.Tensor, history: sp.csr_matrix) -> torch.Tensor:
    """Set the score of every item in the user's history to -inf, in place (row b ↔ history row b)."""
    rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
    if rows.size:
        r = torch.from_numpy(rows).to(scores.device)
        c = torch.from_numpy(history.indices.astype(np.int64)).to(scores.device)
        scores[r, c] = float("-inf")
    return scores


def top_k(scores: torch.Tensor, k: int) -> TopK:
    """Top-k per row, highest score first, ties broken by ascending item index; -inf slots become -1.

    torch.topk does not promise which of several tied items it keeps, so rows whose k-th score is shared by
    more items than fit are filled by index explicitly (only those rows: one cheap pass finds them); cost stays
    linear in the number of items."""
    scores = torch.as_tensor(scores)
    k = min(k, scores.shape[1])
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()
    values, items = torch.topk(scores, k, dim=1)
    kth = values[:, -1:]
    surplus = (_count_at_least(scores, kth) > k).nonzero()[:, 0]  # rows where torch.topk had to pick among ties
    if surplus.numel():
        items[surplus] = _fill_ties(scores[surplus], kth[surplus], k)
    # order by score descending, then index ascending: sort indices ascending first, then a stable sort by score
    items = torch.sort(items, dim=1).values
    chosen = torch.gather(scores, 1, items)
    order = torch.sort(chosen, dim=1, descending=True, stable=True).indices
    items = torch.gather(items, 1, order)
    chosen = torch.gather(chosen, 1, order)
    items = torch.where(torch.isneginf(chosen), torch.full_like(items, -1), items)
    return TopK(items=items, scores=chosen)


def _count_at_least(scores: torch.Tensor, kth: torch.Tensor) -> torch.Tensor:
    """How many scores of each row are >= its k-th; numpy on CPU, where torch's boolean row sums are ~5x slower."""
    if scores.device.type != "cpu":
        return (scores >= kth).sum(dim=1)
    at_least = scores.detach().numpy() >= kth.detach().numpy()
    return torch.from_numpy(np.count_nonzero(at_least, axis=1))


def _fill_ties(scores: torch.Tensor, kth: torch.Tensor, k: int) -> torch.Tensor:
    """The k items of each row: all scores above the k-th, then the lowest-index items tied with it (ascending)."""
    above = scores > kth
    tie_rows, tie_cols = (scores == kth).nonzero(as_tuple=True)  # row-major: columns ascending within a row
    per_row = torch.bincount(tie_rows, minlength=scores.shape[0])
    rank = torch.arange(len(tie_rows), device=scores.device) - (torch.cumsum(per_row, 0) - per_row)[tie_rows]
    keep = rank < (k - above.sum(dim=1))[tie_rows]
    above[tie_rows[keep], tie_cols[keep]] = True
    return above.nonzero()[:, 1].view(scores.shape[0], k)


def rank_scores(scores: torch.Tensor | np.ndarray, history: sp.csr_matrix, k: int) -> TopK:
    """Mask the history, then take the deterministic top-k: the one road from scores to a list."""
    scores = torch.as_tensor(scores)
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()
    scores = torch.nan_to_num(scores, nan=float("-inf"))  # a new tensor: the caller's scores stay as they are
    return top_k(mask_known(scores, history), k)
