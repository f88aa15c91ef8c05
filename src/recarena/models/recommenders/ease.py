"""EASE (Steck 2019): item-based CF as a closed-form ridge regression of each item on all others, zero diagonal."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.models.recommenders.recommender import Recommender


class EASE(Recommender):
    """score(u, ·) = x_u · B with B = I − P · diag(1 / diag(P)), P = (XᵀX + λI)⁻¹: the least-squares item-item weights
    under an L2 penalty λ and the constraint diag(B) = 0 (no item explains itself). Large λ ranks by popularity."""

    def __init__(self, lam: float = 500.0) -> None:
        if isinstance(lam, bool) or not isinstance(lam, int | float) or not np.isfinite(lam) or lam < 0:
            raise ConfigError(f"model.recommender.lam={lam!r}: the L2 weight λ must be a finite number >= 0")
        self.lam = float(lam)
        self.weights: np.ndarray | None = None

    def _fit(self, data: Interactions) -> None:
        gram = (data.train.T @ data.train).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.lam
        try:
            inverse = np.linalg.inv(gram)
        except np.linalg.LinAlgError as error:
            raise ConfigError(
                f"model.recommender.lam={self.lam!r}: XᵀX + λI is singular (items without interactions need λ > 0)"
            ) from error
        weights = -inverse / np.diag(inverse)[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = weights.astype(np.float32)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(history @ self.weights)

    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        liked = history.indices
        if not liked.size:
            return "no history to weigh"
        weights = self.weights[liked, item]
        best = liked[int(np.argmax(weights))]
        return f"because you liked {self.label(best)} (EASE weight {weights.max():.3f})"
