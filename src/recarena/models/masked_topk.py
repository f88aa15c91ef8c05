"""Turning scores into top-K lists: known-item masking and deterministic tie-breaking (docs/protocol.md §3)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recarena.topk import TopK

_FLOATS = (torch.float32, torch.float64)  # dtypes ranked as they are; others are cast to float32


def mask_known(scores: torch.Tensor, history: sp.csr_matrix) -> torch.Tensor:
    """Set the score of every item in the user's history to -inf, in place (row b ↔ history row b)."""
    if not history.indices.size:
        return scores
    counts = np.diff(history.indptr)
    if scores.device.type == "cpu" and scores.dtype in _FLOATS and scores.is_contiguous():
        # numpy's put at flat positions, straight into the tensor's buffer: no index tensors to build
        flat = np.repeat(np.arange(history.shape[0], dtype=np.int64) * scores.shape[1], counts) + history.indices
        np.put(scores.detach().numpy(), flat, -np.inf)
        return scores
    rows = torch.from_numpy(np.repeat(np.arange(history.shape[0]), counts)).to(scores.device)
    cols = torch.from_numpy(history.indices.astype(np.int64)).to(scores.device)
    scores[rows, cols] = float("-inf")
    return scores


def top_k(scores: torch.Tensor, k: int) -> TopK:
    """Top-k per row, highest score first, ties broken by ascending item index; -inf slots become -1.

    torch.topk does not promise which of several tied items it keeps, so it selects k+1: rows whose (k+1)-th
    score equals the k-th (no extra pass finds them) are filled by index explicitly; cost stays linear in the
    number of items. (numpy's argpartition, faster on many CPU batches, slows ~10x when a large block of equal
    scores sits on one side of the cut, e.g. the zeros of sparse scores or masked -inf.)"""
    scores = torch.as_tensor(scores)
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    if scores.dtype not in _FLOATS:
        scores = scores.float()
    if k in (0, n_items):  # no item or every item: nothing to choose between
        items, chosen = _ordered(torch.arange(k, device=scores.device).expand(n_rows, k), scores)
    else:
        values, items = torch.topk(scores, k + 1, dim=1)  # sorted: the items above the k-th score come first
        items, chosen = items[:, :k].contiguous(), values[:, :k].contiguous()
        surplus = values[:, k] == values[:, k - 1]  # rows where topk had to pick among ties
        if surplus.any():
            rows = surplus.nonzero()[:, 0]
            items[rows] = _fill_ties(scores[rows], items[rows], chosen[rows])
        # scores come out descending already: only rows holding equal scores need those ordered by index
        tied = (surplus | (chosen[:, 1:] == chosen[:, :-1]).any(dim=1)).nonzero()[:, 0]
        if tied.numel():
            items[tied], chosen[tied] = _ordered(items[tied], chosen[tied])  # filled ties all score the k-th
    items = torch.where(torch.isneginf(chosen), torch.full_like(items, -1), items)
    return TopK(items=items, scores=chosen)


def _ordered(items: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's items and their scores by score descending, then index ascending (`values` pair `items`)."""
    items, by_index = torch.sort(items, dim=1)  # indices ascending first, then a stable sort by score
    values = torch.gather(values, 1, by_index)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    return torch.gather(items, 1, order), torch.gather(values, 1, order)


def _fill_ties(scores: torch.Tensor, items: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The k items of each row: all scores above the k-th, then the lowest-index items tied with it.

    `items`/`values` are torch.topk's k best (scores descending, ties picked arbitrarily): the items above the
    k-th score are a prefix of them, so only the rest of each row is replaced, by its first tied items (`nonzero`
    lists each row's ties in ascending index, rows one after the other)."""
    k = items.shape[1]
    kth = values[:, -1:]
    n_above = (values > kth).sum(dim=1, keepdim=True)
    ties = (scores == kth).nonzero()  # (row, item); every row has at least k - n_above + 1 of them
    counts = torch.bincount(ties[:, 0], minlength=scores.shape[0])
    first = torch.cumsum(counts, dim=0) - counts  # where each row's ties start in `ties`
    slot = torch.arange(k, device=items.device)
    replaced = slot >= n_above
    filled = items.clone()
    filled[replaced] = ties[(first[:, None] + slot - n_above)[replaced], 1]
    return filled


def rank_scores(scores: torch.Tensor | np.ndarray, history: sp.csr_matrix, k: int) -> TopK:
    """Mask the history, then take the deterministic top-k: the one road from scores to a list."""
    scores = torch.as_tensor(scores)
    if scores.dtype not in _FLOATS:
        scores = scores.float()
    scores = torch.nan_to_num(scores, nan=float("-inf"))  # a new tensor: the caller's scores stay as they are
    return top_k(mask_known(scores, history), k)
