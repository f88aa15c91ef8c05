"""Most-popular baseline: every user gets the items with the most train interactions."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recarena.data.interactions import Interactions
from recarena.models.recommenders.recommender import Recommender


class Popularity(Recommender):
    """score(u, i) = number of train users who interacted with i (a deterministic protocol check)."""

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def _fit(self, data: Interactions) -> None:
        self.counts = data.popularity().astype(np.float32)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), len(self.counts))).copy()

    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        return f"popular: {int(self.counts[item])} users interacted with it"
