"""Reliability, the cases other files leave out: bad files and values, bad config, `ckpt_path=last`,
sweeps (a failing job, two sweeps started in the same second) and W&B with a key but no network. Tiny hand-made
data through the real loaders, `train` and `python -m recarena.train --multirun`."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from recarena.data.datamodule import RecDataModule
from recarena.data.preprocess import preprocess
from recarena.data.sources import load_table
from recarena.data.splits import global_temporal
from recarena.errors import ConfigError, DataError
from recarena.utils.compose import compose_train_config

ROOT = Path(__file__).resolve().parents[1]
SECRET = "fake-secret-key-456"
TINY = ("data=synthetic", "data.n_users=60", "data.n_items=40", "data.n_interactions=600", "logger=none")


# -- bad data -------------------------------------------------------------------------------------------------
def test_truncated_parquet_and_binary_garbage_csv_are_named(tmp_path):
    pl.DataFrame({"user_id": range(200), "item_id": range(200)}).write_parquet(tmp_path / "log.parquet")
    data = (tmp_path / "log.parquet").read_bytes()
    (tmp_path / "log.parquet").write_bytes(data[: len(data) // 2])  # a download cut in half
    with pytest.raises(DataError, match=r"log\.parquet: cannot be read as Parquet"):
        load_table(tmp_path / "log.parquet", "user_id", "item_id")
    garbage = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    (tmp_path / "log.csv").write_bytes(garbage)
    with pytest.raises(DataError, match=r"log\.csv line 3: 2 fields separated by ','"):
        load_table(tmp_path / "log.csv", "user_id", "item_id")


@pytest.mark.parametrize("name", ["log.csv", "log.parquet"])
def test_unreadable_file_is_named(tmp_path, name):
    """A real permission refusal: as root (who reads any file) the loader runs without the capabilities that
    bypass file permissions, as a normal account would."""
    pl.DataFrame({"user_id": [1], "item_id": [2]}).write_csv(tmp_path / "log.csv")
    pl.DataFrame({"user_id": [1], "item_id": [2]}).write_parquet(tmp_path / "log.parquet")
    (tmp_path / name).chmod(0)
    load = (
        "from recarena.data.sources import load_table\n"
        "from recarena.errors import DataError\n"
        f"try: load_table({str(tmp_path / name)!r}, 'user_id', 'item_id')\n"
        "except DataError as err: print(err)\n"
    )
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root without setpriv: no way to meet a permission refusal")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    done = subprocess.run([*prefix, sys.executable, "-c", load], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"{tmp_path / name}: cannot be read (Permission denied)"


def test_non_numeric_rating_through_train_names_file_line_and_value(run_train, tmp_path):
    (tmp_path / "r.csv").write_text("user_id,item_id,stars\n1,2,5\n1,3,five\n")
    with pytest.raises(DataError, match=r"r\.csv line 3: stars 'five' is not a number"):
        run_train("model=pop", "data=table", f"data.path={tmp_path / 'r.csv'}", "data.rating_col=stars", "logger=none")


def test_nan_empty_and_cut_off_ids_are_dropped_counted_and_logged(tmp_path, caplog):
    """docs/protocol.md §1, step 1: a repair, not an error; numeric ids stay numeric despite "NaN"."""
    (tmp_path / "r.csv").write_text("user_id,item_id,ts\n1,10,1\nNaN,11,2\n,12,3\n2,10,4\n2,")  # last line cut off
    pl.DataFrame({"user_id": [1.0, float("nan"), 2.0], "item_id": [10, 11, 12], "ts": [1.0, 2, 3]}).write_parquet(
        tmp_path / "r.parquet"
    )
    for name, dropped in (("r.csv", 3), ("r.parquet", 1)):
        raw = load_table(tmp_path / name, "user_id", "item_id", time_col="ts")
        assert raw.interactions.schema["user"] == pl.Int64
        with caplog.at_level(logging.WARNING):
            pre = preprocess(raw.interactions, origin=raw.origin)
        assert pre.counts["dropped_missing"] == dropped and pre.user_ids.tolist() == [1, 2]
        assert f"{name}: dropped {dropped} rows with a missing user" in caplog.text
        assert "first dropped: data row 2: user=None, item=11, timestamp=2.0" in caplog.text
        caplog.clear()


def test_duplicate_rows_keep_the_earliest_and_are_logged(tmp_path, caplog):
    (tmp_path / "r.csv").write_text("user_id,item_id,ts\n1,10,5\n1,10,2\n1,11,3\n1,10,5\n")
    raw = load_table(tmp_path / "r.csv", "user_id", "item_id", time_col="ts")
    with caplog.at_level(logging.WARNING):
        pre = preprocess(raw.interactions, origin=raw.origin)
    assert pre.counts["dropped_duplicates"] == 2
    assert pre.frame.sort("i")["ts"].to_list() == [2.0, 3.0]  # (1, 10) kept at its earliest time
    assert "dropped 2 duplicate (user, item) rows; kept the earliest (first dropped: data row 1" in caplog.text


def test_dataset_empty_after_kcore_is_named(run_train):
    with pytest.raises(DataError, match=r"no interactions left after preprocessing.*'dropped_kcore': 600"):
        run_train("model=pop", *TINY, "data.min_user_interactions=1000")


@pytest.mark.parametrize(
    ("new_items", "counts", "message"),
    [
        ("drop", (6, 1, 1), "dropped 2 valid/test rows whose user or item never occurs in train (1 with an unseen "
                            "user, 1 with an unseen item; first dropped: data row 7, timestamp 7.0)"),
        ("keep", (6, 2, 1), "dropped 1 valid/test rows whose user never occurs in train (1 with an unseen user, 0 with "
                            "an unseen item; first dropped: data row 9, timestamp 9.0)"),
    ],
)  # fmt: skip
def test_global_temporal_drops_new_users_and_keeps_or_drops_new_items(tmp_path, caplog, new_items, counts, message):
    rows = "1,0,1\n1,1,2\n2,2,3\n2,3,4\n1,4,5\n2,5,6\n1,9,7\n2,0,8\n7,1,9\n1,2,10\n"  # item 9, user 7: late only
    (tmp_path / "r.csv").write_text("user_id,item_id,ts\n" + rows)
    split = partial(global_temporal, valid_quantile=0.6, test_quantile=0.8, new_items=new_items)
    module = RecDataModule("table", split, path=tmp_path / "r.csv", user_col="user_id", item_col="item_id",
                           time_col="ts")  # fmt: skip
    with caplog.at_level(logging.WARNING):
        data = module.load()
    assert (data.counts["train"], data.counts["valid"], data.counts["test"]) == counts
    assert "global_temporal: " + message in caplog.text
    if new_items == "keep":  # item 9 stays in valid with no train interaction: the unseen slice
        assert data.popularity()[data.item_index("9")] == 0
    with pytest.raises(ConfigError, match="split.new_items='maybe': choose one of keep, drop"):
        global_temporal(data.frame, new_items="maybe")


# -- bad config -----------------------------------------------------------------------------------------------
def test_negative_k_fails_before_any_data_is_read(run_train, tmp_path):
    with pytest.raises(ConfigError, match=r"eval.ks contains -5: every K must be a positive integer"):
        run_train(
            "model=pop", "data=table", f"data.path={tmp_path / 'never_read.csv'}", "eval.ks=[-5,10]", "logger=none"
        )


def test_unknown_split_is_named_with_the_options(tmp_path):
    with pytest.raises(MissingConfigException, match=r"Could not find 'split/nosuchsplit'") as err:
        compose_train_config(["split=nosuchsplit"], tmp_path)
    assert "Available options in 'split'" in str(err.value) and "global_temporal" in str(err.value)


@pytest.mark.parametrize(
    "data, expected",
    [
        ("atomic", r"data.path=.*/folder: no file .*/folder/folder\.inter; expected RecBole atomic files"),
        ("table", r"data.path=.*/folder: is a folder \(found \['notes.txt'\]\); expected the path of a CSV"),
        ("ml100k", r"data.path=.*/folder: not MovieLens-100k data \(found \['notes.txt'\]\)"),
    ],
)
def test_data_path_folder_without_the_expected_files_is_named(run_train, tmp_path, data, expected):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("not data")
    with pytest.raises(DataError, match=expected):
        run_train("model=pop", f"data={data}", f"data.path={tmp_path / 'folder'}", "logger=none")


# -- resume with ckpt_path=last -------------------------------------------------------------------------------
KILL_AFTER_1 = ("+callbacks.kill._target_=tests.test_reliability.StopAfterEpochs", "+callbacks.kill.epochs=1")
GPT = (
    *TINY, "model=gpt_dgrs", "model.n_layer=1", "model.n_embd=16", "model.max_len=16", "model.dropout=0.0",
    "callbacks.early_stopping=null", "trainer.enable_progress_bar=false", "eval.ks=[5,10]", "seed=5",
)  # fmt: skip


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_ckpt_path_last_resumes_in_the_interrupted_folder_to_identical_metrics(tmp_path):
    from recarena.train import train

    def run(folder: str, *overrides: str) -> dict:
        (tmp_path / folder).mkdir(exist_ok=True)
        return train(compose_train_config([*GPT, *overrides], tmp_path / folder, ROOT / "data"))

    full = run("full", "trainer.max_epochs=3")
    run("cut", "trainer.max_epochs=3", *KILL_AFTER_1)  # the same run stopped after epoch 1
    assert run("cut", "trainer.max_epochs=3", "ckpt_path=last") == full
    with pytest.raises(ConfigError, match=r"ckpt_path=last: no last.ckpt in .*fresh/checkpoints; resume in"):
        run("fresh", "trainer.max_epochs=3", "ckpt_path=last")  # a new run folder: nothing to resume


# -- sweeps ---------------------------------------------------------------------------------------------------
def test_two_sweeps_in_the_same_second_and_a_failing_job(tmp_path):
    """conf/hydra/default.yaml's sweep dir with the clock frozen at one second: the pid keeps the two apart. In
    sweep A job 0 fails (K above the catalogue); job 1 still runs and the report lists job 0."""
    pattern = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "hydra" / "default.yaml"))["sweep"]["dir"]
    assert "${pid:}" in pattern
    frozen = pattern.replace("${now:%Y-%m-%d}", "2026-01-01").replace("${now:%H-%M-%S}", "12-00-00")
    env = {**os.environ, "RECARENA_ROOT": str(tmp_path), "WANDB_MODE": "offline", "OPENBLAS_NUM_THREADS": "1"}
    env["WANDB_API_KEY"] = SECRET  # must not reach any config, log or report of the sweeps
    command = [sys.executable, "-m", "recarena.train", "-m", "model=pop", *TINY, f"hydra.sweep.dir={frozen}"]
    sweeps = {
        "a": subprocess.Popen([*command, "eval.ks=[5,10,500],[5,10]"], cwd=tmp_path, env=env, stderr=subprocess.PIPE),
        "b": subprocess.Popen([*command, "eval.ks=[5,10]"], cwd=tmp_path, env=env, stderr=subprocess.PIPE),
    }
    errors = {name: proc.communicate(timeout=300)[1].decode() for name, proc in sweeps.items()}
    assert sweeps["a"].returncode != 0 and sweeps["b"].returncode == 0, errors["b"][-3000:]
    day = tmp_path / "outputs" / "multirun" / "2026-01-01"
    assert sorted(p.name for p in day.iterdir()) == sorted(f"12-00-00-{p.pid}" for p in sweeps.values())
    a, b = (day / f"12-00-00-{sweeps[name].pid}" for name in ("a", "b"))
    assert (a / "1-pop" / "metrics.json").is_file() and not (a / "0-pop" / "metrics.json").exists()
    line = next(s for s in (a / "leaderboard.md").read_text().splitlines() if s.startswith("| 0-pop"))
    assert "ConfigError: eval.ks contains 500: larger than the catalogue (40 items)" in line
    assert (b / "0-pop" / "metrics.json").is_file() and (b / "leaderboard.md").is_file()
    written = [p for p in day.rglob("*") if p.is_file()]
    assert {"multirun.yaml", "config.yaml", "train.log", "leaderboard.md"} <= {p.name for p in written}
    assert not [p for p in written if SECRET.encode() in p.read_bytes()]


# -- W&B with credentials but no network ----------------------------------------------------------------------
def test_wandb_with_credentials_but_unreachable_server_falls_back_to_offline(run_train, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # a closed port: connection refused at once
    monkeypatch.delenv("WANDB_MODE")
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    with caplog.at_level(logging.WARNING):
        _, out = run_train("model=pop", *TINY[:-1], "logger=wandb", "logger.wandb.mode=auto")
    assert "wandb: credentials found but the server 127.0.0.1 is unreachable; logging offline" in caplog.text
    assert list((out / "wandb").glob("offline-run-*")), "no offline W&B run written"
    assert (out / "metrics.json").is_file() and (out / "recommendations.parquet").is_file()
