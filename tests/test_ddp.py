"""Two CPU processes (trainer=ddp, gloo) give one process's metrics: the CLI run both ways, metrics.json compared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from recarena.evaluation.callback import RecEvalCallback
from recarena.utils.compose import CONFIG_DIR
from recarena.utils.instantiate import build

ROOT = Path(__file__).resolve().parents[1]
# 301 users: an odd count, so Lightning's DistributedSampler pads rank 1 with a duplicate user the callback must drop
DATA = ["data=synthetic", "data.n_users=301", "logger=none"]


def _train_cli(run_dir: Path, *overrides: str) -> dict:
    """`python -m recarena.train <overrides>` in a subprocess writing into `run_dir`; returns its metrics.json."""
    env = {**os.environ, "WANDB_MODE": "offline", "RECARENA_ROOT": str(run_dir.parent), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "recarena.train", *overrides, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((run_dir / "metrics.json").read_text())


def _compose(overrides: list[str], output_dir: Path):
    """conf/train.yaml composed as the CLI would (like conftest's run_train), writing into `output_dir`."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_itemcf_metrics_are_identical_on_one_and_two_processes(tmp_path):
    one = _train_cli(tmp_path / "one", "model=itemcf", *DATA)
    two = _train_cli(tmp_path / "two", "model=itemcf", *DATA, "trainer=ddp")
    assert (tmp_path / "two" / "train_ddp_process_1.log").exists()  # rank 1 really ran (Hydra job log of the child)
    for stage in ("val", "test"):
        assert one[stage]["users/cold"] + one[stage]["users/warm"] == 301
        assert two[stage] == one[stage]


@pytest.mark.filterwarnings("ignore:.*callbacks used to create the checkpoint.*")
def test_gpt_dgrs_trains_under_ddp_and_its_weights_evaluate_the_same_in_one_process(tmp_path):
    """Training differs with the world size; evaluating the same weights must not. One user per evaluation batch on
    both sides, so a user's forward pass has the same shape whatever else shares its batch (bit-identical logits)."""
    overrides = ["model=gpt_dgrs", *DATA, "eval.batch_size=1"]
    run = tmp_path / "ddp"
    saved = _train_cli(run, *overrides, "trainer=ddp", "trainer.max_epochs=1", "trainer.enable_progress_bar=false")
    (checkpoint,) = [p for p in (run / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt"]

    out = tmp_path / "one"
    out.mkdir()
    cfg = _compose(overrides, out)
    evaluator = RecEvalCallback(cfg.eval.ks, cfg.eval.cold_threshold, str(out))
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, callbacks=[evaluator], default_root_dir=str(out),
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    model, datamodule = build(cfg.model, "model"), build(cfg.data, "data")
    trainer.validate(model, datamodule=datamodule, ckpt_path=str(checkpoint), verbose=False)
    trainer.test(model, datamodule=datamodule, ckpt_path=str(checkpoint), verbose=False)
    for stage in ("val", "test"):
        assert evaluator.results[stage]["users/cold"] + evaluator.results[stage]["users/warm"] == 301
        assert evaluator.results[stage] == saved[stage]
