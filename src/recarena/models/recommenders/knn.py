"""Item-based and user-based collaborative filtering (neighbourhood models on shrunk cosine similarity)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.models.recommenders.base import Recommender
from recarena.models.recommenders.similarity import cosine_topk


def _check(k: int, shrink: float, model: str) -> None:
    if int(k) < 1:
        raise ConfigError(f"model.k={k!r}: {model} needs at least one neighbour (k >= 1)")
    if shrink < 0:
        raise ConfigError(f"model.shrink={shrink!r}: must be >= 0")


class ItemKNN(Recommender):
    """Item-based CF: score(u, i) = Σ_{j ∈ history(u)} sim_k(j, i), sim_k keeping j's k nearest items."""

    def __init__(self, k: int = 100, shrink: float = 0.0) -> None:
        _check(k, shrink, "itemcf")
        self.k, self.shrink = int(k), float(shrink)
        self.similarity: sp.csr_matrix | None = None

    def _fit(self, data: Interactions) -> None:
        items = data.train.T.tocsr()
        self_index = np.arange(items.shape[0])
        self.similarity = cosine_topk(items, items, self.k, self.shrink, exclude=self_index)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((history @ self.similarity).todense(), dtype=np.float32)

    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        liked = history.indices
        weights = np.asarray(self.similarity[liked, item].todense()).ravel() if liked.size else np.zeros(0)
        if not weights.size or weights.max() <= 0:
            return "no item you liked is among its nearest neighbours"
        best = liked[int(np.argmax(weights))]
        return f"because you liked {self.label(best)} (similarity {weights.max():.2f})"


class UserKNN(Recommender):
    """User-based CF: score(u, i) = Σ_{v ∈ N_k(u)} sim(u, v)·r_vi, neighbours found from u's current history."""

    def __init__(self, k: int = 100, shrink: float = 0.0) -> None:
        _check(k, shrink, "usercf")
        self.k, self.shrink = int(k), float(shrink)
        self.train: sp.csr_matrix | None = None

    def _fit(self, data: Interactions) -> None:
        self.train = data.train

    def neighbours(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix:
        """Top-k similar train users of each scored user (the user itself excluded)."""
        return cosine_topk(history, self.train, self.k, self.shrink, exclude=np.asarray(users))

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((self.neighbours(users, history) @ self.train).todense(), dtype=np.float32)

    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        near = self.neighbours(np.array([user]), history)
        liked = int(np.asarray(self.train[near.indices, item].todense()).ravel().astype(bool).sum())
        return f"{liked} of your {near.nnz} most similar users liked it"
