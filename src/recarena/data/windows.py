"""Replay windows: the data's latest period cut into W consecutive time windows (the replay experiment's protocol).

Rule: order every interaction by (timestamp, position in the source); the replay period is the last `period` share
of them; its start and W − 1 inner cuts fall at equal interaction counts, each cut at the timestamp of the
interaction found there. Window w holds the interactions with start_w ≤ timestamp < start_{w+1} (the last window
runs to the end). Its history is every interaction with timestamp < start_w: strictly earlier than anything in the
window, so nothing from the window or later is ever history (interactions sharing a cut's timestamp all go to the
later window)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from recarena.data.interactions import Interactions
from recarena.data.splits import TEST, TRAIN
from recarena.errors import ConfigError


@dataclass(frozen=True)
class Window:
    """One replay window: interactions with start ≤ timestamp < end (end = inf for the last)."""

    index: int
    start: float
    end: float


def replay_windows(frame: pl.DataFrame, windows: int, period: float) -> list[Window]:
    """The W windows of the last `period` share of `frame`'s interactions (columns ts, pos)."""
    if isinstance(windows, bool) or int(windows) != windows or int(windows) < 1:
        raise ConfigError(f"replay.windows={windows!r}: must be a positive integer")
    if not 0.0 < float(period) < 1.0:
        raise ConfigError(f"replay.period={period!r}: the share of interactions replayed, strictly between 0 and 1")
    times = frame.sort(["ts", "pos"])["ts"].to_numpy()
    if len(times) == 0 or times[0] == times[-1]:
        raise ConfigError(
            "replay: every interaction of the data has the same timestamp (a source without time, e.g. Last.fm "
            "plays): there is no time order to cut into windows"
        )
    first = int(math.floor(len(times) * (1.0 - float(period))))
    cuts = [first + round(w * (len(times) - first) / int(windows)) for w in range(int(windows))]
    starts = [float(times[c]) for c in cuts]
    if len(set(starts)) < len(starts) or starts[0] <= float(times[0]):
        raise ConfigError(
            f"replay.windows={windows}, replay.period={period}: the window starts {starts} are not distinct, later "
            "than the first interaction; use fewer windows or a longer period"
        )
    ends = [*starts[1:], math.inf]
    return [Window(w, s, e) for w, (s, e) in enumerate(zip(starts, ends, strict=True))]


def window_data(data: Interactions, window: Window) -> Interactions:
    """`data` re-parted for one window: history (timestamp < start) as train, the window as test, no valid part;
    later interactions are left out. Ids, indices and features stay those of `data`."""
    frame = data.frame.filter(pl.col("ts") < window.end).with_columns(
        pl.when(pl.col("ts") < window.start).then(TRAIN).otherwise(TEST).cast(data.frame.schema["part"]).alias("part")
    )
    part = Interactions.build(
        frame, data.user_ids, data.item_ids, data.items, data.users, data.counts, data.name, data.trust
    )
    part.max_users, part.sample_seed = data.max_users, data.sample_seed
    return part
