"""Replay evaluation of adaptation (`python -m recarena.train experiment=replay model=<m>`).

The data's latest period is cut into `replay.windows` time windows (`recarena.data.windows`: history is always
strictly earlier than the window). The model is fitted on the history of the first window, then for each window it
recommends for the window's active users (history: everything before the window) and is scored on the window's
interactions by the same RecEvalCallback as every run. Two arms share that first fit: "static" never changes;
"updated" is brought up to each window's history before scoring it (`recarena.models.adapt.update_model`: a refit,
or `replay.steps` fine-tune steps on the users active in the previous window), and the update's seconds are its
cost. Results: `replay.csv` in the run folder and `replay/<arm>/<metric>` per window through the loggers."""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytorch_lightning as pl_lightning
from omegaconf import DictConfig

from recarena.data.windows import Window, replay_windows, window_data
from recarena.models.adapt import check_update, train_steps, update_model
from recarena.models.fit_once import FitOnceModule
from recarena.runs import eval_trainer, evaluator_for
from recarena.utils.instantiate import build, build_all
from recarena.utils.io import atomic_write, write_parquet
from recarena.utils.wandb_logger import finish_wandb

log = logging.getLogger(__name__)

ARMS = ("static", "updated")
METRICS = ("ndcg", "recall", "coverage")


def replay(cfg: DictConfig) -> pl.DataFrame:
    """Run both arms over every window; returns (and writes) one row per arm and window."""
    settings = cfg.replay
    check_update(settings.steps, settings.lr_scale, "replay.")
    pl_lightning.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data, "data")
    datamodule.prepare_data()
    datamodule.setup("fit")
    data = datamodule.data
    windows = replay_windows(data.frame, settings.windows, settings.period)
    model = build(cfg.model, "model")
    first = window_data(data, windows[0])
    start = time.perf_counter()
    if isinstance(model, FitOnceModule):
        model.refit(first)
    else:
        train_steps(model, cfg, first, None, cfg.trainer.get("accelerator"))
    fit_seconds = time.perf_counter() - start
    log.info("replay: %d windows from %s; first fit %.1f s", len(windows), [w.start for w in windows], fit_seconds)
    loggers = build_all(cfg.get("logger"), "logger")
    rows = []
    arms = {"static": model, "updated": copy.deepcopy(model)}
    for arm, arm_model in arms.items():
        for window in windows:
            part = window_data(data, window)
            cost = 0.0
            if arm == "updated" and window.index > 0:
                users = active_users(data, windows[window.index - 1])
                accelerator = cfg.trainer.get("accelerator")
                cost = update_model(arm_model, cfg, part, users, int(settings.steps), accelerator, settings.lr_scale)
            results = score_window(arm_model, cfg, datamodule, part)
            metrics = {k: results[k] for k in sorted(results) if k.split("@")[0] in METRICS}
            row = {"arm": arm, "window": window.index + 1, "start": window.start, "end": window.end,
                   "users": int(len(part.eval_users("test"))), "interactions": int(part.test.nnz),
                   "update_s": cost, **metrics}  # fmt: skip
            rows.append(row)
            log.info("replay %s window %d: %s", arm, window.index + 1, _short(row))
            for logger in loggers:
                logged = {f"replay/{arm}/{k}": v for k, v in row.items() if "@" in k or k == "update_s"}
                logger.log_metrics(logged, step=window.index + 1)
    table = pl.DataFrame(rows).with_columns(pl.lit(fit_seconds).alias("first_fit_s"))
    write_parquet(Path(cfg.paths.output_dir) / "replay.parquet", table)
    atomic_write(Path(cfg.paths.output_dir) / "replay.csv", lambda tmp: table.write_csv(tmp))
    finish_wandb(loggers)
    return table


def active_users(data, window: Window) -> np.ndarray:
    """Users with at least one interaction in `window`."""
    inside = data.frame.filter((pl.col("ts") >= window.start) & (pl.col("ts") < window.end))
    return np.unique(inside["u"].to_numpy())


def score_window(model, cfg: DictConfig, datamodule, part) -> dict[str, float]:
    """The window's test metrics through the run's RecEvalCallback (files into a temp folder, not kept)."""
    datamodule.data = part  # the shared data module's loaders, now over this window
    with tempfile.TemporaryDirectory(prefix="recarena-replay-") as tmp:
        evaluator = evaluator_for(cfg, tmp)
        trainer = eval_trainer(cfg, [evaluator], tmp)
        trainer.test(model, datamodule=datamodule, verbose=False)
    return evaluator.results["test"]


def _short(row: dict) -> str:
    return ", ".join(f"{k}={row[k]:.4f}" for k in ("ndcg@10", "recall@10", "update_s") if k in row)
