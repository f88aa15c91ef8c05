"""Trust-aware user-based CF (the social family): a user's neighbours are the users they trust, directly or through
others, blended with the users whose ratings are most similar.

With T the trust matrix (row u: whom u trusts, the link's weight), propagation to depth d gives
    P = Σ_{t=1..d} decay^(t−1) · T^t        (self-links removed),
and with C_k the top-k shrunk cosine similarities of user-based CF (from the scored user's history),
    W(u, ·) = β · P(u, ·) / Σ P(u, ·) + (1 − β) · C_k(u, ·) / Σ C_k(u, ·),    score(u, i) = Σ_v W(u, v) · r_vi.
Both parts are normalised to sum 1 per user, so β weighs them whatever their scales; a user who trusts nobody (or a
session) is scored by rating similarity alone, which ranks exactly as user-CF does."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.models.recommenders.knn import UserKNN


def propagate_trust(trust: sp.csr_matrix, depth: int, decay: float) -> sp.csr_matrix:
    """Σ_{t=1..depth} decay^(t−1) · trust^t with the diagonal removed (nobody is their own neighbour)."""
    total = trust.astype(np.float64).tocsr()
    step = total
    for t in range(2, depth + 1):
        step = step @ trust
        total = total + (decay ** (t - 1)) * step
    total = total.tolil()
    total.setdiag(0.0)
    total = total.tocsr()
    total.eliminate_zeros()
    total.sort_indices()
    return total


def row_normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its sum (empty rows stay empty)."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64), where=sums > 0)
    return sp.diags(inverse) @ matrix


class TrustKNN(UserKNN):
    """User-based CF whose neighbourhood also holds the users the scored user trusts (propagated to `depth`).

    Parameters
    ----------
    k, shrink: the rating-similarity neighbours, as in UserKNN.
    beta: share of the trust part in the blend (0: plain user-CF; 1: trust alone).
    depth: how many trust hops are followed; decay: weight of each further hop (hop t weighs decay^(t−1)).
    """

    def __init__(
        self, k: int = 100, shrink: float = 0.0, beta: float = 0.5, depth: int = 2, decay: float = 0.5
    ) -> None:
        super().__init__(k=k, shrink=shrink)
        if not 0.0 <= float(beta) <= 1.0:
            raise ConfigError(f"model.recommender.beta={beta!r}: the trust share must be in [0, 1]")
        if isinstance(depth, bool) or int(depth) != depth or depth < 1:
            raise ConfigError(f"model.recommender.depth={depth!r}: trust propagation needs depth >= 1 (hops)")
        if not 0.0 < float(decay) <= 1.0:
            raise ConfigError(f"model.recommender.decay={decay!r}: the weight of a further hop must be in (0, 1]")
        self.beta, self.depth, self.decay = float(beta), int(depth), float(decay)
        self.trusted: sp.csr_matrix | None = None  # row-normalised propagated trust, users × users

    @property
    def sessions(self) -> bool:
        """A session has no trust links: only with beta = 0 (plain user-CF) is its list the one its history gives."""
        return self.beta == 0 and super().sessions

    def _fit(self, data: Interactions) -> None:
        trust = data.trust_matrix()
        if trust is None:
            raise ConfigError(
                f"model=trust needs a trust table (who trusts whom), and data={data.name} has none; use a social "
                "source such as data=filmtrust, or data=synthetic data.trust_links=N"
            )
        super()._fit(data)
        self.trusted = row_normalise(propagate_trust(trust, self.depth, self.decay)).tocsr()

    def neighbour_weights(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix:
        """W of the module docstring for `users` (a session, user −1, has no trust row)."""
        users = np.asarray(users)
        similar = row_normalise(self.neighbours(users, history))
        rows = np.where(users >= 0, users, 0)
        trusted = self.trusted[rows].multiply((users >= 0)[:, None]).tocsr()
        return (self.beta * trusted + (1.0 - self.beta) * similar).tocsr()

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((self.neighbour_weights(users, history) @ self.train).todense(), dtype=np.float32)

    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        return self.explain_items(user, np.array([item]), history)[0]

    def explain_items(self, user: int, items: np.ndarray, history: sp.csr_matrix) -> list[str]:
        """How many trusted and how many similar users liked each item."""
        items = np.asarray(items)
        trusted = self.trusted[user].indices if user >= 0 else np.array([], dtype=np.int32)
        similar = self.neighbours(np.array([user]), history).indices
        liked_t = np.asarray(self.train[trusted][:, items].sum(axis=0)).ravel().astype(int)
        liked_s = np.asarray(self.train[similar][:, items].sum(axis=0)).ravel().astype(int)
        return [
            f"{t} of the {len(trusted)} users you trust (directly or through others) and {s} of your "
            f"{len(similar)} most similar users liked it"
            for t, s in zip(liked_t, liked_s, strict=True)
        ]
