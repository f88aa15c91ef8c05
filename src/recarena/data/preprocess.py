"""docs/protocol.md §1 preprocessing: missing rows, implicit threshold, dedupe, k-core, id maps (pure functions)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recarena.errors import ConfigError, DataError

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


def _drop_missing(frame: pl.DataFrame, origin: str) -> tuple[int, pl.DataFrame]:
    """Drop rows with a null (or NaN) user, item or timestamp; log the count per column and the first such row."""
    is_missing = {c: pl.col(c).is_null() for c in ("user", "item", "timestamp")}
    for column, expr in is_missing.items():
        if frame.schema[column].is_float():
            is_missing[column] = expr | pl.col(column).is_nan()
    per_column = frame.select(**{c: e.sum() for c, e in is_missing.items()}).row(0, named=True)
    missing = pl.any_horizontal(*is_missing.values())
    what = "a missing " + ", ".join(f"{c} ({n})" for c, n in per_column.items() if n)
    return log_dropped(frame, missing, origin, f"rows with {what}"), frame.filter(~missing)


def log_dropped(frame: pl.DataFrame, mask: pl.Expr, origin: str, what: str) -> int:
    """Count the rows `mask` selects; if any, warn naming `origin`, `what` and the first such row (1-based)."""
    dropped = frame.filter(mask).sort("pos")
    if dropped.height:
        row = dropped.row(0, named=True)
        example = ", ".join(f"{c}={row[c]!r}" for c in ("user", "item", "timestamp"))
        log.warning(
            "%s: dropped %d %s (first dropped: data row %d: %s)", origin, dropped.height, what, row["pos"] + 1, example
        )
    return dropped.height


def _check_scale(frame: pl.DataFrame, scale: tuple[float, float], origin: str) -> None:
    """Ratings outside the declared scale are outliers the data should not have: refuse them, naming the first."""
    if len(scale) != 2 or not float(scale[0]) < float(scale[1]):
        raise ConfigError(f"data.rating_scale={list(scale)!r}: expected [lowest, highest] with lowest < highest")
    low, high = float(scale[0]), float(scale[1])
    outside = frame.filter(pl.col("rating").is_not_null() & ((pl.col("rating") < low) | (pl.col("rating") > high)))
    if outside.height:
        row = outside.sort("pos").row(0, named=True)
        raise DataError(
            f"{origin}: {outside.height} rating(s) outside data.rating_scale=[{low:g}, {high:g}], first: rating "
            f"{row['rating']!r} at data row {row['pos'] + 1} (user={row['user']!r}, item={row['item']!r})"
        )


def _drop_heavy_users(frame: pl.DataFrame, limit: int, origin: str) -> tuple[int, pl.DataFrame]:
    """Drop every interaction of users with more than `limit` (implausible for a person: bots, shared accounts)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"data.max_user_interactions={limit!r}: must be a positive integer, or null")
    heavy = pl.len().over("user") > limit
    n_users = frame.filter(heavy)["user"].n_unique()
    dropped = log_dropped(frame, heavy, origin, f"rows of {n_users} users with more than {limit} interactions "
                           "(data.max_user_interactions)")  # fmt: skip
    return dropped, frame.filter(~heavy)


def preprocess(
    interactions: pl.DataFrame,
    *,
    origin: str = "interactions",
    min_rating: float | None = None,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    rating_scale: tuple[float, float] | None = None,
    max_user_interactions: int | None = None,
) -> Preprocessed:
    """Apply docs/protocol.md §1 steps 1-5 in order and log the count each step removes; with `rating_scale`, a rating
    outside it is refused (DataError), and with `max_user_interactions`, users above it are dropped (logged)."""
    counts: dict[str, int] = {"raw": interactions.height}
    frame = interactions.with_row_index("pos")
    counts["dropped_missing"], frame = _drop_missing(frame, origin)
    if rating_scale is not None:
        _check_scale(frame, rating_scale, origin)
    if min_rating is not None:
        keep = pl.col("rating").is_not_null() & (pl.col("rating") >= min_rating)
        counts["dropped_below_min_rating"] = frame.height - int(frame.select(keep.sum()).item())
        frame = frame.filter(keep)
    frame = frame.sort(["timestamp", "pos"])
    duplicate = ~pl.struct("user", "item").is_first_distinct()
    counts["dropped_duplicates"] = log_dropped(
        frame, duplicate, origin, "duplicate (user, item) rows; kept the earliest"
    )
    frame = frame.filter(~duplicate)
    if max_user_interactions is not None:
        counts["dropped_implausible_users"], frame = _drop_heavy_users(frame, max_user_interactions, origin)
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
