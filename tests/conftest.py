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
        return train(cfg), out

    return run
