"""Shared test set-up: one BLAS/torch thread, W&B offline, and composed Hydra configs on small data."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"  # the project's git-ignored data cache: MovieLens is fetched once and reused


@pytest.fixture(autouse=True)
def _wandb_home(tmp_path_factory, monkeypatch):
    """Keep W&B's caches and settings out of the user's home and always offline."""
    home = tmp_path_factory.getbasetemp() / "wandb_home"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(home))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / "data"))


def compose_config(overrides: list[str], output_dir: Path):
    """Compose conf/train.yaml as `python -m recarena.train <overrides>` would, writing into `output_dir`."""
    from recarena.utils.compose import compose_train_config

    return compose_train_config(list(overrides), output_dir, DATA_DIR)


@pytest.fixture
def run_train(tmp_path):
    """Run recarena.train.train on composed overrides; returns (results, output_dir)."""
    from recarena.train import train

    counter = {"n": 0}

    def run(*overrides: str):
        counter["n"] += 1
        out = tmp_path / f"run{counter['n']}"
        out.mkdir()
        cfg = compose_config(list(overrides), out)
        save_run_config(cfg, out)
        return train(cfg), out

    return run


def save_run_config(cfg, out: Path) -> None:
    """The run's `.hydra/` files as the command line writes them (config.yaml without its hydra node, hydra.yaml
    with it, overrides.yaml), so an in-process run can be restored and reported like any run folder."""
    from omegaconf import OmegaConf, open_dict

    folder = out / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({"hydra": cfg.hydra}), folder / "hydra.yaml")
    plain = cfg.copy()
    with open_dict(plain):
        del plain["hydra"]
    OmegaConf.save(plain, folder / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(cfg.hydra.overrides.task)), folder / "overrides.yaml")


def saved_list_metrics(out: Path, stage: str, k: int) -> dict[str, float]:
    """recall@k and the share of empty list slots, derived from a run's saved lists (recommendations.parquet) and
    its data's held-out items without the evaluator: the values its reported recall@k and invalid_rate must equal
    (an empty slot is an output the model generated that named no unknown catalogue item)."""
    import numpy as np
    import polars as pl

    from recarena.runs import run_config
    from recarena.utils.instantiate import build

    datamodule = build(run_config(out).data, "data")
    datamodule.prepare_data()
    datamodule.setup("test")
    data = datamodule.data
    rows = pl.read_parquet(out / "recommendations.parquet").filter(pl.col("stage") == stage)
    listed: dict[int, set[int]] = {}
    for user, item in rows.filter(pl.col("rank") <= k).select("user", "item").iter_rows():
        listed.setdefault(data.user_index(user), set())
        if item is not None:
            listed[data.user_index(user)].add(data.item_index(item))
    truth = data.truth(stage)
    users = data.eval_users(stage)
    recall = [len(listed.get(int(u), set()) & set(truth[int(u)].indices.tolist())) / truth[int(u)].nnz for u in users]
    return {f"recall@{k}": float(np.mean(recall)), "empty_share": float(rows["item"].is_null().mean())}
