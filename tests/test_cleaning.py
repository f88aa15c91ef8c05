"""Cleaning the design asks for: outlier ratings refused by name, an opt-in rule for implausible users (logged and
counted like the other repairs), and item text cleaned before it is encoded."""

from __future__ import annotations

import logging
from functools import partial

import polars as pl
import pytest

from recarena.data.datamodule import RecDataModule
from recarena.data.preprocess import preprocess
from recarena.data.splits import random_ratio
from recarena.errors import ConfigError, DataError
from recarena.text.item_text import clean_text


def table(rows: list[tuple[str, str, float | None, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"user": pl.String, "item": pl.String, "rating": pl.Float64,
                                      "timestamp": pl.Float64}, orient="row")  # fmt: skip


def test_a_rating_outside_the_declared_scale_is_refused_naming_the_first_one():
    rows = [("u1", "a", 4.0, 1.0), ("u1", "b", None, 2.0), ("u2", "a", 7.0, 3.0), ("u2", "b", 0.0, 4.0)]
    with pytest.raises(DataError, match=r"ratings.csv: 2 rating\(s\) outside data.rating_scale=\[1, 5\], first: "
                                        r"rating 7.0 at data row 3 \(user='u2', item='a'\)"):  # fmt: skip
        preprocess(table(rows), origin="ratings.csv", rating_scale=(1, 5))
    assert preprocess(table(rows[:2]), rating_scale=(1, 5)).counts["kept"] == 2  # a null rating is no outlier
    with pytest.raises(ConfigError, match=r"data.rating_scale=\[5, 1\]: expected \[lowest, highest\]"):
        preprocess(table(rows[:1]), rating_scale=(5, 1))


def test_implausible_users_are_dropped_only_when_asked_and_counted(caplog):
    bot = [("bot", f"i{j}", 5.0, float(j)) for j in range(6)]
    person = [("ann", "i0", 4.0, 1.0), ("ann", "i1", 3.0, 2.0), ("bob", "i2", 5.0, 3.0)]
    assert preprocess(table(bot + person)).counts["users"] == 3  # opt-in: nothing dropped by default
    with caplog.at_level(logging.WARNING):
        kept = preprocess(table(bot + person), origin="plays.csv", max_user_interactions=5)
    assert kept.counts["dropped_implausible_users"] == 6 and kept.counts["users"] == 2
    assert list(kept.user_ids) == ["ann", "bob"]
    assert "plays.csv: dropped 6 rows of 1 users with more than 5 interactions (data.max_user_interactions)" in (
        caplog.text
    )
    with pytest.raises(ConfigError, match=r"data.max_user_interactions=0: must be a positive integer"):
        preprocess(table(person), max_user_interactions=0)


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Rock &amp; Roll", "Rock & Roll"),
        ("Rock &amp;amp; Roll", "Rock & Roll"),  # double-escaped feeds
        ("<p>Soft <b>cotton</b><br/>shirt</p>", "Soft cotton shirt"),
        ("tab\tnew\nline\r\n  spaces", "tab new line spaces"),
        ("bell\x07zero\u200bwidth", "bell zero width"),
        ("2 < 3 and 5 > 4", "2 < 3 and 5 > 4"),  # comparison signs are not markup
        ("Café Noir (1995)", "Café Noir (1995)"),
    ],
)
def test_item_text_cleaning_rules(raw, clean):
    assert clean_text(raw) == clean


@pytest.mark.parametrize("scale", [5, [1, "five"], [1, 3, 5]])
def test_a_malformed_rating_scale_is_named(scale):
    with pytest.raises(ConfigError, match=r"data.rating_scale=.*expected \[lowest, highest\]"):
        RecDataModule("synthetic", partial(random_ratio), rating_scale=scale)
