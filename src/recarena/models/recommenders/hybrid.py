"""Hybrid recommender: any Recommenders fused by weighted normalised scores, reciprocal rank fusion or switching."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.models.recommenders.recommender import Recommender

STRATEGIES = ("weighted", "rrf", "switching")
NORMALIZATIONS = ("minmax", "zscore")


class Hybrid(Recommender):
    """Fits its members once on the same data and fuses their scores per user.

    Parameters
    ----------
    members: name → Recommender (or a list, named member0, member1, ...), in order; `weights` follow it.
    strategy: "weighted": Σ_m w_m · norm_u(s_m) with per-user `normalization` ("minmax" or "zscore", over the
        items the user does not know yet); "rrf": Σ_m w_m / (rrf_k + rank_m(i)), ranks from 1 among those items
        (ties by item index); "switching": users with <= `switch_threshold` history items get the second member,
        the others the first.
    weights: one non-negative weight per member (None: equal weights); a member with weight 0 is not scored."""

    def __init__(
        self,
        members: Mapping[str, Recommender] | Sequence[Recommender],
        strategy: str = "weighted",
        weights: Sequence[float] | Mapping[str, float] | None = None,
        normalization: str = "minmax",
        rrf_k: float = 60.0,
        switch_threshold: int = 5,
    ) -> None:
        self.members = _named_members(members)
        names = list(self.members)
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"model.recommender.strategy={strategy!r}: unknown strategy; expected one of {list(STRATEGIES)}"
            )
        if normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"model.recommender.normalization={normalization!r}: expected one of {list(NORMALIZATIONS)}"
            )
        self.weights = _weights(weights, names)
        if strategy == "switching" and len(names) != 2:
            raise ConfigError(
                f"model.recommender.members: strategy=switching needs exactly 2 members (A for users with more than "
                f"switch_threshold history items, B for the others), got {len(names)}: {names}"
            )
        if float(rrf_k) < 0:
            raise ConfigError(f"model.recommender.rrf_k={rrf_k!r}: must be >= 0")
        if int(switch_threshold) < 0:
            raise ConfigError(f"model.recommender.switch_threshold={switch_threshold!r}: must be >= 0")
        self.strategy, self.normalization = strategy, normalization
        self.rrf_k, self.switch_threshold = float(rrf_k), int(switch_threshold)

    @property
    def sessions(self) -> bool:
        """A session is scored only if every member can score it."""
        return all(member.sessions for member in self.members.values())

    def _fit(self, data: Interactions) -> None:
        for member in self.members.values():
            member.fit(data)

    # -- scoring -------------------------------------------------------------------------------------------
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        users = np.asarray(users)
        if self.strategy == "switching":
            return self._switch(users, history)
        known = history.toarray().astype(bool)
        fused = np.zeros(known.shape, dtype=np.float64)
        for member, weight in zip(self.members.values(), self.weights, strict=True):
            if weight > 0:
                fused += weight * self.member_part(member, users, history, known)
        return fused.astype(np.float32)

    def member_part(
        self, member: Recommender, users: np.ndarray, history: sp.csr_matrix, known: np.ndarray
    ) -> np.ndarray:
        """A member's unweighted contribution: its normalised scores (weighted) or 1 / (rrf_k + rank) (rrf)."""
        scores = np.asarray(member.score(users, history), dtype=np.float64)
        scores = np.where(np.isfinite(scores), scores, -np.inf)  # NaN / -inf: ranked last
        if self.strategy == "rrf":
            return 1.0 / (self.rrf_k + ranks(scores, known))
        return normalise(scores, known, self.normalization)

    def _switch(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Member A's scores for users with more than `switch_threshold` history items, member B's for the rest."""
        member_a, member_b = self.members.values()
        short = np.diff(history.indptr) <= self.switch_threshold
        out = np.zeros(history.shape, dtype=np.float32)
        for member, rows in ((member_a, np.flatnonzero(~short)), (member_b, np.flatnonzero(short))):
            if rows.size:
                out[rows] = member.score(users[rows], history[rows])
        return out

    # -- explanation ---------------------------------------------------------------------------------------
    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        users = np.array([user])
        if self.strategy == "switching":
            short = history.nnz <= self.switch_threshold
            name = list(self.members)[1 if short else 0]
            reason = f"<= {self.switch_threshold}" if short else f"> {self.switch_threshold}"
            return f"{name} (you have {reason} items): {self.members[name].explain(user, item, history)}"
        known = history.toarray().astype(bool)
        shares = {
            name: weight * float(self.member_part(member, users, history, known)[0, item])
            for (name, member), weight in zip(self.members.items(), self.weights, strict=True)
            if weight > 0
        }
        name = max(shares, key=shares.get)
        total = sum(max(v, 0.0) for v in shares.values())
        share = f"{100 * max(shares[name], 0.0) / total:.0f}% of the fused score" if total > 0 else "top member"
        return f"{name} ({share}): {self.members[name].explain(user, item, history)}"


def ranks(scores: np.ndarray, known: np.ndarray) -> np.ndarray:
    """1-based rank of every item per row (score descending, ties by item index), known items ranked after all
    the others so they do not push unknown items down."""
    order = np.lexsort((-scores, known), axis=1)  # primary: unknown first; then score descending; stable → index
    out = np.empty(scores.shape, dtype=np.float64)
    np.put_along_axis(out, order, np.broadcast_to(np.arange(1, scores.shape[1] + 1), scores.shape), axis=1)
    return out


def normalise(scores: np.ndarray, known: np.ndarray, method: str) -> np.ndarray:
    """Per-row min-max to [0, 1] or z-score, with statistics over the finite scores of unknown items; a constant
    row becomes 0 and non-finite scores become the row's minimum."""
    usable = ~known & np.isfinite(scores)
    masked = np.where(usable, scores, np.nan)
    out = np.zeros(scores.shape, dtype=np.float64)
    rows = usable.any(axis=1)
    if not rows.any():
        return out
    m = masked[rows]
    if method == "minmax":
        low, high = np.nanmin(m, axis=1, keepdims=True), np.nanmax(m, axis=1, keepdims=True)
        spread = high - low
        scaled = np.divide(m - low, spread, out=np.zeros_like(m), where=spread > 0)
    else:
        mean, std = np.nanmean(m, axis=1, keepdims=True), np.nanstd(m, axis=1, keepdims=True)
        scaled = np.divide(m - mean, std, out=np.zeros_like(m), where=std > 0)
    floor = np.nanmin(scaled, axis=1, keepdims=True)
    out[rows] = np.where(np.isnan(scaled), floor, scaled)
    return out


def _named_members(members) -> dict[str, Recommender]:
    """Members as an ordered name → Recommender dict; none, or a non-Recommender, is a ConfigError."""
    if members is None:
        members = {}
    if isinstance(members, Mapping):
        named = {str(name): member for name, member in members.items() if member is not None}
    else:
        named = {f"member{i}": member for i, member in enumerate(members) if member is not None}
    if not named:
        raise ConfigError("model.recommender.members is empty: give at least one member Recommender config")
    for name, member in named.items():
        if not isinstance(member, Recommender):
            raise ConfigError(
                f"model.recommender.members.{name}: expected a Recommender (a config with a `_target_` class from "
                f"recarena.models.recommenders), got {type(member).__name__}"
            )
    return named


def _weights(weights: Sequence[float] | Mapping[str, float] | None, names: list[str]) -> list[float]:
    """One non-negative weight per member with a positive sum (None: equal; a mapping: by member name)."""
    if weights is None:
        return [1.0 / len(names)] * len(names)
    if isinstance(weights, Mapping):
        if set(map(str, weights)) != set(names):
            raise ConfigError(f"model.recommender.weights={dict(weights)!r}: expected one weight for each of {names}")
        weights = [weights[name] for name in names]
    if isinstance(weights, str | bytes) or not isinstance(weights, Sequence):
        raise ConfigError(f"model.recommender.weights={weights!r}: expected a list with one weight per member {names}")
    values = list(weights)
    if len(values) != len(names):
        raise ConfigError(
            f"model.recommender.weights={values!r}: {len(values)} weights for {len(names)} members {names}"
        )
    try:
        values = [float(w) for w in values]
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model.recommender.weights={values!r}: weights must be numbers") from error
    if any(not np.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise ConfigError(f"model.recommender.weights={values!r}: weights must be finite, >= 0, with a positive sum")
    return values
