"""Raw data sources (docs/protocol.md §1), one module each, behind one entry: `load_source(cfg, data_dir)` reads the
source named by `data.source` into polars, before any preprocessing.

Nothing here drops, deduplicates or filters interactions: preprocessing does that and reports counts.
Every error is a `DataError` whose message names the file, the column and, where there is one, a bad line."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recarena.data.sources.amazon import load_amazon
from recarena.data.sources.atomic import load_atomic
from recarena.data.sources.bookcrossing import fetch_bookcrossing, load_bookcrossing
from recarena.data.sources.columns import RawData
from recarena.data.sources.filmtrust import fetch_filmtrust, load_filmtrust
from recarena.data.sources.instacart import fetch_instacart, load_instacart
from recarena.data.sources.lastfm import load_lastfm
from recarena.data.sources.ml1m import fetch_ml1m, load_ml1m
from recarena.data.sources.movielens import fetch_ml100k, load_ml100k
from recarena.data.sources.synthetic import make_synthetic
from recarena.data.sources.table import load_table
from recarena.errors import DataError

log = logging.getLogger(__name__)

LOADERS: dict[str, Callable[..., RawData]] = {
    "ml100k": load_ml100k,
    "atomic": load_atomic,
    "table": load_table,
    "synthetic": make_synthetic,
    "amazon": load_amazon,
    "lastfm": load_lastfm,
    "ml1m": load_ml1m,
    "bookcrossing": load_bookcrossing,
    "instacart": load_instacart,
    "filmtrust": load_filmtrust,
}
# Sources fetched from a pinned archive when `data.path` is not given: source → fetch(data_dir) → the folder that
# holds the hash-checked files (run once per machine in prepare_data; the processed-data cache hashes that folder).
FETCHERS: dict[str, Callable[[Path], Path]] = {
    "ml100k": fetch_ml100k,
    "ml1m": fetch_ml1m,
    "bookcrossing": fetch_bookcrossing,
    "instacart": fetch_instacart,
    "filmtrust": fetch_filmtrust,
}
# Keys of the data config that belong to preprocessing, the datamodule or the run, not to the reader.
NOT_FOR_READERS = {
    "source", "name", "_target_", "min_rating", "min_user_interactions", "min_item_interactions", "data_dir",
    "rating_scale", "max_user_interactions", "cache",
    "split", "seed", "eval_batch_size", "max_chunk_bytes", "num_workers", "item_text_cols", "max_users",
}  # fmt: skip


def load_source(cfg: Mapping[str, Any], data_dir: Path) -> RawData:
    """Read the source named by `cfg["source"]`, passing it the config keys its reader takes."""
    options = reader_options(cfg, data_dir)  # first: it names an unknown source or a missing key
    return LOADERS[cfg["source"]](**options)


def reader_options(cfg: Mapping[str, Any], data_dir: Path) -> dict[str, Any]:
    """The keyword arguments of the reader of `cfg["source"]`: the config keys it takes (others are logged as
    ignored), `data_dir` when it takes one; a missing required key or an unknown source is a named DataError."""
    source = cfg.get("source")
    if source not in LOADERS:
        raise DataError(f"data.source={source!r}: unknown source; known sources are {sorted(LOADERS)}")
    params = inspect.signature(LOADERS[source]).parameters
    kwargs = {k: v for k, v in cfg.items() if k in params and k != "data_dir"}
    if "data_dir" in params:
        kwargs["data_dir"] = Path(data_dir)
    unused = sorted(set(cfg) - set(params) - NOT_FOR_READERS)
    if unused:
        log.warning("data=%s ignores the config keys %s", source, unused)
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and kwargs.get(n) is None]
    if missing:
        raise DataError(f"data={source} needs " + ", ".join(f"data.{n}" for n in missing))
    return kwargs


__all__ = [
    "RawData",
    "FETCHERS",
    "fetch_ml100k",
    "load_ml100k",
    "load_atomic",
    "load_table",
    "make_synthetic",
    "load_amazon",
    "load_lastfm",
    "fetch_ml1m",
    "load_ml1m",
    "fetch_bookcrossing",
    "load_bookcrossing",
    "fetch_instacart",
    "load_instacart",
    "fetch_filmtrust",
    "load_filmtrust",
    "load_source",
    "reader_options",
]
