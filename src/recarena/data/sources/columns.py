"""Reading delimited files and typing their columns: the helpers every source shares, and `RawData`, what a
source returns (docs/protocol.md §1). Every error is a `DataError` naming the file, the column and a bad line."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recarena.errors import DataError

log = logging.getLogger(__name__)

ID_COLUMNS = ("user", "item", "rating", "timestamp")

LINE = "__line__"  # row-index column added while reading, so casting errors can name the file line
GENRE_COLUMNS = ("genres", "genre", "class")


@dataclass(frozen=True)
class RawData:
    """Raw tables as read from one source, before preprocessing."""

    name: str
    interactions: pl.DataFrame  # user, item, rating (Float64, nullable), timestamp (Float64, nullable)
    items: pl.DataFrame | None  # `item` + feature columns
    users: pl.DataFrame | None  # `user` + feature columns
    origin: str  # file or folder it came from, for messages
    timestamps: bool = True  # False: the source records no time (Last.fm plays); only untimed splits apply
    trust: pl.DataFrame | None = None  # user, trustee (raw ids), weight: directed user → user links (social data)


def read_delimited(
    source: Path | bytes, origin: str, separator: str, has_header: bool = True, quote_char: str | None = None
) -> pl.DataFrame:
    """Read a delimited text file with every column as a string plus its file line number in `LINE`.

    Strings first, so a later cast can say which line and value are bad; latin-1 is the fallback encoding.
    """
    kwargs: dict[str, Any] = dict(
        separator=separator,
        has_header=has_header,
        quote_char=quote_char,
        infer_schema=False,
        raise_if_empty=False,
        row_index_name=LINE,
        row_index_offset=2 if has_header else 1,
    )
    if isinstance(source, Path):
        check_readable(source, origin)
    try:
        frame = pl.read_csv(source, **kwargs)
    except pl.exceptions.ComputeError as err:
        if "utf-8" not in str(err):
            raise _read_error(source, origin, separator, err) from err
        raw = source.read_bytes() if isinstance(source, Path) else source
        try:
            frame = pl.read_csv(raw.decode("latin-1").encode("utf-8"), **kwargs)
        except pl.exceptions.ComputeError as err2:
            raise _read_error(source, origin, separator, err2) from err2
    frame.columns = [c.strip() if c != LINE else c for c in frame.columns]
    data_cols = [c for c in frame.columns if c != LINE]
    if not data_cols:
        return frame
    return frame.with_columns(pl.col(data_cols).str.strip_chars().replace("", None)).filter(
        ~pl.all_horizontal(pl.col(data_cols).is_null())  # blank lines are not rows
    )


def source_folder(
    fetch: Callable[[Path], Path], data_dir: Path, path: str | Path | None, required: str, expected: str
) -> Path:
    """The folder a fetched source reads: the hash-checked cache (`fetch`) by default, else `data.path`; a folder
    without its `required` file is a DataError listing what it holds instead (`expected` names the files)."""
    folder = fetch(Path(data_dir)) if path is None else Path(path).expanduser()
    if not (folder / required).is_file():
        found = sorted(p.name for p in folder.iterdir())[:20] if folder.is_dir() else "no such folder"
        raise DataError(f"data.path={folder}: expected a folder with {expected} (found {found})")
    return folder


def check_readable(path: Path, origin: str) -> None:
    """A file that exists but cannot be opened (permission denied, an I/O error) is named with the reason."""
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise DataError(f"{origin}: cannot be read ({err.strerror or err})") from err


def _read_error(source: Path | bytes, origin: str, separator: str, err: Exception) -> DataError:
    """Turn a polars parse error into a message naming the file and, for ragged rows, the first bad line."""
    raw = source.read_bytes() if isinstance(source, Path) else source
    lines = raw.decode("latin-1").splitlines()
    width = len(lines[0].split(separator)) if lines else 0
    for number, line in enumerate(lines, start=1):
        if line and len(line.split(separator)) > width:
            return DataError(
                f"{origin} line {number}: {len(line.split(separator))} fields separated by {separator!r}, "
                f"but the first line has {width}"
            )
    reason = str(err).splitlines()[0]
    return DataError(f"{origin}: cannot be read as a {separator!r}-separated table ({reason})")


def _is_canonical_int(values: pl.Series) -> tuple[bool, pl.Series]:
    """Whether every non-null string is an integer written without sign noise or leading zeros (lossless)."""
    ints = values.cast(pl.Int64, strict=False)
    ok = ints.null_count() == values.null_count() and bool((ints.cast(pl.String) == values).all())
    return ok, ints


def id_series(values: pl.Series) -> pl.Series:
    """Ids as Int64 when every present value is an integer, else as strings (docs/protocol.md §1, step 5).

    NaN, empty and "NaN"/"nan" ids are missing (null): preprocessing drops and counts those rows."""
    if values.dtype.is_integer():
        return values.cast(pl.Int64)
    if values.dtype.is_float():
        values = values.fill_nan(None)
        ints = values.cast(pl.Int64, strict=False)
        if ints.null_count() == values.null_count() and bool((ints.cast(pl.Float64) == values).all()):
            return ints
        return values.cast(pl.String)
    text = values.cast(pl.String).str.strip_chars().replace("", None)
    text = text.scatter((text.str.to_lowercase() == "nan").arg_true(), None)
    ints = text.cast(pl.Int64, strict=False)
    return ints if ints.null_count() == text.null_count() else text


def conform_ids(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Cast the id column of an item/user table to the interactions' id type, so joins match."""
    ids = id_series(values)
    if ids.dtype == dtype:
        return ids
    return ids.cast(dtype, strict=False)


def to_float(frame: pl.DataFrame, column: str, origin: str, allow_dates: bool = False) -> pl.Series:
    """A numeric column as Float64 (nulls kept, NaN → null); a non-number is a DataError naming its line.

    With `allow_dates`, a string column where every value is a date/time becomes epoch seconds.
    """
    values = frame[column]
    if values.dtype.is_temporal():
        return _epoch_seconds(values)
    if values.dtype.is_numeric():
        return values.cast(pl.Float64).fill_nan(None)
    text = values.cast(pl.String).str.strip_chars().replace("", None)
    numbers = text.cast(pl.Float64, strict=False)
    bad = numbers.is_null() & text.is_not_null()
    if not bad.any():
        return numbers.fill_nan(None)
    if allow_dates:
        dates = _parse_dates(text)
        if dates is not None:
            return _epoch_seconds(dates)
    first = int(bad.arg_true()[0])
    where = f"line {frame[LINE][first]}" if LINE in frame.columns else f"row {first + 1}"
    more = int(bad.sum()) - 1
    suffix = f" ({more} more such values)" if more else ""
    raise DataError(f"{origin} {where}: {column} {text[first]!r} is not a number{suffix}")


def _parse_dates(text: pl.Series) -> pl.Series | None:
    """Every present value parsed as a date/time (format inferred), or None when they are not all dates."""
    try:
        dates = text.str.to_datetime(strict=False)
    except pl.exceptions.PolarsError:
        return None
    return dates if dates.null_count() == text.null_count() else None


def _epoch_seconds(values: pl.Series) -> pl.Series:
    """Dates and datetimes as Float64 seconds since the epoch (a numeric time axis for the splits)."""
    if values.dtype == pl.Date:
        values = values.cast(pl.Datetime("ms"))
    return (values.dt.epoch("ms") / 1000).cast(pl.Float64)


def _row_position(n: int, origin: str) -> pl.Series:
    """Row positions as timestamps, for data without a time column (temporal splits follow file order)."""
    log.warning("%s: no timestamp column; using the row position (file order) as timestamp", origin)
    return pl.Series("timestamp", np.arange(n, dtype=np.float64))


def require_columns(frame: pl.DataFrame, wanted: Mapping[str, str], origin: str) -> None:
    """Every configured column exists; else name the file, the missing column and the existing columns."""
    present = [c for c in frame.columns if c != LINE]
    for what, column in wanted.items():
        if column not in present:
            raise DataError(f"{origin}: no column {column!r} ({what}); the columns are {present}")


def interaction_table(
    frame: pl.DataFrame, columns: Mapping[str, str | None], origin: str, allow_dates: bool = False
) -> pl.DataFrame:
    """The canonical interactions table (user, item, rating, timestamp) from the mapped source columns."""
    n = frame.height
    rating_col, time_col = columns.get("rating"), columns.get("timestamp")
    rating = to_float(frame, rating_col, origin) if rating_col else pl.Series([None] * n, dtype=pl.Float64)
    timestamp = to_float(frame, time_col, origin, allow_dates) if time_col else _row_position(n, origin)
    return pl.DataFrame(
        {
            "user": id_series(frame[columns["user"]]),
            "item": id_series(frame[columns["item"]]),
            "rating": rating,
            "timestamp": timestamp,
        }
    )


def infer_token(values: pl.Series) -> pl.Series:
    """A token column as Int64 when that is lossless (no leading zeros, like zip "01002"), else strings."""
    ok, ints = _is_canonical_int(values)
    return ints if ok else values


def infer_text_column(values: pl.Series) -> pl.Series:
    """A CSV feature column as Int64 or Float64 when that is lossless, else strings."""
    ok, ints = _is_canonical_int(values)
    if ok:
        return ints
    if values.str.contains(r"^[-+]?0\d").any():  # codes with leading zeros are not numbers
        return values
    floats = values.cast(pl.Float64, strict=False)
    return floats if floats.null_count() == values.null_count() else values
