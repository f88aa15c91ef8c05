"""Every hparams_search config composes, and each parameter it searches names a key of its model's config (a typo
would otherwise only fail, or silently add a key, when the sweep starts); one Optuna search runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from recarena.utils.compose import compose_train_config

ROOT = Path(__file__).resolve().parents[1]
SEARCHES = sorted(p.stem for p in (ROOT / "conf" / "hparams_search").glob("*.yaml"))


@pytest.mark.parametrize("search", SEARCHES)
def test_search_composes_and_every_parameter_is_a_config_key(search, tmp_path):
    cfg = compose_train_config([f"hparams_search={search}"], tmp_path, ROOT / "data")
    params = cfg.hydra.sweeper.params
    assert params and cfg.optimized_metric == "val/ndcg@10"
    model = search.rsplit("_", 1)[0]
    assert cfg.model._target_ == compose_train_config([f"model={model}"], tmp_path)["model"]["_target_"]
    for key in params:
        assert OmegaConf.select(cfg, key, default="absent") != "absent", f"{search}: {key} is not a config key"


def test_optuna_search_runs_trials_and_reports_the_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    env = {**os.environ, "RECARENA_ROOT": str(tmp_path), "OPENBLAS_NUM_THREADS": "1"}
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, "-m", "recarena.train", "hparams_search=itemcf_optuna", "data=synthetic", "logger=none",
         "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2", f"hydra.sweep.dir={sweep}",
         f"paths.data_dir={ROOT / 'data'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert len(jobs) == 3
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    values = [json.loads((job / "metrics.json").read_text())["val"]["ndcg@10"] for job in jobs]
    assert best.best_value == pytest.approx(max(values), abs=1e-7)
