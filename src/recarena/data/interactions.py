"""Interactions: the split data every family shares — CSR parts, time-ordered sequences, id maps, features."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sp

from recarena.data.splits import TEST, TRAIN, VALID

Stage = Literal["val", "test"]
INTEGER = re.compile(r"[+-]?[0-9]+")  # an integer id as text (no "1_000", no "1e3")


def _csr(frame: pl.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary users × items CSR (float32, int32 indices, sorted) of the frame's (u, i) rows."""
    rows = frame["u"].to_numpy().astype(np.int32)
    cols = frame["i"].to_numpy().astype(np.int32)
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    matrix.sort_indices()
    return matrix


@dataclass(frozen=True)
class Sequences:
    """Each user's items in time order, CSR-style: items[indptr[u]:indptr[u+1]]."""

    indptr: np.ndarray
    items: np.ndarray

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, n_users: int) -> Sequences:
        """Build from rows already sorted by (u, ts, pos)."""
        counts = np.bincount(frame["u"].to_numpy(), minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr=indptr, items=frame["i"].to_numpy().astype(np.int32))

    def __getitem__(self, user: int) -> np.ndarray:
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def rows(self, users: np.ndarray) -> list[np.ndarray]:
        """The sequences of `users` (views, no copy); slicing by Python ints keeps an evaluation batch cheap."""
        starts, ends = self.indptr[users].tolist(), self.indptr[np.asarray(users) + 1].tolist()
        return [self.items[a:b] for a, b in zip(starts, ends, strict=True)]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)


@dataclass
class Interactions:
    """The split dataset: train/valid/test CSR matrices over contiguous indices plus raw-id maps.

    `items`/`users` are feature tables aligned to indices (row i describes item i), or None."""

    frame: pl.DataFrame  # u, i, ts, pos, part — sorted by (u, ts, pos)
    user_ids: np.ndarray
    item_ids: np.ndarray
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    items: pl.DataFrame | None = None
    users: pl.DataFrame | None = None
    counts: dict[str, int] = field(default_factory=dict)
    name: str = "data"
    max_users: int | None = None  # eval.max_users: a seeded sample of each stage's users (docs/protocol.md §6)
    sample_seed: int = 0
    trust: pl.DataFrame | None = None  # user, trustee (raw ids), weight: the source's directed user → user links
    # (user, item) index pairs of negative feedback (dislike, skip: recarena.data.events): never interactions, never
    # in that user's served or printed lists; None when no negative event was folded in
    negatives: sp.csr_matrix | None = None
    _derived: dict = field(default_factory=dict, repr=False, compare=False)  # sequences and matrices built once

    @classmethod
    def build(
        cls,
        frame: pl.DataFrame,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        items: pl.DataFrame | None = None,
        users: pl.DataFrame | None = None,
        counts: dict[str, int] | None = None,
        name: str = "data",
        trust: pl.DataFrame | None = None,
    ) -> Interactions:
        """Assemble from a split frame (with `part`) and the id maps; align feature tables to indices."""
        n_users, n_items = len(user_ids), len(item_ids)
        parts = [_csr(frame.filter(pl.col("part") == p), n_users, n_items) for p in (TRAIN, VALID, TEST)]
        return cls(
            frame=frame,
            user_ids=user_ids,
            item_ids=item_ids,
            train=parts[0],
            valid=parts[1],
            test=parts[2],
            items=_align(items, "item", item_ids),
            users=_align(users, "user", user_ids),
            counts=dict(counts or {}),
            name=name,
            trust=trust,
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_index(self, raw: object) -> int | None:
        """Index of a raw user id by the data's one keying rule (`id_key`), or None when the data has no such user."""
        return self._index("user", self.user_ids).get(id_key(raw, self.user_ids))

    def item_index(self, raw: object) -> int | None:
        """Index of a raw item id by the data's one keying rule (`id_key`), or None when the catalogue lacks it."""
        return self._index("item", self.item_ids).get(id_key(raw, self.item_ids))

    def _index(self, side: str, ids: np.ndarray) -> dict:
        key = f"{side}_index"
        if key not in self._derived:
            self._derived[key] = {id_key(raw, ids): n for n, raw in enumerate(ids.tolist())}
        return self._derived[key]

    def blocked(self, user: int) -> np.ndarray:
        """Items the user gave negative feedback on (ascending indices; empty for a session or without any)."""
        if self.negatives is None or not 0 <= user < self.negatives.shape[0]:
            return np.zeros(0, dtype=np.int64)
        start, stop = self.negatives.indptr[user], self.negatives.indptr[user + 1]
        return np.sort(self.negatives.indices[start:stop]).astype(np.int64)

    def refit_view(self) -> Interactions:
        """The same data with valid folded into train, for refitting before test (`eval.refit_on_valid`)."""
        frame = self.frame.with_columns(
            pl.when(pl.col("part") == VALID).then(TRAIN).otherwise(pl.col("part")).cast(pl.Int8).alias("part")
        )
        refit = Interactions.build(
            frame, self.user_ids, self.item_ids, self.items, self.users, self.counts, self.name, self.trust
        )
        refit.max_users, refit.sample_seed, refit.negatives = self.max_users, self.sample_seed, self.negatives
        return refit

    def known(self, stage: Stage) -> sp.csr_matrix:
        """Items known before the evaluated period: train for validation, train + valid for test."""
        return self.train if stage == "val" else _union(self.train, self.valid)

    def truth(self, stage: Stage) -> sp.csr_matrix:
        """Ground truth of the stage: the valid or the test matrix."""
        return self.valid if stage == "val" else self.test

    def eval_users(self, stage: Stage) -> np.ndarray:
        """Users with a non-empty ground truth in the stage, ascending; with `max_users`, the sample of
        docs/protocol.md §6 (numpy.random.default_rng(seed).choice without replacement), so models stay paired."""
        users = np.flatnonzero(np.diff(self.truth(stage).indptr) > 0).astype(np.int64)
        if self.max_users is None or self.max_users >= len(users):
            return users
        return np.sort(np.random.default_rng(self.sample_seed).choice(users, self.max_users, replace=False))

    def all_eval_users(self, stage: Stage) -> int:
        """How many users the stage evaluates without sampling."""
        return int((np.diff(self.truth(stage).indptr) > 0).sum())

    def sequences(self, stage: Stage | Literal["train"]) -> Sequences:
        """Time-ordered histories: train only (for training and validation) or train + valid (for test)."""
        parts = [TRAIN] if stage in ("train", "val") else [TRAIN, VALID]
        key = tuple(parts)
        if key not in self._derived:
            self._derived[key] = Sequences.from_frame(self.frame.filter(pl.col("part").is_in(parts)), self.n_users)
        return self._derived[key]

    def trust_matrix(self) -> sp.csr_matrix | None:
        """The trust links as a users × users CSR (row: who trusts, column: whom; the link's weight), over the
        users kept by preprocessing (a link to or from a dropped user is left out); None when the data has none."""
        if self.trust is None:
            return None
        if "trust" not in self._derived:
            index = pl.DataFrame({"id": pl.Series(self.user_ids), "k": np.arange(self.n_users, dtype=np.int64)})
            ids = index["id"].dtype
            links = (
                self.trust.with_columns(pl.col("user", "trustee").cast(ids, strict=False))
                .join(index.rename({"id": "user", "k": "row"}), on="user", how="inner")
                .join(index.rename({"id": "trustee", "k": "col"}), on="trustee", how="inner")
                .filter(pl.col("row") != pl.col("col"))
                .unique(["row", "col"], keep="first", maintain_order=True)
            )
            weights = links["weight"].cast(pl.Float32).fill_null(1.0).to_numpy()
            matrix = sp.csr_matrix(
                (weights, (links["row"].to_numpy(), links["col"].to_numpy())), shape=(self.n_users, self.n_users)
            )
            matrix.sort_indices()
            self._derived["trust"] = matrix
        return self._derived["trust"]

    def popularity(self) -> np.ndarray:
        """Train interaction count of each item."""
        return np.asarray(self.train.sum(axis=0)).ravel().astype(np.int64)

    def train_counts(self) -> np.ndarray:
        """Train interaction count of each user (defines the cold/warm slices)."""
        return np.diff(self.train.indptr).astype(np.int64)

    def item_label(self, item: int) -> str:
        """Human-readable name of an item index: its title (and year) when known, else its raw id."""
        if "item_labels" not in self._derived:  # built once: every served list's explanations read them
            self._derived["item_labels"] = [self._label(n) for n in range(self.n_items)]
        return self._derived["item_labels"][int(item)]

    def _label(self, item: int) -> str:
        if self.items is not None and "title" in self.items.columns:
            title = self.items["title"][item]
            if title is not None:
                year = self.items["year"][item] if "year" in self.items.columns else None
                return f"{title} ({year})" if year is not None else str(title)
        return str(self.item_ids[item])

    def item_genres(self) -> np.ndarray | None:
        """Multi-hot genre matrix (n_items × n_genres) for intra-list diversity, or None without genres."""
        if self.items is None or "genres" not in self.items.columns:
            return None
        genres = self.items["genres"].fill_null([])
        vocab = sorted({g for row in genres.to_list() for g in row})
        if not vocab:
            return None
        index = {g: j for j, g in enumerate(vocab)}
        matrix = np.zeros((self.n_items, len(vocab)), dtype=np.float32)
        for row, values in enumerate(genres.to_list()):
            matrix[row, [index[g] for g in values]] = 1.0
        return matrix


def id_key(raw: object, ids: np.ndarray) -> int | str | None:
    """The one rule that turns a raw id from anywhere (command line, HTTP, events table) into a key of `ids`: when
    the data's ids are integers (the id rule of docs/protocol.md §1), any text that reads as an integer is that
    integer ("0196" and " 196" are 196) and anything else matches nothing (None); otherwise the text, stripped.
    Booleans are never ids."""
    if isinstance(raw, bool | np.bool_):
        return None
    if np.issubdtype(ids.dtype, np.integer):
        if isinstance(raw, int | np.integer):
            return int(raw)
        text = str(raw).strip()
        return int(text) if INTEGER.fullmatch(text) else None
    return str(raw).strip()


def _union(a: sp.csr_matrix, b: sp.csr_matrix) -> sp.csr_matrix:
    merged = (a + b).tocsr()
    merged.data[:] = 1.0
    merged.sort_indices()
    return merged


def _align(table: pl.DataFrame | None, key: str, ids: np.ndarray) -> pl.DataFrame | None:
    """Feature table reordered so row k describes index k; ids without features get nulls."""
    if table is None:
        return None
    keys = pl.Series(key, ids)
    if keys.dtype != table.schema[key]:  # e.g. integer ids with a new string user (feedback): match as text
        keys, table = keys.cast(pl.String), table.with_columns(pl.col(key).cast(pl.String))
    return pl.DataFrame({key: keys}).join(table.unique(key, keep="first"), on=key, how="left", maintain_order="left")
