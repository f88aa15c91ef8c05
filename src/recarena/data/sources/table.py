"""Any CSV/TSV/Parquet interaction table with named user, item, rating and time columns, plus optional item and
user feature tables."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from recarena.data.sources.columns import (
    LINE,
    RawData,
    check_readable,
    conform_ids,
    infer_text_column,
    interaction_table,
    read_delimited,
    require_columns,
)
from recarena.errors import DataError

log = logging.getLogger(__name__)


def _read_table(path: str | Path, separator: str, what: str) -> tuple[pl.DataFrame, str]:
    """A CSV (any separator, strings) or Parquet (by suffix) table and its name for messages."""
    where = Path(path).expanduser()
    if where.is_dir():
        found = sorted(p.name for p in where.iterdir())[:20]
        raise DataError(f"{what}={path}: is a folder (found {found}); expected the path of a CSV or Parquet table")
    if not where.is_file():
        raise DataError(f"{what}={path}: no such file (expected a CSV or Parquet table)")
    if where.suffix.lower() in (".parquet", ".pq"):
        check_readable(where, str(where))
        try:
            return pl.read_parquet(where), str(where)
        except (OSError, pl.exceptions.PolarsError) as err:
            raise DataError(f"{where}: cannot be read as Parquet ({str(err).splitlines()[0]})") from err
    return read_delimited(where, str(where), separator, quote_char='"'), str(where)


def _table_features(path: str | Path, key: str, key_col: str, ids: pl.DataType, sep: str) -> pl.DataFrame:
    """An item/user feature table keyed by `key_col` (renamed to `key`); CSV columns typed where lossless."""
    what = "data.items_path" if key == "item" else "data.users_path"
    frame, origin = _read_table(path, sep, what)
    require_columns(frame, {f"{key} id": key_col}, origin)
    out = {key: conform_ids(frame[key_col], ids)}
    for column in frame.columns:
        if column in (key_col, LINE, key):
            continue
        values = frame[column]
        out[column] = infer_text_column(values) if values.dtype == pl.String else values
    return pl.DataFrame(out)


def load_table(
    path: str | Path,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    time_col: str | None = None,
    items_path: str | Path | None = None,
    item_col_in_items: str | None = None,
    users_path: str | Path | None = None,
    separator: str = ",",
) -> RawData:
    """Interactions from any CSV/Parquet table with a column mapping; optional item and user feature tables.

    Date/time strings in `time_col` are accepted as well as numbers (converted to epoch seconds).
    """
    frame, origin = _read_table(path, separator, "data.path")
    wanted = {"data.user_col": user_col, "data.item_col": item_col, "data.rating_col": rating_col}
    wanted["data.time_col"] = time_col
    require_columns(frame, {k: v for k, v in wanted.items() if v is not None}, origin)
    columns = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": time_col}
    inter = interaction_table(frame, columns, origin, allow_dates=True)
    items = users = None
    if items_path is not None:
        key = item_col_in_items or item_col
        items = _table_features(items_path, "item", key, inter["item"].dtype, separator)
    if users_path is not None:
        users = _table_features(users_path, "user", user_col, inter["user"].dtype, separator)
    return RawData(Path(path).stem, inter, items, users, origin)
