"""Item-based and user-based collaborative filtering (neighbourhood models on shrunk cosine similarity).

With `text_weight` α > 0 and a text `encoder` they become LLM-feature CF: the neighbour similarity is
(1 − α)·cf_sim + α·text_sim (item text for ItemKNN, user text for UserKNN), with the same top-k selection."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.models.recommenders.recommender import Recommender
from recarena.models.recommenders.similarity import cosine_topk
from recarena.text.encoders import TextEncoder
from recarena.text.item_text import Template, item_texts, user_texts


def _check(k: int, shrink: float, model: str, text_weight: float = 0.0, encoder: TextEncoder | None = None) -> None:
    if int(k) < 1:
        raise ConfigError(f"model.recommender.k={k!r}: {model} needs at least one neighbour (k >= 1)")
    if shrink < 0:
        raise ConfigError(f"model.recommender.shrink={shrink!r}: must be >= 0")
    if not 0.0 <= float(text_weight) <= 1.0:
        raise ConfigError(f"model.recommender.text_weight={text_weight!r}: must be in [0, 1]")
    if float(text_weight) > 0 and encoder is None:
        raise ConfigError(f"model.recommender.encoder: {model} with text_weight={text_weight} needs a text encoder")


class ItemKNN(Recommender):
    """Item-based CF: score(u, i) = Σ_{j ∈ history(u)} sim_k(j, i), sim_k keeping j's k nearest items."""

    def __init__(
        self,
        k: int = 100,
        shrink: float = 0.0,
        text_weight: float = 0.0,
        encoder: TextEncoder | None = None,
        item_template: Template | None = None,
    ) -> None:
        _check(k, shrink, "itemcf", text_weight, encoder)
        self.k, self.shrink = int(k), float(shrink)
        self.text_weight, self.encoder, self.item_template = float(text_weight), encoder, item_template
        self.similarity: sp.csr_matrix | None = None
        self.item_vectors = None

    def _fit(self, data: Interactions) -> None:
        items = data.train.T.tocsr()
        self_index = np.arange(items.shape[0])
        if self.text_weight > 0:
            texts = item_texts(data, self.item_template)
            self.item_vectors = self.encoder.fit_encode(texts)
        self.similarity = cosine_topk(
            items,
            items,
            self.k,
            self.shrink,
            exclude=self_index,
            text_left=self.item_vectors,
            text_right=self.item_vectors,
            text_weight=self.text_weight,
        )

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((history @ self.similarity).todense(), dtype=np.float32)

    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        return self.explain_items(user, np.array([item]), history)[0]

    def explain_items(self, user: int, items: np.ndarray, history: sp.csr_matrix) -> list[str]:
        """The liked item most similar to each recommended one (one similarity block for the whole list)."""
        liked = history.indices
        block = self.similarity[liked][:, np.asarray(items)].toarray() if liked.size else np.zeros((0, len(items)))
        lines = []
        for column in range(len(items)):
            weights = block[:, column]
            if not weights.size or weights.max() <= 0:
                lines.append("no item you liked is among its nearest neighbours")
                continue
            best = liked[int(np.argmax(weights))]
            lines.append(f"because you liked {self.label(best)} (similarity {weights.max():.2f})")
        return lines


class UserKNN(Recommender):
    """User-based CF: score(u, i) = Σ_{v ∈ N_k(u)} sim(u, v)·r_vi, neighbours found from u's current history."""

    def __init__(
        self,
        k: int = 100,
        shrink: float = 0.0,
        text_weight: float = 0.0,
        encoder: TextEncoder | None = None,
        user_template: Template | None = None,
    ) -> None:
        _check(k, shrink, "usercf", text_weight, encoder)
        self.k, self.shrink = int(k), float(shrink)
        self.text_weight, self.encoder, self.user_template = float(text_weight), encoder, user_template
        self.train: sp.csr_matrix | None = None
        self.user_vectors = None

    def _fit(self, data: Interactions) -> None:
        self.train = data.train
        if self.text_weight > 0:
            self.user_vectors = self.encoder.fit_encode(user_texts(data, self.user_template))

    def neighbours(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix:
        """Top-k similar train users of each scored user (the user itself excluded)."""
        users = np.asarray(users)
        text_left = self.user_vectors[users] if self.user_vectors is not None else None
        return cosine_topk(
            history,
            self.train,
            self.k,
            self.shrink,
            exclude=np.where(users >= 0, users, -1),
            text_left=text_left,
            text_right=self.user_vectors,
            text_weight=self.text_weight,
        )

    @property
    def sessions(self) -> bool:
        """Neighbours come from the history alone, unless the users' own texts weigh in."""
        return self.text_weight == 0

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((self.neighbours(users, history) @ self.train).todense(), dtype=np.float32)

    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        near = self.neighbours(np.array([user]), history)
        liked = int(np.asarray(self.train[near.indices, item].todense()).ravel().astype(bool).sum())
        return f"{liked} of your {near.nnz} most similar users liked it"
