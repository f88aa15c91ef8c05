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

    torch.topk does not promise which of several tied items it keeps, so the k-th score's ties are
    filled by index explicitly; cost stays linear in the number of items."""
    scores = torch.as_tensor(scores)
    k = min(k, scores.shape[1])
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()
    kth = torch.topk(scores, k, dim=1).values[:, -1:]
    above = scores > kth
    tied = scores == kth
    need = k - above.sum(dim=1, keepdim=True)
    take = above | (tied & (torch.cumsum(tied.int(), dim=1) <= need))
    items = take.nonzero()[:, 1].view(scores.shape[0], k)
    chosen = torch.gather(scores, 1, items)
    # order by score descending, then index ascending: items are already ascending, so a stable sort works
    order = torch.sort(chosen, dim=1, descending=True, stable=True).indices
    items = torch.gather(items, 1, order)
    chosen = torch.gather(chosen, 1, order)
    items = torch.where(torch.isneginf(chosen), torch.full_like(items, -1), items)
    return TopK(items=items, scores=chosen)


def rank_scores(scores: torch.Tensor | np.ndarray, history: sp.csr_matrix, k: int) -> TopK:
    """Mask the history, then take the deterministic top-k: the one road from scores to a list."""
    scores = torch.as_tensor(scores)
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()
    scores = torch.nan_to_num(scores.clone(), nan=float("-inf"))
    return top_k(mask_known(scores, history), k)
