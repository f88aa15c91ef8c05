"""Storage of the processed data: the cleaned, id-mapped interactions and the feature tables, cached as Parquet under
`data/cache/processed/`, keyed by the source, its options, the sha256 of its input files and the preprocessing
settings. A sweep's jobs read the same data once; a changed setting or a touched file misses; a folder that cannot
be read back in full is rebuilt. The split is not cached: it is cheap and depends on the split config and seed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recarena.data.preprocess import Preprocessed

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when reading or preprocessing changes what a source yields
PATH_KEYS = ("path", "meta_path", "items_path", "users_path")  # source options that name input files
_TABLES = ("interactions", "user_ids", "item_ids", "items", "users", "trust")


@dataclass(frozen=True)
class Processed:
    """What the cache holds for one source and setting: the preprocessed interactions, the raw feature tables and
    what the reader said about the source."""

    pre: Preprocessed
    items: pl.DataFrame | None
    users: pl.DataFrame | None
    origin: str
    timestamps: bool
    notes: tuple[str, ...] = ()  # the repairs preprocessing logged (dropped rows...), repeated on every cache hit
    trust: pl.DataFrame | None = None  # the source's user → user links (user, trustee, weight), raw ids


def input_files(options: Mapping[str, Any], default: Path | None = None) -> list[Path]:
    """The files a source reads: each `*path` option (a file; every file of a folder; or `<prefix>.*` for a RecBole
    atomic prefix), else the files of `default` (the fetched MovieLens folder)."""
    named = [Path(str(options[k])).expanduser() for k in PATH_KEYS if options.get(k) is not None]
    files: list[Path] = []
    for where in named or ([default] if default is not None else []):
        if where.is_file():
            files.append(where)
        elif where.is_dir():
            files += sorted(p for p in where.iterdir() if p.is_file())
        else:
            files += sorted(p for p in where.parent.glob(f"{where.name}.*") if p.is_file())
    return files


def cache_key(source: str, options: Mapping[str, Any], settings: Mapping[str, Any], files: list[Path]) -> str:
    """sha256 over the cache version, source, options, preprocessing settings and the input files' contents."""
    digest = hashlib.sha256()
    described = {"version": CACHE_VERSION, "source": source, "options": dict(options), "settings": dict(settings)}
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(str(path.name).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_folder(data_dir: Path, source: str, key: str) -> Path:
    return Path(data_dir) / "cache" / "processed" / f"{source}-{key[:20]}"


def read_cached(folder: Path) -> Processed | None:
    """The cached data, or None when there is none or it cannot be read back in full (then it is removed)."""
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        tables = {name: pl.read_parquet(folder / f"{name}.parquet") for name in meta["tables"]}
        for name, rows in meta["tables"].items():
            if tables[name].height != rows:
                raise ValueError(f"{name}.parquet has {tables[name].height} rows, meta.json says {rows}")
        pre = Preprocessed(
            frame=tables["interactions"],
            user_ids=tables["user_ids"]["id"].to_numpy(),
            item_ids=tables["item_ids"]["id"].to_numpy(),
            counts={k: int(v) for k, v in meta["counts"].items()},
        )
        notes = tuple(str(n) for n in meta.get("notes", []))
        return Processed(
            pre, tables.get("items"), tables.get("users"), meta["origin"], bool(meta["timestamps"]), notes,
            tables.get("trust"),
        )
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as error:
        log.warning(
            "processed-data cache %s is unreadable (%s: %s): rebuilding it", folder, type(error).__name__, error
        )
        shutil.rmtree(folder, ignore_errors=True)
        return None


def write_cached(folder: Path, processed: Processed, described: Mapping[str, Any]) -> None:
    """Write the tables into a temporary folder beside `folder`, then rename it into place (a concurrent job that
    wrote it first wins; ours is discarded): a reader never sees a half-written cache."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        pre = processed.pre
        tables = {
            "interactions": pre.frame,
            "user_ids": pl.DataFrame({"id": pre.user_ids}),
            "item_ids": pl.DataFrame({"id": pre.item_ids}),
            "items": processed.items,
            "users": processed.users,
            "trust": processed.trust,
        }
        rows = {}
        for name in _TABLES:
            if tables[name] is not None:
                tables[name].write_parquet(tmp / f"{name}.parquet")
                rows[name] = tables[name].height
        meta = {"tables": rows, "counts": pre.counts, "origin": processed.origin, "timestamps": processed.timestamps,
                "notes": list(processed.notes), "described": dict(described)}  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
        try:
            os.rename(tmp, folder)
        except OSError:  # another job put it there first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class Notes(logging.Handler):
    """Collects the warnings a logger emits (preprocessing's repairs), so a cache hit can repeat them."""

    def __init__(self, logger: str) -> None:
        super().__init__(logging.WARNING)
        self.logger, self.messages = logging.getLogger(logger), []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Notes:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
