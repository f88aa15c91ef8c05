"""RecBole atomic files (`<name>.inter`, `.item`, `.user` with `field:type` headers)."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from recarena.data.sources.columns import (
    GENRE_COLUMNS,
    LINE,
    RawData,
    conform_ids,
    infer_token,
    interaction_table,
    read_delimited,
    require_columns,
    to_float,
)
from recarena.errors import DataError

log = logging.getLogger(__name__)


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
    frame = read_delimited(path, str(path), "\t")
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
    require_columns(frame, {"user id": "user_id", "item id": "item_id"}, str(inter_path))
    columns = {"user": "user_id", "item": "item_id"}
    columns |= {c: c if c in frame.columns else None for c in ("rating", "timestamp")}
    inter = interaction_table(frame, columns, str(inter_path))
    items = _atomic_features(Path(f"{prefix}.item"), "item", inter["item"].dtype)
    users = _atomic_features(Path(f"{prefix}.user"), "user", inter["user"].dtype)
    return RawData(prefix.name, inter, items, users, str(inter_path))


def _atomic_features(path: Path, key: str, id_dtype: pl.DataType) -> pl.DataFrame | None:
    """An atomic .item/.user file typed by its header; a token_seq genre column becomes `genres` (a list)."""
    if not path.is_file():
        return None
    frame, kinds = _read_atomic_file(path)
    require_columns(frame, {f"{key} id": f"{key}_id"}, str(path))
    genre = next((c for c in GENRE_COLUMNS if kinds.get(c) == "token_seq"), None)
    out = {key: conform_ids(frame[f"{key}_id"], id_dtype)}
    for column, kind in kinds.items():
        if column == f"{key}_id":
            continue
        if column == genre:
            out["genres"] = frame[column].str.split(" ").list.eval(pl.element().filter(pl.element() != ""))
        elif kind == "float":
            out[column] = to_float(frame, column, str(path))
        elif kind == "token":
            out[column] = infer_token(frame[column])
        else:
            out[column] = frame[column]
    return pl.DataFrame(out)
