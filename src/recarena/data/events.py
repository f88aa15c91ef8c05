"""New interactions (collected feedback) folded into split data, through the data layer's cleaning rules.

An event is (user, item, kind, timestamp) with raw ids as in the data, looked up by the data's one id rule
(`Interactions.user_index`/`item_index`). The `kind` vocabulary (`EventKinds`, config group `events`) says which kinds
are positive interactions and which are negative; a table without a `kind` column holds positives (`click`).
Cleaning, each step counted and logged with the origin named: rows of an unknown kind are dropped; rows with a
missing, non-integer, negative or out-of-range timestamp (whole seconds since the epoch, at most MAX_TIMESTAMP: the
end of year 9999) are dropped; rows whose item is not in the catalogue are dropped (a generative model's vocabulary
is the catalogue). Positive events already in the data, and repeats within the events, are dropped (the earliest
kept, docs/protocol.md §1); users not in the data are appended after the known ones (known users keep their
indices); kept positives join the train part, so they count as history for validation and test, and as training
data for a refit or fine-tune. Negative events never become interactions: they are kept as (user, item) pairs in
`Interactions.negatives`, and the item never appears in that user's served or printed lists; a negative event of
a user with no interaction at all is dropped (there is no list to keep it out of)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recarena.data.interactions import Interactions
from recarena.data.preprocess import log_dropped
from recarena.data.sources.columns import id_series
from recarena.data.splits import TRAIN
from recarena.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("user", "item", "timestamp")
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31 23:59:59 UTC: timestamps are whole seconds since the epoch up to it
DEFAULT_KIND = "click"  # the kind of an event in a table without a `kind` column


@dataclass(frozen=True)
class EventKinds:
    """The feedback vocabulary: `positive` kinds are interactions, `negative` kinds keep an item out of that user's
    lists and are never interactions; any other kind is unknown (the service refuses it, update drops and counts
    it). Kinds are matched lower-cased and stripped."""

    positive: tuple[str, ...] = ("click", "view", "like", "purchase", "rate")
    negative: tuple[str, ...] = ("dislike", "skip", "hide")

    def __post_init__(self) -> None:
        for name in ("positive", "negative"):
            kinds = getattr(self, name)
            if isinstance(kinds, str) or not all(isinstance(k, str) and k.strip() for k in kinds):
                raise ConfigError(f"events.{name}={kinds!r}: expected a list of non-empty kind names")
            object.__setattr__(self, name, tuple(k.strip().lower() for k in kinds))
        if not self.positive:
            raise ConfigError("events.positive=[]: at least one kind must be a positive interaction")
        both = sorted(set(self.positive) & set(self.negative))
        if both:
            raise ConfigError(f"events: kind {both[0]!r} is both positive and negative")

    @classmethod
    def from_config(cls, node: Any) -> EventKinds:
        """From an `events` config node ({positive: [...], negative: [...]}); None gives the defaults."""
        if node is None:
            return cls()
        unknown = sorted(set(node) - {"positive", "negative"})
        if unknown:
            raise ConfigError(f"events.{unknown[0]}: not a key of the kinds' vocabulary (it has positive, negative)")
        return cls(tuple(node.get("positive", cls.positive)), tuple(node.get("negative", cls.negative)))

    def as_config(self) -> dict[str, list[str]]:
        return {"positive": list(self.positive), "negative": list(self.negative)}

    def sign(self, kind: str) -> int:
        """+1 for a positive kind, -1 for a negative one, 0 for an unknown one."""
        kind = kind.strip().lower()
        return 1 if kind in self.positive else -1 if kind in self.negative else 0

    def describe(self) -> str:
        return f"positive {list(self.positive)}, negative {list(self.negative)}"


def read_events(path: str | Path) -> pl.DataFrame:
    """A Parquet, CSV or TSV table with user, item and timestamp columns, and optionally `kind`."""
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
    """The events as (user, item, kind, timestamp) with ids and kinds as strings (kind `click` where the table has
    none); a missing column is a DataError naming it."""
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{origin}: column {missing[0]!r} is missing (an events table needs {list(EVENT_COLUMNS)})")
    kind = pl.col("kind").cast(pl.String) if "kind" in frame.columns else pl.lit(DEFAULT_KIND)
    return frame.select(
        pl.col("user").cast(pl.String).str.strip_chars(),
        pl.col("item").cast(pl.String).str.strip_chars(),
        kind.str.strip_chars().str.to_lowercase().alias("kind"),
        pl.col("timestamp"),
    )


def fold_events(
    data: Interactions, events: pl.DataFrame, origin: str = "events", kinds: EventKinds | None = None
) -> tuple[Interactions, dict, pl.DataFrame]:
    """`data` with the clean positive events added to its train part and the negative ones to its `negatives`, the
    counts of what each cleaning step dropped, and the kept events (user, item, kind, timestamp) in time order."""
    kinds = kinds or EventKinds()
    events = check_events(events, origin).with_row_index("pos")  # pos: the event's row, named in the warnings
    counts = {"events": events.height}
    signs = {**{k: 1 for k in kinds.positive}, **{k: -1 for k in kinds.negative}}
    events = events.with_columns(sign=pl.col("kind").replace_strict(signs, default=0, return_dtype=pl.Int8))
    what = f"a kind outside the vocabulary ({kinds.describe()})"
    events = _drop(events, pl.col("sign") != 0, origin, "unknown_kind", what, counts)
    timestamp = pl.col("timestamp").cast(pl.Float64, strict=False)
    valid_time = (
        timestamp.is_not_null() & timestamp.is_finite() & (timestamp >= 0) & (timestamp <= MAX_TIMESTAMP)
        & (timestamp == timestamp.floor())
    )  # fmt: skip
    what = f"a missing, negative, non-integer or out-of-range (> {MAX_TIMESTAMP}) timestamp"
    events = _drop(events, valid_time, origin, "bad_timestamp", what, counts)
    items = {raw: data.item_index(raw) for raw in events["item"].unique().to_list()}
    events = _lookup(events.with_columns(ts=timestamp), "item", items, "i")
    events = _drop(events, pl.col("i").is_not_null(), origin, "unknown_item", "an item not in the catalogue", counts)
    positives, negatives = events.filter(pl.col("sign") > 0), events.filter(pl.col("sign") < 0)
    known = {raw: data.user_index(raw) for raw in events["user"].unique(maintain_order=True).to_list()}
    unknown = [u for u in positives["user"].unique(maintain_order=True).to_list() if known[u] is None]
    user_ids, new_index = _append_users(data.user_ids, unknown)
    index = {**{u: n for u, n in known.items() if n is not None}, **new_index}
    new_users = user_ids[data.n_users :]
    positives = _lookup(positives, "user", index, "u").sort(["ts", "pos"])
    seen = data.frame.select("u", "i").with_columns(seen=pl.lit(True))
    positives = positives.join(seen, on=["u", "i"], how="left", maintain_order="left")
    what = "a (user, item) already in the data"
    positives = _drop(positives, pl.col("seen").is_null(), origin, "already_in_data", what, counts)
    first = pl.struct("u", "i").is_first_distinct()
    positives = _drop(positives, first, origin, "duplicate", "a repeat of an earlier event (the earliest kept)", counts)
    negatives = _lookup(negatives, "user", index, "u")
    what = "a negative kind from a user with no interaction"
    negatives = _drop(negatives, pl.col("u").is_not_null(), origin, "negative_of_unknown_user", what, counts)
    counts["kept"], counts["negatives_kept"], counts["new_users"] = positives.height, negatives.height, len(new_users)
    start = int(data.frame["pos"].max()) + 1 if data.frame.height else 0
    schema = data.frame.schema
    rows = positives.select(
        "u", "i", "ts", (pl.int_range(pl.len()) + start).cast(schema["pos"]).alias("pos"),
        pl.lit(TRAIN, dtype=schema["part"]).alias("part"),
    )  # fmt: skip
    frame = pl.concat([data.frame, rows.cast(data.frame.schema)]).sort(["u", "ts", "pos"])
    folded = Interactions.build(
        frame, user_ids, data.item_ids, data.items, data.users, data.counts, data.name, data.trust
    )
    folded.max_users, folded.sample_seed = data.max_users, data.sample_seed
    folded.negatives = _negatives(data.negatives, negatives, len(user_ids), data.n_items)
    folded.counts["events_kept"] = positives.height
    log.info("%s: %s", origin, counts)
    columns = ("user", "item", "kind", "ts", "pos")
    kept = pl.concat([positives.select(columns), negatives.select(columns)]).sort(["ts", "pos"])
    return folded, counts, kept.select("user", "item", "kind", pl.col("ts").cast(pl.Int64).alias("timestamp"))


def _negatives(before: sp.csr_matrix | None, events: pl.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix | None:
    """The (user, item) pairs of negative feedback: the earlier ones (resized to the users now known) and `events`."""
    if before is None and not events.height:
        return None
    rows, cols = events["u"].to_numpy(), events["i"].to_numpy()
    if before is not None:
        before = before.tocoo()
        rows, cols = np.concatenate([before.row, rows]), np.concatenate([before.col, cols])
    pairs = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    pairs.data[:] = 1.0  # a pair given twice is one pair
    pairs.sort_indices()
    return pairs


def _lookup(frame: pl.DataFrame, column: str, index: dict[str, int | None], name: str) -> pl.DataFrame:
    """`frame` with `name`: the index `index` gives each value of `column` (null where it gives none)."""
    keys = pl.DataFrame({column: list(index), name: list(index.values())}, schema={column: pl.String, name: pl.Int32})
    return frame.join(keys, on=column, how="left", maintain_order="left")


def _drop(frame: pl.DataFrame, keep: pl.Expr, origin: str, key: str, what: str, counts: dict) -> pl.DataFrame:
    """The rows `keep` selects; the others are counted in `counts` and logged as preprocessing logs its drops."""
    counts[f"dropped_{key}"] = log_dropped(frame, ~keep, origin, f"events with {what}")
    return frame.filter(keep)


def _append_users(ids: np.ndarray, new: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """`ids` followed by the distinct `new` raw ids, all typed by the project's id rule (`columns.id_series`:
    integers when every id is one, else strings), and each new raw id's index. Known users keep their indices;
    raw ids that the rule makes one id ("05000" and "5000" among integer ids) become one user."""
    if not new:
        return ids, {}
    typed = id_series(pl.Series([str(i) for i in ids.tolist()] + list(new))).to_numpy()
    first: dict = {}
    index = {}
    for raw, value in zip(new, typed[len(ids) :].tolist(), strict=True):
        index[raw] = len(ids) + first.setdefault(value, len(first))
    return np.concatenate([typed[: len(ids)], np.array(list(first), dtype=typed.dtype)]), index
