"""Replay evaluation of adaptation: the window rule (hand-computed cuts; history strictly before each window) and
the experiment end to end (both arms through the evaluation callback, the sweep's replay report)."""

import numpy as np
import polars as pl
import pytest

from recarena.data.interactions import Interactions
from recarena.data.splits import TRAIN
from recarena.data.windows import Window, replay_windows, window_data
from recarena.errors import ConfigError
from recarena.train import train
from tests.conftest import compose_config
from tests.test_recommend import _cli


def _data() -> Interactions:
    """20 interactions of 4 users, each with its own item, at times 0..19 except two pairs sharing one (8 and 16)."""
    ts = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 10, 11, 12, 13, 14, 15, 16, 16, 18, 19]
    frame = pl.DataFrame(
        {"u": [n % 4 for n in range(20)], "i": list(range(20)), "ts": [float(t) for t in ts],
         "pos": list(range(20)), "part": [TRAIN] * 20},
        schema={"u": pl.Int32, "i": pl.Int32, "ts": pl.Float64, "pos": pl.UInt32, "part": pl.Int8},
    ).sort(["u", "ts", "pos"])  # fmt: skip
    return Interactions.build(frame, np.arange(4), np.arange(20))


def test_windows_cut_the_last_period_at_equal_counts_and_ties_go_to_the_later_window():
    # period 0.6 of 20 → the last 12 (positions 8..19); 3 windows of 4 → cuts at positions 8, 12, 16: times 8, 12, 16
    windows = replay_windows(_data().frame, 3, 0.6)
    assert windows == [Window(0, 8.0, 12.0), Window(1, 12.0, 16.0), Window(2, 16.0, np.inf)]
    with pytest.raises(ConfigError, match=r"replay.windows=0"):
        replay_windows(_data().frame, 0, 0.5)
    with pytest.raises(ConfigError, match=r"replay.period=1.0"):
        replay_windows(_data().frame, 2, 1.0)
    with pytest.raises(ConfigError, match=r"not distinct"):
        replay_windows(_data().frame, 20, 0.9)


def test_no_window_ever_sees_its_own_or_later_interactions_as_history():
    data = _data()
    for window in replay_windows(data.frame, 3, 0.6):
        part = window_data(data, window)
        history = part.frame.filter(pl.col("part") == TRAIN)
        scored = part.frame.filter(pl.col("part") != TRAIN)
        assert history["ts"].max() < window.start <= scored["ts"].min()
        assert scored["ts"].max() < window.end
        assert part.known("test").nnz == history.height and part.test.nnz == scored.height
        expected = data.frame.filter((pl.col("ts") >= window.start) & (pl.col("ts") < window.end)).height
        assert part.test.nnz == expected  # every interaction of the window is scored, the tied ones included
    first = window_data(data, replay_windows(data.frame, 3, 0.6)[0])
    assert sorted(first.frame.filter(pl.col("part") != TRAIN)["ts"].to_list()) == [8.0, 8.0, 10.0, 11.0]


def test_replay_sweep_runs_both_arms_and_reports(tmp_path):
    sweep = tmp_path / "sweep"
    done = _cli(
        "recarena.train", "-m", "experiment=replay", "data=synthetic", "logger=none", "hydra.launcher.n_jobs=1",
        "model=pop,itemcf", "replay.windows=3", "replay.period=0.3", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = pl.read_csv(sweep / "replay.csv")
    assert table.group_by("model").len().sort("model").rows() == [("itemcf", 6), ("pop", 6)]
    for model in ("pop", "itemcf"):
        rows = table.filter(pl.col("model") == model).sort("arm", "window")
        static, updated = rows.filter(pl.col("arm") == "static"), rows.filter(pl.col("arm") == "updated")
        assert static["ndcg@10"][0] == updated["ndcg@10"][0]  # window 1: the same first fit
        assert (updated["update_s"][1:] > 0).all() and (static["update_s"] == 0).all()
        assert static["users"].to_list() == updated["users"].to_list()
    pop = table.filter(pl.col("model") == "pop")
    assert (
        pop.filter(pl.col("arm") == "updated")["ndcg@10"].to_list()
        != pop.filter(pl.col("arm") == "static")["ndcg@10"].to_list()
    )  # fmt: skip  (counts that include the newer windows rank differently)
    markdown = (sweep / "replay.md").read_text()
    assert "| itemcf |" in markdown and "| pop |" in markdown and (sweep / "replay.png").stat().st_size > 0


def test_bad_replay_settings_are_named(tmp_path):
    flat = _data().frame.with_columns(ts=pl.lit(0.0))  # a source without time
    with pytest.raises(ConfigError, match=r"same timestamp .* no time order"):
        replay_windows(flat, 3, 0.5)
    base = ["data=synthetic", "logger=none", "+replay.windows=3", "+replay.period=0.3", "+replay.lr_scale=0.1"]
    with pytest.raises(ConfigError, match=r"replay.steps=-1: the fine-tune's optimiser steps"):
        train(compose_config([*base, "+replay.steps=-1"], tmp_path))
