"""Every family end to end through train.py (Hydra compose API), files and W&B read back, bad input named."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from recarena.errors import ConfigError, DataError
from recarena.utils.wandb_records import offline_runs
from tests.conftest import saved_list_metrics

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["pop", "itemcf", "usercf", "mf", "mf_bpr"]


@pytest.mark.parametrize("model", MODELS)
def test_every_model_runs_end_to_end_and_wandb_matches_metrics_json(run_train, model):
    results, out = run_train(f"model={model}", "data=synthetic", "logger=wandb")
    saved = json.loads((out / "metrics.json").read_text())
    for stage in ("val", "test"):
        assert saved[stage]["recall@10"] == pytest.approx(saved_list_metrics(out, stage, 10)["recall@10"], abs=1e-9)
        assert saved[stage]["recall@10"] == pytest.approx(results[stage]["recall@10"])
    (run,) = offline_runs(out)
    assert run.job_type == model
    assert run.summary["val/recall@10"] == pytest.approx(saved["val"]["recall@10"], abs=1e-7)
    assert run.summary["test/ndcg@10"] == pytest.approx(saved["test"]["ndcg@10"], abs=1e-7)
    assert run.config["model"]["_target_"].endswith("FitOnceModule")
    recs = pl.read_parquet(out / "recommendations.parquet")
    assert set(recs["stage"]) == {"val", "test"}
    assert recs.group_by(["user", "stage"]).len()["len"].unique().to_list() == [20]
    per_user = pl.read_parquet(out / "per_user_metrics.parquet")
    assert per_user.filter(pl.col("stage") == "test")["recall@10"].mean() == pytest.approx(saved["test"]["recall@10"])


def test_popularity_on_ml100k_reproduces_the_protocol_check(run_train):
    """docs/protocol.md end to end: split, masking, tie-breaking and metrics against the issue's reference numbers."""
    results, out = run_train("model=pop", "logger=none")
    test = results["test"]
    assert test["recall@10"] == pytest.approx(0.0704, abs=5e-4)
    assert test["precision@10"] == pytest.approx(0.0598, abs=5e-4)
    assert test["ndcg@10"] == pytest.approx(0.0789, abs=5e-4)
    assert test["coverage@10"] == pytest.approx(0.0452, abs=5e-4)
    assert test["users/cold"] + test["users/warm"] == 943


def test_bad_ks_fails_before_any_work(run_train):
    with pytest.raises(ConfigError, match=r"eval.ks contains 0"):
        run_train("model=pop", "data=synthetic", "logger=none", "eval.ks=[0]")
    with pytest.raises(ConfigError, match=r"eval.ks is empty"):
        run_train("model=pop", "data=synthetic", "logger=none", "eval.ks=[]")
    with pytest.raises(ConfigError, match=r"larger than the catalogue"):
        run_train("model=pop", "data=synthetic", "logger=none", "eval.ks=[10,100000]")


def test_missing_data_path_is_named_and_nothing_is_written(run_train, tmp_path):
    """The data is read before the model, trainer and logger exist: no W&B run is started for a bad path."""
    missing = tmp_path / "nowhere" / "ml"
    with pytest.raises(DataError, match="nowhere"):
        run_train("model=pop", "data=atomic", f"data.path={missing}", "logger=wandb")
    assert not list(tmp_path.rglob("metrics.json"))
    assert not list(tmp_path.rglob("wandb"))


def test_table_without_the_configured_user_column_is_named(run_train, tmp_path):
    table = tmp_path / "events.csv"
    table.write_text("customer,product,ts\n1,2,3\n")
    with pytest.raises(DataError, match="user_id"):
        run_train("model=pop", "data=table", f"data.path={table}", "data.time_col=ts", "logger=none")


def test_dataset_empty_after_filtering_is_named(run_train):
    with pytest.raises(DataError, match="min_rating"):
        run_train("model=pop", "data=synthetic", "data.min_rating=6", "logger=none")


def test_negative_neighbours_are_rejected(run_train):
    with pytest.raises(ConfigError, match=r"model.recommender.k=-?\d+: \w+ needs at least one neighbour"):
        run_train("model=itemcf", "data=synthetic", "model.recommender.k=-3", "logger=none")


def _train_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "RECARENA_ROOT": str(cwd), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "recarena.train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_multirun_sweep_writes_one_folder_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    done = _train_cli(
        "-m", "model=pop,itemcf", "seed=0,1", "data=synthetic", f"paths.data_dir={ROOT / 'data'}",
        "logger=csv", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p.parent.name for p in sweep.glob("*/metrics.json"))
    assert jobs == ["0-pop", "1-pop", "2-itemcf", "3-itemcf"]


def test_joblib_launcher_runs_jobs_in_parallel_processes_to_the_same_metrics(tmp_path):
    """Hydra's joblib launcher (the sweeps extra) gives each job its own process; numbers equal a sequential sweep."""
    common = ("-m", "model=pop,itemcf", "data=synthetic", f"paths.data_dir={ROOT / 'data'}", "logger=none")
    for name, launcher in (("seq", ()), ("par", ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"))):
        done = _train_cli(*common, *launcher, f"hydra.sweep.dir={tmp_path / name}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    for job in ("0-pop", "1-itemcf"):
        seq, par = (json.loads((tmp_path / name / job / "metrics.json").read_text()) for name in ("seq", "par"))
        assert par["test"] == seq["test"] and par["val"] == seq["val"]
    assert (tmp_path / "par" / "leaderboard.md").is_file()  # the report callback runs after a joblib sweep too


def test_submitit_launcher_runs_pickled_jobs_in_their_own_processes_to_the_same_metrics(tmp_path):
    """The cluster path, exercised locally: hydra/launcher=submitit_local pickles each job, runs it in a separate
    process through submitit and gathers the results; the numbers equal the basic launcher's."""
    common = ("-m", "model=pop,itemcf", "data=synthetic", f"paths.data_dir={ROOT / 'data'}", "logger=none")
    submitit = ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")
    for name, launcher in (("basic", ()), ("submitit", submitit)):
        done = _train_cli(*common, *launcher, f"hydra.sweep.dir={tmp_path / name}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    for job in ("0-pop", "1-itemcf"):
        basic, sub = (json.loads((tmp_path / n / job / "metrics.json").read_text()) for n in ("basic", "submitit"))
        assert sub["test"] == basic["test"] and sub["val"] == basic["val"]
    assert list((tmp_path / "submitit" / ".submitit").iterdir())  # submitit's own job records: pickles and logs
    assert (tmp_path / "submitit" / "leaderboard.md").is_file()


def test_unknown_model_is_reported_by_hydra(tmp_path):
    done = _train_cli("model=nosuchmodel", "data=synthetic", "logger=none", cwd=tmp_path)
    assert done.returncode != 0
    assert "nosuchmodel" in done.stderr and "model" in done.stderr


def test_monitored_metric_follows_eval_ks_unless_set(run_train, tmp_path):
    from tests.conftest import compose_config

    assert compose_config(["model=gpt_dgrs"], tmp_path).optimized_metric == "val/ndcg@10"
    five = compose_config(["model=gpt_dgrs", "eval.ks=[5]"], tmp_path)
    assert five.optimized_metric == "val/ndcg@5" and five.callbacks.early_stopping.monitor == "val/ndcg@5"
    assert compose_config(["eval.ks=[5,20]"], tmp_path).optimized_metric == "val/ndcg@20"
    assert compose_config(["eval.ks=[5]", "optimized_metric=val/recall@5"], tmp_path).optimized_metric == "val/recall@5"
    results, _ = run_train("model=pop", "data=synthetic", "logger=none", "eval.ks=[5]")
    assert {k.split("@")[1].split("/")[0] for k in results["val"] if "@" in k} == {"5"}  # eval.ks=[5] runs as asked


def test_default_cutoffs_above_a_tiny_catalogue_are_dropped_with_a_warning(run_train, caplog):
    tiny = ["model=pop", "data=synthetic", "data.n_items=12", "data.n_users=60", "data.n_interactions=500"]
    tiny.append("logger=none")
    with caplog.at_level("WARNING"):
        results, _ = run_train(*tiny)  # default eval.ks=[5,10,20]: 20 > 12 items
    assert "the catalogue has 12 items; evaluating at K=[5, 10]" in caplog.text
    assert {k.split("@")[1].split("/")[0] for k in results["test"] if "@" in k} == {"5", "10"}
    with pytest.raises(ConfigError, match="eval.ks contains 20: larger than the catalogue"):
        run_train(*tiny, "eval.ks=[5,20]")  # written by the user: stays an error
