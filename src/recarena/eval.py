"""`python -m recarena.eval run_dir=<run>`: restore a finished run's data and model, re-evaluate it, print the metrics.

A run is restored from its own `.hydra/config.yaml` (the config as composed, not today's conf/ files):
- non-gradient (fit-once) models are fitted again from that config: fitting is deterministic given the config and
  seed and takes seconds, so nothing is pickled and no model file is needed;
- gradient models load the run's best Lightning checkpoint under `<run>/checkpoints/` (the ModelCheckpoint's
  best_model_path; else the only one; else last.ckpt) with `weights_only=True`.
Evaluation goes through the same RecEvalCallback as training, so the numbers equal the run's metrics.json.
`rerank=mmr rerank.lam=0.3` (or `rerank=none`) re-evaluates with another re-ranking stage than the run's own
(`recarena.models.rerank`), so one trained run is measured at several lambdas without retraining."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from recarena.evaluation.callback import RecEvalCallback
from recarena.models.fit_once import FitOnceModule
from recarena.models.rerank import attach_reranker
from recarena.utils import resolvers  # noqa: F401  (registers ${pid:})
from recarena.utils.compose import CONFIG_DIR
from recarena.utils.instantiate import build

log = logging.getLogger(__name__)

RUN_OWN = "run"  # `rerank` argument: the run's own re-ranking config
Rerank = Mapping[str, Any] | None | Literal["run"]

TABLE_METRICS = ("recall", "precision", "ndcg", "hit", "map", "mrr", "coverage", "novelty", "arp", "gini", "ild")


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
    cfg = OmegaConf.load(path)
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    node = OmegaConf.load(hydra_yaml).hydra if hydra_yaml.exists() else OmegaConf.create({})
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
        state = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
        for key, value in (state.get("callbacks") or {}).items():
            best = value.get("best_model_path") if key.startswith("ModelCheckpoint") else None
            if best and (folder / Path(best).name).exists():
                return folder / Path(best).name
    others = sorted(p for p in folder.glob("*.ckpt") if p.name != "last.ckpt")
    if len(others) == 1:
        return others[0]
    return last if last.exists() else None


def restore_run(
    run_dir: str | Path, data_dir: str | None = None, model: dict | None = None, rerank: Rerank = RUN_OWN
) -> RestoredRun:
    """Rebuild the run's data (set up) and model: re-fit a fit-once model, or find the checkpoint to load.

    `rerank` is the re-ranking stage: "run" (the run's own `rerank` config), None (none) or a `rerank` config
    (`_target_: recarena.models.rerank.Reranker` and its arguments) used instead of the run's."""
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
        model.recommender.fit(datamodule.data)
        model.fitted = True
    else:
        checkpoint = find_checkpoint(run_dir)
        if checkpoint is None and model.trains:
            raise FileNotFoundError(f"{run_dir}: a gradient-trained model but no checkpoint under checkpoints/")
    return RestoredRun(run_dir, cfg, datamodule, model, checkpoint)


def eval_trainer(cfg: DictConfig, callbacks: list, root_dir: str | Path, accelerator: str | None = None) -> pl.Trainer:
    """The run's Trainer settings (accelerator, precision) on one device, with no logger, checkpoints or bars."""
    overrides: dict[str, Any] = {
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


def format_metrics(results: dict[str, float], ks: Sequence[int], title: str) -> str:
    """A metric × K table of the main metrics, plus invalid_rate and the user counts when present."""
    ks = sorted(ks)
    lines = [f"{title:<14}" + "".join(f"{'@' + str(k):>10}" for k in ks)]
    for name in TABLE_METRICS:
        if any(f"{name}@{k}" in results for k in ks):
            cells = "".join(f"{results.get(f'{name}@{k}', math.nan):>10.4f}" for k in ks)
            lines.append(f"{name:<14}{cells}")
    for extra in ("invalid_rate", "users/cold", "users/warm"):
        if extra in results:
            lines.append(f"{extra:<14}{results[extra]:>10.4g}")
    return "\n".join(lines)


def compare_with_run(run_dir: str | Path, stage: str, results: dict[str, float]) -> tuple[int, float] | None:
    """(metrics compared, largest |difference|) against the run's metrics.json, or None without that file/stage."""
    path = Path(run_dir) / "metrics.json"
    saved = json.loads(path.read_text()).get(stage) if path.exists() else None
    if not saved:
        return None
    shared = [k for k in saved if k in results]
    diffs = [abs(float(saved[k]) - float(results[k])) for k in shared]
    return len(shared), max(diffs, default=0.0)


def quiet_lightning() -> None:
    """Warnings only, and not the expected ones: Lightning's banners and progress bars would drown the result."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("pytorch_lightning", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # save_pretrained at a generative model's test end
    if "transformers" in sys.modules:  # already imported (text encoders): its bar setting is read at import
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=r".*isinstance.treespec, LeafSpec.*")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    """Print the re-evaluated metrics and whether they equal the run's metrics.json."""
    quiet_lightning()
    stages = [cfg.stages] if isinstance(cfg.stages, str) else list(cfg.stages)
    model = OmegaConf.to_container(cfg.model) if cfg.get("model") else None
    rerank: Rerank = RUN_OWN  # no `rerank=` given: the run's own
    if "rerank" in cfg:
        rerank = None if cfg.rerank is None else OmegaConf.to_container(cfg.rerank, resolve=True)
    results = evaluate(cfg.run_dir, stages, cfg.data_dir, cfg.output_dir, cfg.accelerator, model, rerank)
    if cfg.format == "json":
        print(json.dumps(results, indent=2, sort_keys=True))
    mismatch = False
    for stage in stages:
        summary = results.get(stage, {})
        if cfg.format != "json":
            users = int(summary.get("users/cold", 0) + summary.get("users/warm", 0))
            print(format_metrics(summary, list(cfg_ks(summary)), f"{stage} ({users} users)"))
        compared = compare_with_run(cfg.run_dir, stage, summary)
        if compared is None:
            print(f"{stage}: the run has no saved {stage} metrics to compare with", file=sys.stderr)
            continue
        count, worst = compared
        same = worst <= cfg.tolerance
        mismatch |= not same
        verdict = "equal" if same else "DIFFER from"
        stream = sys.stderr if cfg.format == "json" else sys.stdout
        print(f"{stage}: all {count} metrics {verdict} the run's metrics.json (max |Δ| = {worst:.3g})", file=stream)
        if not same and rerank != RUN_OWN:
            print(f"{stage}: (expected: re-ranked by the rerank= given here, not the run's own)", file=stream)
    if mismatch and cfg.strict:
        sys.exit(1)


def cfg_ks(results: dict[str, float]) -> list[int]:
    """The cut-offs present in a results dict (from its recall@K keys)."""
    return sorted({int(k.split("@")[1]) for k in results if k.startswith("recall@") and "/" not in k})


if __name__ == "__main__":
    main()
