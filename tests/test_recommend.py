"""A finished run can be restored: `recommend` reproduces its saved lists with explanations, `eval` its metrics."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recarena.recommend import recommend
from recarena.runs import evaluate, find_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "RECARENA_ROOT": str(cwd)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _train(folder: Path, *overrides: str) -> Path:
    """A real finished run (python -m recarena.train): its folder holds .hydra/, metrics and the parquet files."""
    out = folder / "run"
    done = _cli(
        "recarena.train", "data=synthetic", "logger=none", f"paths.data_dir={ROOT / 'data'}", f"hydra.run.dir={out}",
        *overrides, cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def usercf_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("usercf"), "model=usercf", "eval.refit_on_valid=true")


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory) -> Path:
    return _train(
        tmp_path_factory.mktemp("gpt"), "model=gpt_dgrs", "trainer.max_epochs=2", "model.n_embd=16", "model.n_layer=1",
        "model.n_head=1", "model.max_len=20", "callbacks.early_stopping=null",
    )  # fmt: skip


def saved(out: Path, user, stage: str = "test") -> pl.DataFrame:
    frame = pl.read_parquet(out / "recommendations.parquet")
    return frame.filter((pl.col("user") == user) & (pl.col("stage") == stage)).sort("rank")


def assert_same_list(rows: list[dict], expected: pl.DataFrame, rel: float = 1e-6) -> None:
    assert [r["item"] for r in rows] == expected["item"].to_list()
    assert [r["rank"] for r in rows] == expected["rank"].to_list()
    assert np.allclose([r["score"] for r in rows], expected["score"].to_numpy(), rtol=rel, atol=1e-7)
    assert all(r["title"] and r["explanation"] for r in rows)


def test_fit_once_run_is_refitted_from_its_config_and_reproduces_lists_and_metrics(usercf_run):
    out = usercf_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    for user in (0, 17, 299):
        assert_same_list(recommend(out, user, k=20), saved(out, user))
    assert_same_list(recommend(out, "17", k=5, stage="val"), saved(out, 17, "val").head(5))  # raw id as text too
    results = evaluate(out, stages=["test"])
    assert results["test"] == json.loads((out / "metrics.json").read_text())["test"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing written into the run


def test_gpt_run_loads_its_best_checkpoint_and_reproduces_lists_and_metrics(gpt_run):
    out = gpt_run
    best = find_checkpoint(out)
    assert best is not None and best.parent == out / "checkpoints" and best.name != "last.ckpt"
    for user in (3, 42):
        assert_same_list(recommend(out, user, k=10), saved(out, user).head(10), rel=1e-4)
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    assert evaluate(out)["test"] == pytest.approx(metrics, rel=1e-6)


def test_eval_can_change_decoding_of_the_same_weights(gpt_run):
    """`model.constrained=false` re-decodes the saved weights: non-items and known items now count as invalid."""
    saved_test = json.loads((gpt_run / "metrics.json").read_text())["test"]
    free = evaluate(gpt_run, model={"constrained": False})["test"]
    assert saved_test["invalid_rate"] == 0.0 and free["invalid_rate"] > 0.0
    assert free["recall@10"] <= saved_test["recall@10"] + 1e-12  # an emptied slot can only lose hits
    with pytest.raises(KeyError, match="model.beam_width"):
        evaluate(gpt_run, model={"beam_width": 3})


def test_eval_scores_every_user_whatever_the_runs_own_batch_limits(tmp_path):
    """A run trained with no validation (`limit_val_batches=0`) is still validated in full by recarena.eval."""
    out = _train(tmp_path, "model=pop", "++trainer.limit_val_batches=0")
    metrics = json.loads((out / "metrics.json").read_text())
    results = evaluate(out, stages=["val", "test"])
    assert "val" not in metrics
    def users(stage: dict) -> float:
        return stage["users/cold"] + stage["users/warm"]

    assert users(results["val"]) == users(metrics["test"])  # every user of the synthetic data, in both stages
    assert results["test"] == pytest.approx(metrics["test"], rel=1e-9)


def test_unknown_user_is_named(usercf_run):
    with pytest.raises(ValueError, match="user=12345 is not in the run's data"):
        recommend(usercf_run, 12345)


def test_recommend_and_eval_command_lines(usercf_run, tmp_path):
    out = usercf_run
    shown = _cli("recarena.recommend", f"run_dir={out}", "user=7", "k=3", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    first = saved(out, 7).row(0, named=True)
    assert "  1. " in shown.stdout and f"[item {first['item']}, score {first['score']:.4g}]" in shown.stdout
    assert re.search(r"\d+ of your \d+ most similar users liked it", shown.stdout)
    assert "same items and order as the run's recommendations.parquet" in shown.stderr
    evaluated = _cli("recarena.eval", f"run_dir={out}", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert re.search(r"test: all \d+ metrics equal the run's metrics.json \(max \|Δ\| = 0\)", evaluated.stdout)
    recall = json.loads((out / "metrics.json").read_text())["test"]["recall@10"]
    assert f"{recall:.4f}" in next(line for line in evaluated.stdout.splitlines() if line.startswith("recall"))
    assert not list(tmp_path.iterdir())  # the entry points wrote nothing where they ran
