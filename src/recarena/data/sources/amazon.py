"""Amazon reviews (e-commerce): the review files and product metadata of McAuley et al., which the user downloads.

- 2014 per-category 5-core files (`reviews_<Category>_5.json.gz`: one JSON object per line with reviewerID, asin,
  overall, unixReviewTime) and their metadata (`meta_<Category>.json.gz`: one *Python literal* per line);
- 2018 (same review fields; metadata as JSON lines with `category` and `description` lists);
- 2023 (`<Category>.jsonl.gz`: user_id, parent_asin, rating, timestamp in milliseconds; `meta_<Category>.jsonl.gz`
  with parent_asin, title, store, categories, description).
The format is recognised from the fields of the first record; plain or gzipped files."""

from __future__ import annotations

import ast
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recarena.data.sources.columns import RawData, check_readable
from recarena.errors import DataError


@dataclass(frozen=True)
class ReviewFormat:
    """Where one release keeps the interaction fields, and the unit of its timestamps."""

    name: str
    user: str
    item: str
    rating: str
    time: str
    seconds_per_unit: float


FORMATS = (
    ReviewFormat("2014/2018", "reviewerID", "asin", "overall", "unixReviewTime", 1.0),
    ReviewFormat("2023", "user_id", "parent_asin", "rating", "timestamp", 1e-3),
)


def load_amazon(path: str | Path, meta_path: str | Path | None = None) -> RawData:
    """Interactions from an Amazon review file (user, item, rating, time in seconds) and, with `meta_path`, an item
    table with title, brand, categories and description from the product metadata."""
    path = Path(path).expanduser()
    rows: dict[str, list] = {"user": [], "item": [], "rating": [], "timestamp": []}
    form: ReviewFormat | None = None
    for line, record in _records(path, "data.path", literal=False):
        if form is None:
            form = _format_of(record, path, line)
        rows["user"].append(str(_field(record, form.user, form, path, line)))
        rows["item"].append(str(_field(record, form.item, form, path, line)))
        rows["rating"].append(_number(_field(record, form.rating, form, path, line), path, line, form.rating))
        seconds = _number(_field(record, form.time, form, path, line), path, line, form.time) * form.seconds_per_unit
        rows["timestamp"].append(seconds)
    if form is None:
        raise DataError(f"{path}: no reviews (the file is empty)")
    inter = pl.DataFrame(rows, schema={"user": pl.String, "item": pl.String, "rating": pl.Float64,
                                       "timestamp": pl.Float64})  # fmt: skip
    items = _metadata(Path(meta_path).expanduser()) if meta_path is not None else None
    return RawData(path.name.split(".")[0], inter, items, None, str(path))


def _field(record: dict[str, Any], field: str, form: ReviewFormat, path: Path, line: int) -> Any:
    if record.get(field) is None:
        raise DataError(f"{path}:{line}: the review has no {field!r} (an Amazon {form.name} review needs it)")
    return record[field]


def _number(value: Any, path: Path, line: int, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}:{line}: {field}={value!r} is not a number") from err
    if number != number:  # NaN
        raise DataError(f"{path}:{line}: {field} is NaN")
    return number


def _format_of(record: dict[str, Any], path: Path, line: int) -> ReviewFormat:
    for form in FORMATS:
        if form.user in record and form.item in record:
            return form
    raise DataError(
        f"{path}:{line}: not an Amazon review (fields {sorted(record)[:12]}); expected reviewerID/asin (2014, 2018) "
        "or user_id/parent_asin (2023)"
    )


def _metadata(path: Path) -> pl.DataFrame:
    """One row per product: item, title, brand (2023: store), categories (a flat list) and description (text)."""
    rows: dict[str, list] = {"item": [], "title": [], "brand": [], "categories": [], "description": []}
    for line, record in _records(path, "data.meta_path", literal=True):
        item = record.get("parent_asin") or record.get("asin")
        if item is None:
            raise DataError(f"{path}:{line}: the product has no 'asin' or 'parent_asin'")
        rows["item"].append(str(item))
        rows["title"].append(_text(record.get("title")))
        rows["brand"].append(_text(record.get("brand") or record.get("store")))
        rows["categories"].append(_categories(record))
        rows["description"].append(_text(record.get("description")))
    frame = pl.DataFrame(rows, schema={"item": pl.String, "title": pl.String, "brand": pl.String,
                                       "categories": pl.List(pl.String), "description": pl.String})  # fmt: skip
    return frame.unique("item", keep="first", maintain_order=True)  # ASINs stay strings, as in the reviews


def _categories(record: dict[str, Any]) -> list[str]:
    """2014: a list of category paths; 2018: `category`; 2023: `categories` (+ main_category) — flattened, unique."""
    raw = record.get("categories") or record.get("category") or []
    flat: list[str] = []
    for entry in [record.get("main_category"), *raw]:
        for name in entry if isinstance(entry, list) else [entry]:
            if isinstance(name, str) and name.strip() and name.strip() not in flat:
                flat.append(name.strip())
    return flat


def _text(value: Any) -> str | None:
    """A string field, or a list of strings (2018/2023 descriptions) joined by spaces; None when empty."""
    if isinstance(value, list):
        value = " ".join(v for v in value if isinstance(v, str))
    return value.strip() or None if isinstance(value, str) else None


def _records(path: Path, key: str, literal: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-empty line of a JSON-lines file, plain or gzipped; with `literal`, a
    line that is not JSON is read as a Python literal (the 2014 metadata). A bad line or a truncated gzip file is a
    DataError naming the file and line."""
    if not path.is_file():
        raise DataError(f"{key}={path}: no such file (an Amazon review or metadata file, .json/.jsonl, plain or .gz)")
    check_readable(path, str(path))
    opener = gzip.open if path.suffix == ".gz" else open
    line = 0
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for line, text in enumerate(handle, start=1):
                if text.strip():
                    yield line, _parse(text, path, line, literal)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: the gzip stream is truncated or corrupt after line {line} ({err})") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path}:{line + 1}: not UTF-8 text ({err.reason})") from err


def _parse(text: str, path: Path, line: int, literal: bool) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        if not literal:
            raise DataError(f"{path}:{line}: malformed JSON ({err.msg} at column {err.colno})") from err
        try:
            record = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError) as err2:
            raise DataError(f"{path}:{line}: neither JSON nor a Python literal ({err2})") from err2
    if not isinstance(record, dict):
        raise DataError(f"{path}:{line}: expected one object per line, got {type(record).__name__}")
    return record
