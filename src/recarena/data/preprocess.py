"""PROTOCOL.md §1 preprocessing: missing rows, implicit threshold, dedupe, k-core, id maps (pure functions)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recarena.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preprocessed:
    """Interactions with contiguous indices: columns `u`, `i` (Int32), `ts` (Float64), `pos` (row in file)."""

    frame: pl.DataFrame
    user_ids: np.ndarray  # raw user id of index u
    item_ids: np.ndarray  # raw item id of index i
    counts: dict[str, int] = field(default_factory=dict)


def id_order(ids: pl.Series) -> np.ndarray:
    """Distinct raw ids in ascending order: numeric when ids are integers, else lexicographic."""
    return ids.unique().sort().to_numpy()


def kcore(frame: pl.DataFrame, min_user: int, min_item: int) -> pl.DataFrame:
    """Drop users/items below the thresholds, repeatedly, until nothing changes (a fixed point)."""
    if min_user <= 1 and min_item <= 1:
        return frame
    while True:
        before = frame.height
        if min_user > 1:
            frame = frame.filter(pl.len().over("user") >= min_user)
        if min_item > 1:
            frame = frame.filter(pl.len().over("item") >= min_item)
        if frame.height == before:
            return frame


def preprocess(
    interactions: pl.DataFrame,
    *,
    origin: str = "interactions",
    min_rating: float | None = None,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> Preprocessed:
    """Apply PROTOCOL.md §1 steps 1-5 in order and log the count each step removes."""
    counts: dict[str, int] = {"raw": interactions.height}
    frame = interactions.with_row_index("pos")
    missing = pl.col("user").is_null() | pl.col("item").is_null() | pl.col("timestamp").is_null()
    if frame.schema["timestamp"].is_float():
        missing = missing | pl.col("timestamp").is_nan()
    counts["dropped_missing"] = int(frame.select(missing.sum()).item())
    frame = frame.filter(~missing)
    if min_rating is not None:
        keep = pl.col("rating").is_not_null() & (pl.col("rating") >= min_rating)
        counts["dropped_below_min_rating"] = frame.height - int(frame.select(keep.sum()).item())
        frame = frame.filter(keep)
    before = frame.height
    frame = frame.sort(["timestamp", "pos"]).unique(["user", "item"], keep="first", maintain_order=True)
    counts["dropped_duplicates"] = before - frame.height
    before = frame.height
    frame = kcore(frame, min_user_interactions, min_item_interactions)
    counts["dropped_kcore"] = before - frame.height
    if frame.height == 0:
        raise DataError(
            f"{origin}: no interactions left after preprocessing ({counts}); "
            "lower data.min_rating / data.min_user_interactions / data.min_item_interactions"
        )
    user_ids, item_ids = id_order(frame["user"]), id_order(frame["item"])
    frame = frame.select(
        u=dense_index("user"),
        i=dense_index("item"),
        ts=pl.col("timestamp").cast(pl.Float64),
        pos=pl.col("pos"),
    ).sort(["u", "ts", "pos"])
    counts.update(kept=frame.height, users=len(user_ids), items=len(item_ids))
    log.info("preprocessed %s: %s", origin, counts)
    return Preprocessed(frame=frame, user_ids=user_ids, item_ids=item_ids, counts=counts)


def dense_index(column: str) -> pl.Expr:
    """Contiguous 0-based index of each id in ascending id order (the order of `id_order`)."""
    return (pl.col(column).rank("dense") - 1).cast(pl.Int32)
