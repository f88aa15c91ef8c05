"""eval.max_users (docs/protocol.md §6): one seeded sample of users per stage, shared by every model, labelled so."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from recarena.errors import ConfigError
from recarena.reporting.leaderboard import build_leaderboards, to_frame
from recarena.reporting.markdown import to_markdown


def test_every_model_is_scored_on_the_same_seeded_sample_and_the_report_says_so(run_train, tmp_path):
    runs = {model: run_train(f"model={model}", "data=synthetic", "logger=none", "eval.max_users=25") for model in
            ("pop", "itemcf")}  # fmt: skip
    _, full_out = run_train("model=pop", "data=synthetic", "logger=none")
    everyone = pl.read_parquet(full_out / "per_user_metrics.parquet").filter(pl.col("stage") == "test")["user"]
    expected = np.sort(np.random.default_rng(0).choice(np.sort(everyone.to_numpy()), 25, replace=False))
    for _, out in runs.values():
        scored = pl.read_parquet(out / "per_user_metrics.parquet").filter(pl.col("stage") == "test")["user"]
        assert np.array_equal(np.sort(scored.to_numpy()), expected)  # raw ids are the indices here, ascending
        sampling = json.loads((out / "metrics.json").read_text())["sampling"]
        assert sampling == {"eval_max_users": 25, "eval_users": {"val": 25, "test": 25},
                            "all_eval_users": sampling["all_eval_users"]}  # fmt: skip
        assert sampling["all_eval_users"]["test"] == len(everyone)
    (board,) = build_leaderboards(tmp_path)
    report = to_markdown([board])
    assert "SAMPLED EVALUATION (eval.max_users)" in report and f"on 25 of {len(everyone)} test users" in report
    column = dict(zip(to_frame(board)["model"], to_frame(board)["eval_users"], strict=True))
    assert f"25/{len(everyone)} (sampled)" in column.values() and "all" in column.values()  # the csv and W&B table
    assert runs["pop"][0]["test"]["sampled_users"] == 25  # logged, so W&B shows the sample too


def test_max_users_must_be_a_positive_integer(run_train):
    with pytest.raises(ConfigError, match="eval.max_users=0"):
        run_train("model=pop", "data=synthetic", "logger=none", "eval.max_users=0")
