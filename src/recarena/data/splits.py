"""docs/protocol.md §2 splits: each takes the preprocessed frame and returns it with a `part` column.

`part` is 0 (train), 1 (valid) or 2 (test). The input frame is sorted by (u, ts, pos), so a rank
within a user is that user's time order. All splits are pure and deterministic given `seed`.
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl

from recarena.errors import ConfigError

log = logging.getLogger(__name__)

TRAIN, VALID, TEST = 0, 1, 2


def _check_ratio(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ConfigError(f"split.{name}={value!r}: must be strictly between 0 and 1")


def _tail_parts(order: pl.Expr, valid_ratio: float, test_ratio: float, min_interactions: int) -> pl.Expr:
    """Part by position in `order` (0-based rank within user): last floor(test·n) → test, the floor(valid·n)
    before them → valid (each at least 1); users with fewer than `min_interactions` rows stay in train."""
    n = pl.len().over("u")
    n_test = (n.cast(pl.Float64) * test_ratio).floor().cast(pl.Int64).clip(lower_bound=1)
    n_valid = (n.cast(pl.Float64) * valid_ratio).floor().cast(pl.Int64).clip(lower_bound=1)
    return (
        pl.when(n < min_interactions)
        .then(TRAIN)
        .when(order >= n - n_test)
        .then(TEST)
        .when(order >= n - n_test - n_valid)
        .then(VALID)
        .otherwise(TRAIN)
        .cast(pl.Int8)
        .alias("part")
    )


def temporal_ratio(
    frame: pl.DataFrame,
    valid_ratio: float = 0.1,
    test_ratio: float = 0.1,
    min_interactions: int = 3,
    seed: int = 0,
) -> pl.DataFrame:
    """Per user, in time order: the latest `test_ratio` → test, the `valid_ratio` before → valid."""
    _check_ratio("valid_ratio", valid_ratio)
    _check_ratio("test_ratio", test_ratio)
    order = pl.int_range(pl.len()).over("u")
    return frame.with_columns(_tail_parts(order, valid_ratio, test_ratio, min_interactions))


def leave_one_out(frame: pl.DataFrame, min_interactions: int = 3, seed: int = 0) -> pl.DataFrame:
    """Per user: the last interaction → test, the second last → valid, the rest → train."""
    n = pl.len().over("u")
    order = pl.int_range(pl.len()).over("u")
    part = pl.when(n < min_interactions).then(TRAIN).when(order == n - 1).then(TEST).when(order == n - 2).then(VALID)
    return frame.with_columns(part.otherwise(TRAIN).cast(pl.Int8).alias("part"))


def random_ratio(
    frame: pl.DataFrame,
    valid_ratio: float = 0.1,
    test_ratio: float = 0.1,
    min_interactions: int = 3,
    seed: int = 0,
) -> pl.DataFrame:
    """Per user, a seeded random permutation split by the same floor/at-least-1 rule as temporal_ratio."""
    _check_ratio("valid_ratio", valid_ratio)
    _check_ratio("test_ratio", test_ratio)
    keys = np.random.default_rng(seed).random(frame.height)
    shuffled = frame.with_columns(_key=pl.Series(keys))
    order = pl.col("_key").rank("ordinal").over("u") - 1
    return shuffled.with_columns(_tail_parts(order, valid_ratio, test_ratio, min_interactions)).drop("_key")


NEW_ITEMS = ("keep", "drop")


def global_temporal(
    frame: pl.DataFrame, valid_quantile: float = 0.8, test_quantile: float = 0.9, new_items: str = "keep",
    seed: int = 0,
) -> pl.DataFrame:  # fmt: skip
    """Global time cuts: ts ≤ q(valid_quantile) → train, ≤ q(test_quantile) → valid, later → test.

    The protocol where new items appear: valid/test rows of items that never occur in train are kept
    (`new_items=keep`, the evaluation's `unseen` slice) or dropped (`drop`). Rows of users that never occur in train
    have no history to recommend from; they are dropped. Dropped rows are counted in the log."""
    _check_ratio("valid_quantile", valid_quantile)
    _check_ratio("test_quantile", test_quantile)
    if valid_quantile >= test_quantile:
        raise ConfigError(f"split.valid_quantile={valid_quantile} must be below split.test_quantile={test_quantile}")
    if new_items not in NEW_ITEMS:
        raise ConfigError(f"split.new_items={new_items!r}: choose one of {', '.join(NEW_ITEMS)}")
    t_valid = frame["ts"].quantile(valid_quantile, "lower")
    t_test = frame["ts"].quantile(test_quantile, "lower")
    part = pl.when(pl.col("ts") <= t_valid).then(TRAIN).when(pl.col("ts") <= t_test).then(VALID).otherwise(TEST)
    parted = frame.with_columns(part.cast(pl.Int8).alias("part"))
    train = parted.filter(pl.col("part") == TRAIN)
    new_user = ~pl.col("u").is_in(train["u"].unique().implode())
    new_item = ~pl.col("i").is_in(train["i"].unique().implode())
    dropped = (new_user | new_item) if new_items == "drop" else new_user
    counts = parted.select(new_user.sum(), (new_item & dropped).sum()).row(0)
    _log_unseen(parted.filter(dropped), counts, "user or item" if new_items == "drop" else "user")
    kept = parted.filter(~dropped)
    if new_items == "keep":
        fresh = kept.filter(new_item)
        log.info("global_temporal: kept %d valid/test rows of %d items unseen in train (new_items=keep)",
                 fresh.height, fresh["i"].n_unique())  # fmt: skip
    return kept


def _log_unseen(dropped: pl.DataFrame, counts: tuple[int, int], what: str) -> None:
    """Warn how many valid/test rows global_temporal drops (unseen users, unseen items) and the first such row."""
    if dropped.height:
        row = dropped.sort("pos").row(0, named=True)
        log.warning(
            "global_temporal: dropped %d valid/test rows whose %s never occurs in train "
            "(%d with an unseen user, %d with an unseen item; first dropped: data row %d, timestamp %s)",
            dropped.height, what, *counts, row["pos"] + 1, row["ts"],
        )  # fmt: skip
