"""`python -m recarena.train model=itemcf data=ml100k`: fit one model, evaluate on val and test, log and write files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from recarena.errors import ConfigError
from recarena.evaluation.callback import RecEvalCallback, check_ks
from recarena.models.mmr import attach_reranker
from recarena.reporting.samples import log_recommendation_samples
from recarena.utils import resolvers  # noqa: F401  (registers ${pid:})
from recarena.utils.compose import CONFIG_DIR
from recarena.utils.instantiate import build, build_all
from recarena.utils.memory import reset_peak_rss
from recarena.utils.wandb_logger import finish_wandb

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Compose data, model, callbacks, logger and trainer from `cfg`; fit, then validate and test.

    Returns the evaluator's results ({"val": {...}, "test": {...}}); files land in the run folder. With a `replay`
    config (experiment=replay) the run is the replay evaluation of adaptation instead (`recarena.replay`)."""
    if cfg.get("replay"):
        from recarena.replay import replay

        replay(cfg)
        return {}
    check_config(cfg)  # cheap config errors before any data is read
    reset_peak_rss()  # this run's peak memory, not an earlier job's in the same launcher worker
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data, "data")
    if os.environ.get("LOCAL_RANK", "0") == "0":  # data errors before a model, logger or W&B run exists
        datamodule.prepare_data()  # (DDP workers load theirs inside fit, after rank 0's download)
        datamodule.setup("fit")
        fit_default_ks(cfg, datamodule.data.n_items)
    model = build(cfg.model, "model")
    attach_reranker(model, cfg, datamodule.data)  # DDP workers (no data yet) fit it at their first eval step
    callbacks = build_all(cfg.get("callbacks"), "callbacks")
    evaluator = next((c for c in callbacks if isinstance(c, RecEvalCallback)), None)
    if evaluator is None:
        raise ValueError("callbacks: no RecEvalCallback configured (add callbacks/rec_eval)")
    loggers = build_all(cfg.get("logger"), "logger")
    trainer: pl.Trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        if model.trains:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        best = _best_checkpoint(trainer) if model.trains else None
        if best or not model.trains:  # a zero-shot model is validated as it is
            log.info("evaluating %s", f"the best checkpoint {best}" if best else "the model as it is (zero-shot)")
            trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        log_recommendation_samples(loggers, model, datamodule.data, evaluator)  # W&B table; no-op without W&B
    finally:
        finish_wandb(loggers)
    return evaluator.results


def check_config(cfg: DictConfig) -> None:
    """Reject bad evaluation and resume settings before any data is read or model built."""
    ks = check_ks(cfg.eval.ks)
    metric = str(cfg.get("optimized_metric") or "")
    if metric:
        stage, _, name = metric.partition("/")
        cut = name.rpartition("@")[2].split("/")[0]
        if stage != "val" or not cut.isdigit():
            raise ConfigError(f"optimized_metric={metric!r}: expected a validation metric such as val/ndcg@10")
        if int(cut) not in ks:
            raise ConfigError(f"optimized_metric={metric!r}: K={cut} is not in eval.ks={ks}")
    _check_resume(cfg)


def fit_default_ks(cfg: DictConfig, n_items: int) -> None:
    """Drop default cut-offs above the catalogue (eval.ks=[5,10,20] on a 10-item dataset) with a warning; a K the
    user wrote on the command line stays, and the evaluator names it as an error."""
    ks = check_ks(cfg.eval.ks)
    kept = [k for k in ks if k <= n_items]
    if kept == ks or _overridden("eval.ks"):
        return
    kept = kept or [n_items]
    log.warning("eval.ks=%s: the catalogue has %d items; evaluating at K=%s instead", ks, n_items, kept)
    with open_dict(cfg):
        cfg.eval.ks = kept


def _overridden(key: str) -> bool:
    """Whether the command line (Hydra's task overrides) set `key`."""
    if not HydraConfig.initialized():
        return False
    overrides = HydraConfig.get().overrides.task
    return any(o.lstrip("+~").split("=", 1)[0] == key for o in overrides)


def _check_resume(cfg: DictConfig) -> None:
    """`ckpt_path=last` needs a last checkpoint in this run's checkpoint folder (Lightning would silently start
    over): resuming means running again in the interrupted run's folder."""
    if cfg.get("ckpt_path") != "last":
        return
    checkpoint = (cfg.get("callbacks") or {}).get("model_checkpoint")
    folder = Path(checkpoint.dirpath) if checkpoint is not None and checkpoint.get("dirpath") else None
    if folder is None or not any(folder.glob("last*.ckpt")):
        where = f"no last.ckpt in {folder}" if folder else "no model_checkpoint callback, so no checkpoints"
        raise ConfigError(
            f"ckpt_path=last: {where}; resume in the interrupted run's folder (hydra.run.dir=<that folder>) "
            "or give its checkpoint: ckpt_path=<run folder>/checkpoints/last.ckpt"
        )


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    """Path of the monitored best checkpoint, when checkpointing is on and one was saved."""
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    return path or None


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the optimised metric for sweepers."""
    results = train(cfg)
    stage, _, name = str(cfg.get("optimized_metric") or "").partition("/")
    return results.get(stage, {}).get(name)


if __name__ == "__main__":
    main()
