"""Weights & Biases logger: online when the user is logged in, otherwise offline with a `wandb sync` hint."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)


def has_wandb_credentials() -> bool:
    """True when an API key is in the environment or in ~/.netrc for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """`auto` → online with credentials (and WANDB_MODE not offline/disabled), else offline."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("offline", "disabled", "dryrun"):
        return "offline"
    return "online" if has_wandb_credentials() else "offline"


def sweep_group() -> str | None:
    """One W&B group per Hydra multirun: the sweep folder's name (None for a single run)."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if str(hydra_cfg.mode) != "RunMode.MULTIRUN":
        return None
    return Path(hydra_cfg.sweep.dir).name


def make_wandb_logger(
    save_dir: str,
    project: str = "recarena",
    mode: str = "auto",
    name: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    tags: list[str] | None = None,
    entity: str | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """Build Lightning's WandbLogger; an offline run prints how to upload it later."""
    resolved = resolve_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        project=project,
        save_dir=save_dir,
        offline=resolved == "offline",
        name=name,
        group=group or sweep_group(),
        job_type=job_type,
        tags=[str(t) for t in tags or [] if t is not None],
        entity=entity,
        **kwargs,
    )
    if resolved == "offline":
        log.info(
            "wandb: offline run (no credentials or WANDB_MODE=offline); upload later with: wandb sync %s",
            Path(save_dir) / "wandb" / "offline-run-*",
        )
    return logger
