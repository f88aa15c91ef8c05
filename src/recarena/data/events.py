"""New interactions (collected feedback) folded into split data, through the data layer's cleaning rules.

An event is (user, item, timestamp) with raw ids as in the data. Cleaning, each step counted and logged with the
origin named: rows with a missing, non-integer, negative or out-of-range timestamp (whole seconds since the epoch,
at most MAX_TIMESTAMP: the end of year 9999) are dropped; rows whose item is not in the
catalogue are dropped (a generative model's vocabulary is the catalogue); rows already in the data, and repeats
within the events, are dropped (the earliest kept, docs/protocol.md §1). Users not in the data are appended after the
known ones (known users keep their indices). Kept events join the train part, so they count as history for
validation and test, and as training data for a refit or fine-tune."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl

from recarena.data.interactions import Interactions
from recarena.data.preprocess import log_dropped
from recarena.data.sources.columns import id_series
from recarena.data.splits import TRAIN
from recarena.errors import DataError

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("user", "item", "timestamp")
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31 23:59:59 UTC: timestamps are whole seconds since the epoch up to it


def read_events(path: str | Path) -> pl.DataFrame:
    """A Parquet, CSV or TSV table with user, item and timestamp columns (a `kind` column is kept if present)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such events table")
    readers = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".tsv": lambda p: pl.read_csv(p, separator="\t")}
    if path.suffix not in readers:
        raise DataError(f"{path}: expected a .parquet, .csv or .tsv events table")
    try:
        frame = (
            readers[path.suffix](path, infer_schema_length=0) if path.suffix != ".parquet" else pl.read_parquet(path)
        )
    except pl.exceptions.PolarsError as error:
        raise DataError(f"{path}: unreadable events table: {error}") from error
    return check_events(frame, str(path))


def check_events(frame: pl.DataFrame, origin: str) -> pl.DataFrame:
    """The events with ids as strings and the columns checked; a missing column is a DataError naming it."""
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{origin}: column {missing[0]!r} is missing (an events table needs {list(EVENT_COLUMNS)})")
    extra = ["kind"] if "kind" in frame.columns else []
    return frame.select(
        pl.col("user").cast(pl.String).str.strip_chars(),
        pl.col("item").cast(pl.String).str.strip_chars(),
        pl.col("timestamp"),
        *extra,
    )


def fold_events(data: Interactions, events: pl.DataFrame, origin: str = "events") -> tuple[Interactions, dict]:
    """`data` with the clean events added to its train part, and the counts of what each cleaning step dropped."""
    events = check_events(events, origin).with_row_index("pos")  # pos: the event's row, named in the warnings
    counts = {"events": events.height}
    timestamp = pl.col("timestamp").cast(pl.Float64, strict=False)
    valid_time = (
        timestamp.is_not_null() & timestamp.is_finite() & (timestamp >= 0) & (timestamp <= MAX_TIMESTAMP)
        & (timestamp == timestamp.floor())
    )  # fmt: skip
    what = f"a missing, negative, non-integer or out-of-range (> {MAX_TIMESTAMP}) timestamp"
    events = _drop(events, valid_time, origin, "bad_timestamp", what, counts)
    events = events.with_columns(ts=timestamp)
    items = {str(raw): index for index, raw in enumerate(data.item_ids.tolist())}
    events = events.with_columns(i=pl.col("item").replace_strict(items, default=None, return_dtype=pl.Int32))
    events = _drop(events, pl.col("i").is_not_null(), origin, "unknown_item", "an item not in the catalogue", counts)
    known_users = {str(raw): index for index, raw in enumerate(data.user_ids.tolist())}
    new_users = [u for u in events["user"].unique(maintain_order=True).to_list() if u not in known_users]
    user_ids = _append_ids(data.user_ids, new_users)
    index = {**known_users, **{u: len(known_users) + n for n, u in enumerate(new_users)}}
    events = events.with_columns(u=pl.col("user").replace_strict(index, return_dtype=pl.Int32)).sort(["ts", "pos"])
    seen = data.frame.select("u", "i").with_columns(seen=pl.lit(True))
    events = events.join(seen, on=["u", "i"], how="left", maintain_order="left")
    events = _drop(events, pl.col("seen").is_null(), origin, "already_in_data", "a (user, item) already in the data",
                   counts)  # fmt: skip
    first = pl.struct("u", "i").is_first_distinct()
    events = _drop(events, first, origin, "duplicate", "a repeat of an earlier event (the earliest kept)", counts)
    counts["kept"], counts["new_users"] = events.height, len(new_users)
    start = int(data.frame["pos"].max()) + 1 if data.frame.height else 0
    schema = data.frame.schema
    rows = events.select(
        "u", "i", "ts", (pl.int_range(pl.len()) + start).cast(schema["pos"]).alias("pos"),
        pl.lit(TRAIN, dtype=schema["part"]).alias("part"),
    )  # fmt: skip
    frame = pl.concat([data.frame, rows.cast(data.frame.schema)]).sort(["u", "ts", "pos"])
    folded = Interactions.build(
        frame, user_ids, data.item_ids, data.items, data.users, data.counts, data.name, data.trust
    )
    folded.max_users, folded.sample_seed = data.max_users, data.sample_seed
    folded.counts["events_kept"] = events.height
    log.info("%s: %s", origin, counts)
    return folded, counts


def added_events(folded: Interactions, data: Interactions) -> pl.DataFrame:
    """The raw (user, item, timestamp) rows `fold_events` added to `data` to make `folded`, in time order."""
    last = int(data.frame["pos"].max()) if data.frame.height else -1
    added = folded.frame.filter(pl.col("pos") > last).sort(["ts", "pos"])
    return pl.DataFrame(
        {
            "user": [str(folded.user_ids[u]) for u in added["u"].to_list()],
            "item": [str(folded.item_ids[i]) for i in added["i"].to_list()],
            "timestamp": added["ts"].cast(pl.Int64),
        },
        schema={"user": pl.String, "item": pl.String, "timestamp": pl.Int64},
    )


def _drop(frame: pl.DataFrame, keep: pl.Expr, origin: str, key: str, what: str, counts: dict) -> pl.DataFrame:
    """The rows `keep` selects; the others are counted in `counts` and logged as preprocessing logs its drops."""
    counts[f"dropped_{key}"] = log_dropped(frame, ~keep, origin, f"events with {what}")
    return frame.filter(keep)


def _append_ids(ids: np.ndarray, new: list[str]) -> np.ndarray:
    """`ids` followed by `new` raw ids, all typed by the project's id rule (`columns.id_series`: integers when every
    id is one, else strings), so known users keep their indices and every id one type."""
    if not new:
        return ids
    return id_series(pl.Series([str(i) for i in ids.tolist()] + list(new))).to_numpy()
