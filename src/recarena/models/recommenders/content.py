"""Content-based recommender: cosine between a user profile and item text vectors (scores cold items too)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.models.recommenders.recommender import Recommender
from recarena.text.encoders import TextEncoder, Vectors
from recarena.text.item_text import Template, item_texts, user_texts

PROFILES = ("history", "text", "both")


class ContentBased(Recommender):
    """score(u, i) = cos(profile(u), v_i), v_i = encoder(item text); no interactions needed for an item.

    Parameters
    ----------
    encoder: a `recarena.text.encoders` encoder (fitted on the item texts, so TF-IDF learns their vocabulary).
    profile: "history" (weighted mean of the history items' vectors), "text" (the user's own text vector)
        or "both" (unit history profile and unit user-text vector mixed with `user_weight`).
    half_life: recency weighting of the history: an item `a` steps older than the user's latest known item
        weighs 0.5 ** (a / half_life) (time order from `data.sequences`); None weighs all items equally.
    user_weight: share of the user-text vector in the "both" profile.
    item_template, user_template: see `recarena.text.item_text` (None: the defaults for the data)."""

    def __init__(
        self,
        encoder: TextEncoder,
        profile: str = "history",
        half_life: float | None = None,
        user_weight: float = 0.5,
        item_template: Template | None = None,
        user_template: Template | None = None,
    ) -> None:
        if profile not in PROFILES:
            raise ConfigError(f"model.recommender.profile={profile!r}: expected one of {list(PROFILES)}")
        if half_life is not None and not float(half_life) > 0:
            raise ConfigError(f"model.recommender.half_life={half_life!r}: must be > 0 (or null for no decay)")
        if not 0.0 <= float(user_weight) <= 1.0:
            raise ConfigError(f"model.recommender.user_weight={user_weight!r}: must be in [0, 1]")
        self.encoder, self.profile = encoder, profile
        self.half_life = None if half_life is None else float(half_life)
        self.user_weight = float(user_weight)
        self.item_template, self.user_template = item_template, user_template
        self.item_vectors: Vectors | None = None
        self.user_vectors: Vectors | None = None
        self.genres: list[list[str]] | None = None

    def _fit(self, data: Interactions) -> None:
        self.item_vectors = self.encoder.fit_encode(item_texts(data, self.item_template))
        self.user_vectors = None
        if self.profile != "history":
            self.user_vectors = self.encoder.encode(user_texts(data, self.user_template))
        has_genres = data.items is not None and "genres" in data.items.columns
        self.genres = data.items["genres"].to_list() if has_genres else None

    # -- scoring -------------------------------------------------------------------------------------------
    def history_weights(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix:
        """The history rows re-weighted by recency (a copy; unchanged without `half_life`)."""
        weights = sp.csr_matrix(history, dtype=np.float64, copy=True)
        if self.half_life is None:
            return weights
        sequences = self.data.sequences("test")  # train + valid time order; only the history rows' items are used
        for row, user in enumerate(np.asarray(users)):
            lo, hi = weights.indptr[row], weights.indptr[row + 1]
            if hi > lo:  # a session (user -1) lists its items in the order they were seen
                order = weights.indices[lo:hi] if user < 0 else sequences[int(user)]
                age = _ages(weights.indices[lo:hi], order)
                weights.data[lo:hi] *= 0.5 ** (age / self.half_life)
        return weights

    @property
    def sessions(self) -> bool:
        """A history profile can be built for any history; a text profile needs the user's own text."""
        return self.profile == "history"

    def profiles(self, users: np.ndarray, history: sp.csr_matrix) -> Vectors:
        """Unit-norm profile vectors of the scored users (all-zero when there is nothing to build one from)."""
        users = np.asarray(users)
        text_share = {"history": 0.0, "text": 1.0, "both": self.user_weight}[self.profile]
        mixed = 0.0
        if text_share < 1:
            mixed = (1.0 - text_share) * self._history_profile(users, history)
        if text_share > 0:
            mixed = text_share * normalize(self.user_vectors[users]) + mixed
        return normalize(mixed)

    def _history_profile(self, users: np.ndarray, history: sp.csr_matrix) -> Vectors:
        weights = self.history_weights(users, history)
        return normalize(weights @ self.item_vectors)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return _dense(self.profiles(users, history) @ self.item_vectors.T)

    # -- explanation ---------------------------------------------------------------------------------------
    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        liked = history.indices
        target = self.item_vectors[item]
        if not liked.size:
            similarity = float(self.score(np.array([user]), history)[0, item])
            return f"matches your profile (text similarity {similarity:.2f})"
        sims = _dense(self.item_vectors[liked] @ target.T).ravel()
        best = int(liked[int(np.argmax(sims))])
        line = f"similar to {self.label(best)}, which you liked (text similarity {sims.max():.2f})"
        if self.genres is not None:
            shared = [g for g in (self.genres[item] or []) if g in set(self.genres[best] or [])]
            if shared:
                line += f"; shared genres: {', '.join(shared)}"
        return line


def _ages(items: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """How many of `items` are more recent than each one in the user's time order (items not in it count as
    the most recent, in index order)."""
    position = np.full(len(items), -1, dtype=np.int64)
    if sequence.size:
        sorter = np.argsort(sequence, kind="stable")
        at = np.minimum(np.searchsorted(sequence, items, sorter=sorter), len(sequence) - 1)
        found = sequence[sorter[at]] == items
        position[found] = sorter[at[found]]
    unknown = position < 0
    position[unknown] = len(sequence) + np.arange(int(unknown.sum()))
    order = np.argsort(-position, kind="stable")
    ages = np.empty(len(items), dtype=np.float64)
    ages[order] = np.arange(len(items))
    return ages


def _dense(matrix) -> np.ndarray:
    """Dense float32 array of a product that may be sparse."""
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float32)
