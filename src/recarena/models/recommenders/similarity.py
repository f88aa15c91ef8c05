"""Shrunk cosine similarity with top-k neighbours, computed in row blocks so memory stays bounded."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def row_norms(matrix: sp.csr_matrix) -> np.ndarray:
    """Euclidean norm of every row of a sparse matrix."""
    return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())


def cosine_topk(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    k: int,
    shrink: float = 0.0,
    exclude: np.ndarray | None = None,
    block_rows: int = 1024,
) -> sp.csr_matrix:
    """Rows of `left` × rows of `right`: sim = a·b / (|a||b| + shrink), keeping each row's k largest positive
    values (ties to the lower index). `exclude[r]` is a column whose similarity row r must not keep (itself)."""
    left, right = sp.csr_matrix(left, dtype=np.float32), sp.csr_matrix(right, dtype=np.float32)
    left_norm, right_norm = row_norms(left), row_norms(right)
    right_t = right.T.tocsc()
    k = max(0, min(k, right.shape[0]))
    data, indices, counts = [], [], []
    for start in range(0, left.shape[0], block_rows):
        stop = min(start + block_rows, left.shape[0])
        dots = (left[start:stop] @ right_t).toarray()
        denom = left_norm[start:stop, None] * right_norm[None, :] + shrink
        sims = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        if exclude is not None:
            sims[np.arange(stop - start), exclude[start:stop]] = 0.0
        cols = _topk_columns(sims, k)
        vals = np.take_along_axis(sims, cols, axis=1)
        keep = vals > 0
        data.append(vals[keep])
        indices.append(cols[keep])
        counts.append(keep.sum(axis=1))
    indptr = np.zeros(left.shape[0] + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=indptr[1:])
    return sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, np.float32),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            indptr,
        ),
        shape=(left.shape[0], right.shape[0]),
    )


def _topk_columns(sims: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values, ascending index among equals (deterministic)."""
    if k == 0:
        return np.zeros((sims.shape[0], 0), dtype=np.int64)
    if k >= sims.shape[1]:
        return np.broadcast_to(np.arange(sims.shape[1]), sims.shape).copy()
    kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1 : k]
    above = sims > kth
    tied = sims == kth
    take = above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(axis=1, keepdims=True)))
    return np.nonzero(take)[1].reshape(sims.shape[0], k)
