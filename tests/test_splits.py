"""docs/protocol.md §2 splits: hand-computed assignments and the invariants (disjoint, complete, time order)."""

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recarena.data.preprocess import preprocess
from recarena.data.splits import global_temporal, leave_one_out, random_ratio, temporal_ratio
from recarena.errors import ConfigError


def frame_of(user_lengths: list[int]) -> pl.DataFrame:
    """User u has user_lengths[u] interactions with items 0.., at timestamps 0.. (already preprocessed)."""
    rows = [(u, i, float(i)) for u, n in enumerate(user_lengths) for i in range(n)]
    raw = pl.DataFrame(rows, schema=["user", "item", "timestamp"], orient="row").with_columns(
        rating=pl.lit(None, dtype=pl.Float64)
    )
    return preprocess(raw).frame


def parts(frame: pl.DataFrame, user: int) -> list[int]:
    return frame.filter(pl.col("u") == user).sort(["ts", "pos"])["part"].to_list()


def test_temporal_ratio_hand_computed():
    frame = temporal_ratio(frame_of([25, 10, 3, 2]))
    # 25 rows: floor(2.5) = 2 test, 2 valid, 21 train
    assert parts(frame, 0) == [0] * 21 + [1, 1] + [2, 2]
    # 10 rows: 1 test, 1 valid
    assert parts(frame, 1) == [0] * 8 + [1, 2]
    # 3 rows: floor(0.3) = 0 -> at least 1 each
    assert parts(frame, 2) == [0, 1, 2]
    # fewer than 3 rows: all train, not evaluated
    assert parts(frame, 3) == [0, 0]


def test_leave_one_out_hand_computed():
    frame = leave_one_out(frame_of([5, 2]))
    assert parts(frame, 0) == [0, 0, 0, 1, 2]
    assert parts(frame, 1) == [0, 0]


def test_temporal_order_breaks_timestamp_ties_by_row_position():
    raw = pl.DataFrame(
        {
            "user": [1, 1, 1, 1],
            "item": [10, 11, 12, 13],
            "timestamp": [5.0, 5.0, 5.0, 1.0],
            "rating": [1.0] * 4,
        }
    )
    frame = leave_one_out(preprocess(raw).frame)
    by_item = dict(zip(frame["i"].to_list(), frame["part"].to_list(), strict=True))
    # time order: item 13 (t=1), then 10, 11, 12 by file position
    assert by_item == {3: 0, 0: 0, 1: 1, 2: 2}


def test_random_ratio_is_seeded():
    base = frame_of([30, 20, 10])
    a, b, c = random_ratio(base, seed=1), random_ratio(base, seed=1), random_ratio(base, seed=2)
    assert a["part"].to_list() == b["part"].to_list()
    assert a["part"].to_list() != c["part"].to_list()
    assert sorted(parts(a, 0)) == [0] * 24 + [1] * 3 + [2] * 3


def test_global_temporal_cuts_by_time_and_drops_unknown_users():
    raw = pl.DataFrame(
        {
            "user": [0, 0, 0, 0, 2, 2, 0, 1, 0, 1],
            "item": [0, 1, 2, 3, 4, 5, 4, 0, 5, 1],
            "timestamp": [1.0, 2, 3, 4, 5, 5, 7, 8, 9, 10],
            "rating": [1.0] * 10,
        }
    )
    frame = global_temporal(preprocess(raw).frame, valid_quantile=0.5, test_quantile=0.8)
    train_max = frame.filter(pl.col("part") == 0)["ts"].max()
    assert train_max < frame.filter(pl.col("part") > 0)["ts"].min()
    # cuts at t=5 and t=8; user 1 (raw id 1 -> index 1) has no train rows, so its rows are dropped
    assert 1 not in frame["u"].to_list()
    assert frame.height == 8
    assert sorted(frame.filter(pl.col("part") == 1)["ts"].to_list()) == [7.0]
    assert sorted(frame.filter(pl.col("part") == 2)["ts"].to_list()) == [9.0]


def test_bad_ratio_names_the_key():
    with pytest.raises(ConfigError, match="split.test_ratio"):
        temporal_ratio(frame_of([5]), test_ratio=1.5)


def check_invariants(pre: pl.DataFrame, split: pl.DataFrame, temporal: bool) -> None:
    key = ["u", "i"]
    assert split.select(key).is_unique().all(), "parts overlap"
    assert split.height == pre.height, "parts do not cover the data"
    assert split.select(key).sort(key).equals(pre.select(key).sort(key))
    if temporal:
        last_train = split.filter(pl.col("part") == 0).group_by("u").agg(pl.col("ts").max().alias("t_train"))
        first_eval = split.filter(pl.col("part") > 0).group_by("u").agg(pl.col("ts").min().alias("t_eval"))
        joined = last_train.join(first_eval, on="u")
        assert (joined["t_train"] <= joined["t_eval"]).all(), "a train row is later than the user's evaluation"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 30), st.integers(0, 50)), min_size=1, max_size=300),
    st.integers(0, 5),
)
def test_split_invariants_on_random_tables(rows, seed):
    raw = pl.DataFrame(rows, schema=["user", "item", "timestamp"], orient="row").with_columns(
        pl.col("timestamp").cast(pl.Float64), rating=pl.lit(1.0)
    )
    pre = preprocess(raw).frame
    check_invariants(pre, temporal_ratio(pre), temporal=True)
    check_invariants(pre, leave_one_out(pre), temporal=True)
    check_invariants(pre, random_ratio(pre, seed=seed), temporal=False)
    cut = global_temporal(pre)
    assert cut.select(["u", "i"]).is_unique().all()
    assert np.all(
        cut.filter(pl.col("part") == 0)["ts"].to_numpy()[:, None]
        <= cut.filter(pl.col("part") > 0)["ts"].to_numpy()[None, :]
    )
