"""Finished runs as a library: restore one (its config, data, model and checkpoint), build the evaluation Trainer,
run a stage on all or some users and collect the lists. The entry points (`eval`, `recommend`, `serve`, `update`,
`replay`) are command lines over this module.

A run is restored from its own `.hydra/config.yaml` (the config as composed, not today's conf/ files):
- non-gradient (fit-once) models are fitted again from that config: fitting is deterministic given the config and
  seed and takes seconds, so nothing is pickled and no model file is needed;
- gradient models load the run's best Lightning checkpoint under `<run>/checkpoints/` (the ModelCheckpoint's
  best_model_path; else the only one; else last.ckpt) with `weights_only=True`.
A folder whose config or checkpoint cannot be read is a RunError naming the file."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader

from recarena.data.interactions import Interactions, Stage
from recarena.data.views import EvalUsers
from recarena.errors import RunError
from recarena.evaluation.callback import RecEvalCallback
from recarena.models.fit_once import FitOnceModule
from recarena.models.mmr import attach_reranker
from recarena.utils import resolvers  # noqa: F401  (registers ${pid:})
from recarena.utils.instantiate import build

RUN_OWN = "run"  # `rerank` argument: the run's own re-ranking config
Rerank = Mapping[str, Any] | None | Literal["run"]


@dataclass
class RestoredRun:
    """A finished run rebuilt: its resolved config, set-up data module, model and the checkpoint to load (if any)."""

    run_dir: Path
    cfg: DictConfig
    datamodule: Any
    model: Any
    checkpoint: Path | None


@contextmanager
def _hydra_config(node: DictConfig) -> Iterator[None]:
    """Let `${hydra:...}` interpolations read `node` (a run's saved hydra config) while resolving its config."""
    setup_globals()  # the `hydra` resolver, also when no Hydra app is running (library use)
    instance = HydraConfig.instance()
    previous = instance.cfg
    instance.cfg = OmegaConf.create({"hydra": node})
    try:
        yield
    finally:
        instance.cfg = previous


def run_config(run_dir: str | Path, data_dir: str | None = None, model: dict | None = None) -> DictConfig:
    """The run's `.hydra/config.yaml`, resolved with its own hydra settings (output_dir = `run_dir`).

    `data_dir` replaces `paths.data_dir` (where the data cache is, when not where the run's config says); `model`
    is merged into the model config (decoding settings such as `constrained` or `num_beams`)."""
    run_dir = Path(run_dir).resolve()
    path = run_dir / ".hydra" / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no .hydra/config.yaml, so not a finished recarena run folder")
    cfg = _load_yaml(path)
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    node = (_load_yaml(hydra_yaml).get("hydra") if hydra_yaml.exists() else None) or OmegaConf.create({})
    with open_dict(node):
        node.runtime = node.get("runtime") or {}
        node.runtime.output_dir = str(run_dir)
    if data_dir is not None:
        with open_dict(cfg):
            cfg.paths.data_dir = str(data_dir)
    unknown = sorted(set(model or {}) - set(cfg.model))
    if unknown:
        raise KeyError(f"model.{unknown[0]}: the run's model config has no such key (it has {sorted(cfg.model)})")
    if model:
        cfg.model = OmegaConf.merge(cfg.model, model)
    with _hydra_config(node):
        return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The best checkpoint of a gradient run: ModelCheckpoint's best_model_path (as recorded in last.ckpt), else the
    only non-last checkpoint, else last.ckpt; None without a checkpoints/ folder."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    last = folder / "last.ckpt"
    if last.exists():
        state = read_checkpoint(last)
        for key, value in (state.get("callbacks") or {}).items():
            best = value.get("best_model_path") if key.startswith("ModelCheckpoint") else None
            if best and (folder / Path(best).name).exists():
                return folder / Path(best).name
    others = sorted(p for p in folder.glob("*.ckpt") if p.name != "last.ckpt")
    if len(others) == 1:
        return others[0]
    return last if last.exists() else None


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's saved state (weights only, memory-mapped); an unreadable file is a RunError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a damaged file
        raise RunError(f"{path}: unreadable checkpoint ({type(error).__name__}: {_first_line(error)})") from error


def _load_yaml(path: Path) -> DictConfig:
    """A saved run config; an unparseable one is a RunError naming the file."""
    try:
        loaded = OmegaConf.load(path)
    except Exception as error:  # yaml's scanner/parser errors, OmegaConf's grammar errors, undecodable bytes
        raise RunError(f"{path}: unreadable run config ({type(error).__name__}: {_first_line(error)})") from error
    if not isinstance(loaded, DictConfig):
        raise RunError(f"{path}: unreadable run config (a YAML mapping was expected)")
    return loaded


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]


def restore_run(
    run_dir: str | Path, data_dir: str | None = None, model: dict | None = None, rerank: Rerank = RUN_OWN
) -> RestoredRun:
    """Rebuild the run's data (set up) and model: re-fit a fit-once model, or find the checkpoint to load.

    `rerank` is the re-ranking stage: "run" (the run's own `rerank` config), None (none) or a `rerank` config
    (`_target_: recarena.models.mmr.Reranker` and its arguments) used instead of the run's."""
    run_dir = Path(run_dir).resolve()
    cfg = run_config(run_dir, data_dir, model)
    if not (isinstance(rerank, str) and rerank == RUN_OWN):
        cfg.rerank = None if rerank is None else OmegaConf.create(dict(rerank))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg.data, "data")
    model = build(cfg.model, "model")
    datamodule.prepare_data()
    datamodule.setup("test")
    attach_reranker(model, cfg, datamodule.data)
    checkpoint = None
    if isinstance(model, FitOnceModule):
        model.refit(datamodule.data)
    else:
        checkpoint = find_checkpoint(run_dir)
        if checkpoint is None and model.trains:
            raise FileNotFoundError(f"{run_dir}: a gradient-trained model but no checkpoint under checkpoints/")
        if checkpoint is not None:
            read_checkpoint(checkpoint)  # a damaged file is named here, not deep inside a Trainer
    return RestoredRun(run_dir, cfg, datamodule, model, checkpoint)


def eval_trainer(cfg: DictConfig, callbacks: list, root_dir: str | Path, accelerator: str | None = None) -> pl.Trainer:
    """The run's Trainer settings (accelerator, precision) on one device, with no logger, checkpoints or bars, and
    every evaluated user (a run's own limit_val_batches/limit_test_batches are training-time choices)."""
    overrides: dict[str, Any] = {
        "limit_val_batches": 1.0,
        "limit_test_batches": 1.0,
        "callbacks": callbacks,
        "logger": False,
        "default_root_dir": str(root_dir),
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
    }
    if accelerator:
        overrides["accelerator"] = accelerator
    return build(cfg.trainer, "trainer", **overrides)


def evaluator_for(cfg: DictConfig, output_dir: str | Path) -> RecEvalCallback:
    """The run's own RecEvalCallback config (same ks and cold threshold), writing into `output_dir`."""
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None and str(node.get("_target_", "")).endswith("RecEvalCallback"):
            return build(node, f"callbacks.{name}", output_dir=str(output_dir))
    return RecEvalCallback(cfg.eval.ks, cfg.eval.cold_threshold, str(output_dir), cfg.eval.get("head_share", 0.2))


def evaluate(
    run_dir: str | Path,
    stages: Sequence[str] = ("test",),
    data_dir: str | None = None,
    output_dir: str | None = None,
    accelerator: str | None = None,
    model: dict | None = None,
    rerank: Rerank = RUN_OWN,
) -> dict[str, dict[str, float]]:
    """Re-evaluate a finished run on `stages` ("val", "test"); files go to `output_dir` (default: a temp folder,
    never the run folder). `model` changes decoding settings of the restored model (see `run_config`); `rerank`
    replaces the run's re-ranking stage (see `restore_run`)."""
    unknown = set(stages) - {"val", "test"}
    if unknown:
        raise ValueError(f"stages={list(stages)}: expected val and/or test")
    run = restore_run(run_dir, data_dir, model, rerank)
    with tempfile.TemporaryDirectory(prefix="recarena-eval-") as tmp:
        out = Path(output_dir) if output_dir else Path(tmp)
        evaluator = evaluator_for(run.cfg, out)
        trainer = eval_trainer(run.cfg, [evaluator], out, accelerator)
        for stage in ("val", "test"):
            if stage in stages:
                run_stage(trainer, stage, run, run.datamodule)
    return evaluator.results


def run_stage(trainer: pl.Trainer, stage: str, run: RestoredRun, datamodule: Any) -> None:
    """Validate or test the restored model (loading its checkpoint, weights only) on `datamodule`'s users."""
    method = trainer.validate if stage == "val" else trainer.test
    ckpt = str(run.checkpoint) if run.checkpoint else None
    with warnings.catch_warnings():  # the training callbacks are deliberately not rebuilt for evaluation
        warnings.filterwarnings("ignore", message=r".*callbacks used to create the checkpoint need to be provided.*")
        method(run.model, datamodule=datamodule, ckpt_path=ckpt, verbose=False, weights_only=True)



class UserSubset(pl.LightningDataModule):
    """The run's data module, serving only `users` to the val/test loops (one batch, the stage's known items)."""

    def __init__(self, inner: pl.LightningDataModule, users: np.ndarray) -> None:
        super().__init__()
        self.inner, self.users = inner, np.asarray(users, dtype=np.int64)
        self.data: Interactions | None = getattr(inner, "data", None)

    def setup(self, stage: str | None = None) -> None:
        self.inner.setup(stage)
        self.data = self.inner.data

    def _loader(self, stage: Stage) -> DataLoader:
        users = EvalUsers(self.data, stage)
        users.users = self.users  # any known user, evaluated in this stage or not
        return DataLoader(users, batch_size=len(self.users), shuffle=False, collate_fn=users.collate)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class Collect(pl.Callback):
    """Keeps the TopK every val/test step returns."""

    def __init__(self) -> None:
        self.outputs: list = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.outputs.append(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.outputs.append(outputs)


