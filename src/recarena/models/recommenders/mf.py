"""Matrix factorisation through implicit (ALS, BPR, or any implicit factor model) behind one adapter."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recarena.data.interactions import Interactions
from recarena.models.recommenders.recommender import Recommender


class MatrixFactorization(Recommender):
    """Adapter for an implicit matrix-factorisation model: score(u, i) = user_factor(u) · item_factor(i).

    The implicit model arrives ready-built (from its own `_target_` config), so ALS and BPR share this
    code; pass `use_gpu=False` there unless a GPU is wanted (implicit picks CUDA when it finds it)."""

    sessions = False  # a user's factors are learnt in fit; a new history would need a fold-in step

    def __init__(self, model) -> None:
        self.model = model

    def _fit(self, data: Interactions) -> None:
        self.model.fit(data.train.astype(np.float32), show_progress=False)
        self.user_factors = _to_numpy(self.model.user_factors)
        self.item_factors = _to_numpy(self.model.item_factors)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self.user_factors[np.asarray(users)] @ self.item_factors.T

    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        return self.explain_items(user, np.array([item]), history)[0]

    def explain_items(self, user: int, items: np.ndarray, history: sp.csr_matrix) -> list[str]:
        """The liked item closest (cosine of item factors) to each recommended one, in one product."""
        liked = history.indices
        if not liked.size:
            return ["matches your taste profile (latent factors)"] * len(items)
        vectors, targets = self.item_factors[liked], self.item_factors[np.asarray(items)]
        norms = np.linalg.norm(vectors, axis=1)[:, None] * np.linalg.norm(targets, axis=1)[None, :] + 1e-12
        best = liked[np.argmax(vectors @ targets.T / norms, axis=0)]
        return [f"close in taste space to {self.label(int(b))}, which you liked" for b in best]


def _to_numpy(factors) -> np.ndarray:
    """implicit keeps GPU factors in its own array type; bring them to numpy."""
    return np.asarray(factors.to_numpy() if hasattr(factors, "to_numpy") else factors, dtype=np.float32)
