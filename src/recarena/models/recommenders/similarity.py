"""Shrunk cosine similarity with top-k neighbours, computed in row blocks so memory stays bounded.

Optionally blended with a text similarity (LLM-feature CF): sim = (1 − α)·cf_sim + α·text_sim, then the same
top-k selection, so α = 0 is plain CF and α = 1 pure semantic neighbours."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import torch

# bytes one (left row × right row) cell costs in a block: dense dots, denominators and sims (float32), masks, and the
# sparse product before `toarray` (value + index); blocks are sized so that this stays within `max_block_bytes`
BLOCK_CELL_BYTES = 32


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
    text_left: np.ndarray | sp.spmatrix | None = None,
    text_right: np.ndarray | sp.spmatrix | None = None,
    text_weight: float = 0.0,
    max_block_bytes: int = 256 * 2**20,
) -> sp.csr_matrix:
    """Rows of `left` × rows of `right`: sim = a·b / (|a||b| + shrink), keeping each row's k largest positive
    values (ties to the lower index). `exclude[r]` is a column whose similarity row r must not keep (itself; -1: none).

    With `text_weight` α > 0, sim = (1 − α)·sim + α·cos(text_left[r], text_right[c]) before the top-k
    (text vectors: one row per row of `left` / `right`, dense or sparse).

    Rows are processed `block_rows` at a time, fewer when a block's dense (rows × len(right)) work would exceed
    `max_block_bytes` (UserKNN scores against every train user, so a block there is rows × n_users). Blocks run on
    torch.get_num_threads() threads, each within its share of `max_block_bytes`."""
    alpha = float(text_weight)
    left, right = sp.csr_matrix(left, dtype=np.float32), sp.csr_matrix(right, dtype=np.float32)
    left_norm, right_norm = row_norms(left), row_norms(right)
    right_t = right.T.tocsr()  # converted once: scipy turns a CSC operand into CSR on every product
    workers = max(1, torch.get_num_threads())  # blocks run concurrently: each gets its share of the byte budget
    per_block = max_block_bytes // (workers * BLOCK_CELL_BYTES * max(1, right.shape[0]))
    block_rows = max(1, min(block_rows, per_block, -(-left.shape[0] // workers)))  # ≥ one block for each worker
    if alpha > 0:
        text_left, text_right_t = _text_operands(text_left, text_right, left.shape[0], right.shape[0])
    k = max(0, min(k, right.shape[0]))

    def block(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values, columns and per-row counts of the kept similarities of rows start … start + block_rows."""
        stop = min(start + block_rows, left.shape[0])
        if alpha < 1:
            dots = (left[start:stop] @ right_t).toarray()
            denom = left_norm[start:stop, None] * right_norm[None, :] + shrink
            sims = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        else:
            sims = np.zeros((stop - start, right.shape[0]), dtype=np.float32)
        if alpha > 0:
            sims = ((1.0 - alpha) * sims + alpha * _dense(text_left[start:stop] @ text_right_t)).astype(np.float32)
        if exclude is not None:
            rows, cols = np.arange(stop - start), np.asarray(exclude[start:stop])
            sims[rows[cols >= 0], cols[cols >= 0]] = 0.0
        cols = _topk_columns(sims, k)
        vals = np.take_along_axis(sims, cols, axis=1)
        keep = vals > 0
        return vals[keep], cols[keep], keep.sum(axis=1)

    starts = range(0, left.shape[0], block_rows)
    if workers > 1 and len(starts) > 1:  # scipy's sparse product and torch.topk release the GIL
        with ThreadPoolExecutor(min(workers, len(starts))) as pool:
            parts = list(pool.map(block, starts))  # in block order: the result does not depend on the threads
    else:
        parts = [block(start) for start in starts]
    indptr = np.zeros(left.shape[0] + 1, dtype=np.int64)
    if parts:
        np.cumsum(np.concatenate([p[2] for p in parts]), out=indptr[1:])
    return sp.csr_matrix(
        (
            np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.float32),
            np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32),
            indptr,
        ),
        shape=(left.shape[0], right.shape[0]),
    )


def _text_operands(text_left, text_right, n_left: int, n_right: int) -> tuple:
    """Row-normalised text vectors of the left rows and the transposed ones of the right rows."""
    from sklearn.preprocessing import normalize

    if text_left is None or text_right is None:
        raise ValueError("cosine_topk: text_weight > 0 needs text_left and text_right")
    if text_left.shape[0] != n_left or text_right.shape[0] != n_right:
        raise ValueError(
            f"cosine_topk: text vectors have {text_left.shape[0]} and {text_right.shape[0]} rows, "
            f"expected {n_left} and {n_right}"
        )
    as_csr = sp.issparse(text_left) or sp.issparse(text_right)
    convert = (lambda m: sp.csr_matrix(m, dtype=np.float32)) if as_csr else (lambda m: np.asarray(m, np.float32))
    return normalize(convert(text_left)), normalize(convert(text_right)).T


def _dense(matrix) -> np.ndarray:
    """A product that may be sparse, as a dense float32 array."""
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float32)


def _topk_columns(sims: np.ndarray, k: int) -> np.ndarray:
    """Column indices (ascending) of each row's k largest values, ascending index among equals (deterministic).

    torch.topk finds the k largest (several times faster than numpy's argpartition); only rows whose k-th value is
    shared by more items than fit (often zeros) are filled by index explicitly, so the full-width running count is
    paid on those rows alone."""
    if k == 0:
        return np.zeros((sims.shape[0], 0), dtype=np.int64)
    n = sims.shape[1]
    if k >= n:
        return np.broadcast_to(np.arange(n), sims.shape).copy()
    cols = torch.topk(torch.from_numpy(np.ascontiguousarray(sims)), k, dim=1, sorted=False).indices.numpy()
    kth = np.take_along_axis(sims, cols, axis=1).min(axis=1, keepdims=True)
    surplus = np.flatnonzero(np.count_nonzero(sims >= kth, axis=1) > k)
    if surplus.size:
        sub, sub_kth = sims[surplus], kth[surplus]
        above, tied = sub > sub_kth, sub == sub_kth
        take = above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(axis=1, keepdims=True)))
        cols[surplus] = np.nonzero(take)[1].reshape(surplus.size, k)
    return np.sort(cols, axis=1)
