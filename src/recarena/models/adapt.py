"""Updating a model with new interactions: fit-once families refit on the new data; gradient families continue
training from their weights for a configured number of optimiser steps on the sequences of the users concerned.

Shared by `recarena.update` (feedback → a new run folder) and the replay experiment (updates between windows)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytorch_lightning as pl_lightning
import torch
from omegaconf import DictConfig

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.models.fit_once import FitOnceModule
from recarena.utils.instantiate import build


def check_update(steps: int, lr_scale: float, prefix: str = "") -> None:
    """A named ConfigError for a negative step count or a non-positive learning-rate share (keys `<prefix>steps`,
    `<prefix>lr_scale`), before any data is read."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"{prefix}steps={steps!r}: the fine-tune's optimiser steps, an integer >= 0")
    if isinstance(lr_scale, bool) or not isinstance(lr_scale, int | float) or not float(lr_scale) > 0:
        raise ConfigError(f"{prefix}lr_scale={lr_scale!r}: the fine-tune's share of model.lr, a number > 0")


def users_subset(data: Interactions, users: np.ndarray) -> Interactions:
    """The same data (ids, indices, features) holding only `users`' interactions: what a fine-tune trains on."""
    frame = data.frame.filter(pl.col("u").is_in(np.asarray(users, dtype=np.int64).tolist()))
    return Interactions.build(
        frame, data.user_ids, data.item_ids, data.items, data.users, data.counts, data.name, data.trust
    )


def load_weights(model, data: Interactions, checkpoint: str | Path) -> None:
    """Build a gradient model for `data` and load a Lightning checkpoint's weights (weights only)."""
    if not model.built:
        model.build(data)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["state_dict"])


def train_steps(
    model,
    cfg: DictConfig,
    data: Interactions,
    steps: int | None = None,
    accelerator: str | None = None,
    lr_scale: float = 1.0,
) -> pl_lightning.Trainer:
    """Train a gradient model on `data`: `steps` optimiser steps, or the run's trainer.max_epochs when None (no
    validation, no checkpoints: the caller evaluates and saves), at `lr_scale` × the model's learning rate (its
    schedule then spans the steps). Returns the Trainer (for save_checkpoint)."""
    if not model.built:
        model.build(data)
    limits = {"max_steps": int(steps), "max_epochs": -1} if steps is not None else {}
    overrides = {
        "callbacks": [], "logger": False, "devices": 1, "num_nodes": 1, "strategy": "auto",
        "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False,
        "limit_val_batches": 0, "num_sanity_val_steps": 0, "default_root_dir": tempfile.gettempdir(), **limits,
    }  # fmt: skip
    if accelerator:
        overrides["accelerator"] = accelerator
    trainer = build(cfg.trainer, "trainer", **overrides)
    if steps != 0:
        datamodule = build(cfg.data, "data")  # the run's own data module (its loaders), holding `data`
        datamodule.data = data
        base_lr = model.hparams.lr
        model.hparams.lr = base_lr * float(lr_scale)
        try:
            trainer.fit(model, datamodule=datamodule)
        finally:
            model.hparams.lr = base_lr
    model.eval()
    return trainer


def update_model(
    model,
    cfg: DictConfig,
    data: Interactions,
    users: np.ndarray,
    steps: int,
    accelerator: str | None = None,
    lr_scale: float = 1.0,
) -> float:
    """Bring `model` up to `data` (which holds the new events); returns the seconds it took. Fit-once: refit on
    the whole new train part. Gradient: `steps` steps at `lr_scale` × its learning rate on the whole sequences of
    `users` (those with new events)."""
    start = time.perf_counter()
    if isinstance(model, FitOnceModule):
        model.refit(data)
    elif len(users) and int(steps) > 0:
        train_steps(model, cfg, users_subset(data, users), int(steps), accelerator, lr_scale)
    return time.perf_counter() - start
