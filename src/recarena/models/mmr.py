"""Re-ranking for diversity and de-duplication: the model's top-N candidates → a top-K list by greedy MMR.

One post-processing stage for every family, applied in `RecModule`'s val/test steps before the evaluation callback
sees the lists, so ndcg, ILD and coverage measure the accuracy/diversity trade-off (Carbonell & Goldstein 1998)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from omegaconf import DictConfig
from sklearn.preprocessing import normalize

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.topk import TopK
from recarena.utils.instantiate import build

if TYPE_CHECKING:
    from recarena.models.rec_module import RecModule

log = logging.getLogger(__name__)

SIMILARITIES = ("text", "cooccurrence")
Vectors = np.ndarray | sp.csr_matrix  # one row per item


class Reranker:
    """Greedy MMR over each user's top-`candidates` list, skipping items whose de-dup group is already listed.

    Each step picks the candidate maximising lam · rel(i) − (1 − lam) · max_{j listed} sim(i, j), where rel is the
    model's score min-max normalised over that user's valid candidates (1 for all when they are equal) and the max
    over an empty list is 0; ties go to the candidate the model ranked first. With lam=1 and no duplicates the list
    is the model's own top-k.

    Parameters
    ----------
    lam: weight of relevance against redundancy, in [0, 1] (1 = the model's ranking, 0 = diversity only).
    candidates: N, how many of the model's top items are re-ranked.
    similarity: "text" (cosine of TF-IDF vectors of the item texts, `recarena.text`) or "cooccurrence" (cosine of
        the items' columns in the train interaction matrix).
    dedup: None (off); "title" (items with one `Interactions.item_label`, title and year, are duplicates); or a
        column of the item table whose equal values are duplicates (nulls are never duplicates)."""

    def __init__(
        self, lam: float = 0.5, candidates: int = 50, similarity: str = "text", dedup: str | None = "title"
    ) -> None:
        if isinstance(lam, bool) or not isinstance(lam, int | float) or not 0.0 <= float(lam) <= 1.0:
            raise ConfigError(f"rerank.lam={lam!r}: must be in [0, 1] (1 = the model's own ranking)")
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise ConfigError(f"rerank.candidates={candidates!r}: must be an integer >= 1 (the model's top-N)")
        if similarity not in SIMILARITIES:
            raise ConfigError(f"rerank.similarity={similarity!r}: expected one of {list(SIMILARITIES)}")
        if dedup is not None and (not isinstance(dedup, str) or not dedup):
            raise ConfigError(f"rerank.dedup={dedup!r}: expected null, title or an item-table column name")
        self.lam, self.candidates, self.similarity, self.dedup = float(lam), candidates, similarity, dedup
        self.vectors: Vectors | None = None
        self.groups: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self.vectors is not None

    def fit(self, data: Interactions) -> Reranker:
        """Unit-norm item vectors by `similarity` and the de-dup group id of every item."""
        if self.similarity == "text":
            from recarena.text.encoders import TfidfEncoder
            from recarena.text.item_text import item_texts

            vectors = TfidfEncoder().fit_encode(item_texts(data, key="rerank.similarity"))
        else:
            vectors = data.train.T.tocsr()
        return self.set_items(vectors, self._groups(data))

    def set_items(self, vectors: Vectors, groups: np.ndarray | None = None) -> Reranker:
        """Use these item vectors (row i = item i; L2-normalised here) and group ids directly; `fit` derives both."""
        vectors = normalize(sp.csr_matrix(vectors, dtype=np.float64) if sp.issparse(vectors) else np.asarray(vectors))
        if groups is not None and len(groups) != vectors.shape[0]:
            raise ValueError(f"{len(groups)} group ids for {vectors.shape[0]} item vectors")
        self.vectors = vectors
        self.groups = None if groups is None else np.asarray(groups, dtype=np.int64)
        return self

    def _groups(self, data: Interactions) -> np.ndarray | None:
        """Group id per item: equal ids are duplicates of each other."""
        if self.dedup is None:
            return None
        if self.dedup == "title":
            if data.items is None or "title" not in data.items.columns:
                log.warning("rerank.dedup=title: the data has no item titles, so no item counts as a duplicate")
            keys = [data.item_label(i) for i in range(data.n_items)]
        else:
            columns = [] if data.items is None else data.items.columns
            if self.dedup not in columns:
                raise ConfigError(
                    f"rerank.dedup={self.dedup!r}: the item table has no such column (it has {sorted(columns)})"
                )
            keys = data.items[self.dedup].to_list()
        return group_ids(keys)

    def rerank(self, top: TopK, k: int) -> TopK:
        """Each user's top-k re-ranked from the first `candidates` of `top` (best first, -1 = empty slot).

        The scores are the model's original scores of the chosen items; empty slots (-1 items or -inf scores in
        `top`, or nothing left after de-duplication) come last as item -1 with score -inf. `invalid` is kept."""
        if not self.fitted:
            raise RuntimeError("Reranker.rerank before fit: call fit(data) first")
        device = top.items.device
        items = top.items[:, : self.candidates].cpu().numpy().astype(np.int64)
        scores = top.scores[:, : self.candidates].detach().cpu().double().numpy()
        valid = (items >= 0) & np.isfinite(scores)
        safe = np.where(valid, items, 0)
        groups = None if self.groups is None else np.where(valid, self.groups[safe], -1)
        order = mmr(minmax_relevance(scores, valid), self._similarities(safe), valid, groups, self.lam, k)
        chosen = order >= 0
        rows = np.arange(len(items))[:, None]
        out_items = np.where(chosen, items[rows, np.maximum(order, 0)], -1)
        out_scores = np.where(chosen, scores[rows, np.maximum(order, 0)], -np.inf)
        return TopK(
            torch.from_numpy(out_items).to(device=device, dtype=top.items.dtype),
            torch.from_numpy(out_scores).to(device=device, dtype=top.scores.dtype),
            top.invalid,
        )

    def _similarities(self, items: np.ndarray) -> np.ndarray:
        """(users, N, N) cosine similarity between each user's candidates."""
        out = np.zeros((items.shape[0], items.shape[1], items.shape[1]))
        for row, listed in enumerate(items):
            vectors = self.vectors[listed]
            gram = vectors @ vectors.T
            out[row] = gram.toarray() if sp.issparse(gram) else gram
        return out


def minmax_relevance(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scores scaled to [0, 1] per row over its valid entries (1 where they are all equal; 0 for invalid ones)."""
    low = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
    high = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
    span = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(span > 0, (scores - low) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(valid, scaled, 0.0)


def mmr(
    relevance: np.ndarray,
    similarity: np.ndarray,
    valid: np.ndarray,
    groups: np.ndarray | None,
    lam: float,
    k: int,
) -> np.ndarray:
    """Greedy MMR, all rows at once: (users, k) positions into the candidate lists, -1 once none is left.

    `relevance`/`valid`/`groups` are (users, N), `similarity` (users, N, N); a chosen candidate closes every candidate
    of its group. np.argmax returns the first maximum, so ties go to the earlier candidate."""
    n_rows, width = relevance.shape
    k = min(k, width)
    rows = np.arange(n_rows)
    order = np.full((n_rows, k), -1, dtype=np.int64)
    available = valid.copy()
    redundancy = np.zeros((n_rows, width))  # max similarity to the items listed so far (0 for an empty list)
    for step in range(k):
        value = np.where(available, lam * relevance - (1.0 - lam) * redundancy, -np.inf)
        pick = value.argmax(axis=1)
        found = available[rows, pick]
        if not found.any():
            break
        order[found, step] = pick[found]
        available[rows[found], pick[found]] = False
        if groups is not None:
            available &= ~((groups == groups[rows, pick][:, None]) & found[:, None])
        redundancy = np.where(found[:, None], np.maximum(redundancy, similarity[rows, pick]), redundancy)
    return order


def group_ids(keys: list) -> np.ndarray:
    """Dense int ids of hashable keys (lists count by their items); each null key gets an id of its own."""
    ids: dict = {}
    out = np.empty(len(keys), dtype=np.int64)
    fresh = len(keys)  # ids for nulls, above any id a key can get
    for index, key in enumerate(keys):
        if key is None:
            out[index], fresh = fresh, fresh + 1
            continue
        key = tuple(key) if isinstance(key, list) else key
        out[index] = ids.setdefault(key, len(ids))
    return out


def attach_reranker(model: RecModule, cfg: DictConfig, data: Interactions | None = None) -> Reranker | None:
    """Build `cfg.rerank` (null: none) into `model.reranker`, fitted on `data` when given; without data (DDP
    workers before their data module is set up) the model fits it on first use from its trainer's data module."""
    reranker = build(cfg.get("rerank"), "rerank")
    if reranker is not None and data is not None:
        reranker.fit(data)
    model.reranker = reranker
    return reranker
