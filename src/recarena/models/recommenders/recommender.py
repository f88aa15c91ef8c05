"""The Recommender contract for non-gradient families: fit on train, score users given their history."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp

from recarena.data.interactions import Interactions

SESSION = -1  # the user index of an anonymous session (a history given at request time)


class Recommender(ABC):
    """A plain model (no Trainer needed): `fit(data)` once, then `score(users, history)` for any users.

    `history` holds one row per scored user (train items at validation, train + valid at test);
    scores of known items are masked by the caller, not here."""

    data: Interactions | None = None
    # whether `score` can take a session (user index SESSION = -1: a history that is not in the data, its CSR row
    # listing the items in the order they were seen); False where scores come from per-user parameters
    sessions: bool = True

    def fit(self, data: Interactions) -> Recommender:
        """Fit on `data.train` only (docs/protocol.md §3) and remember the data for explanations."""
        self.data = data
        self._fit(data)
        return self

    @abstractmethod
    def _fit(self, data: Interactions) -> None: ...

    @abstractmethod
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Dense scores (len(users) × n_items); higher is better."""

    @abstractmethod
    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        """One line saying why `item` is recommended to `user` (history: that user's 1-row CSR)."""

    def explain_items(self, user: int, items: np.ndarray, history: sp.csr_matrix) -> list[str]:
        """`explain` for each of `items` (a family may do it in one pass: the service explains every list)."""
        return [self.explain(user, int(item), history) for item in items]

    def label(self, item: int) -> str:
        """The item's human-readable name."""
        assert self.data is not None, "fit() first"
        return self.data.item_label(item)
