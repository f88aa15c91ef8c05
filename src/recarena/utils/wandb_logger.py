"""Weights & Biases logger: online when the user is logged in and W&B is reachable, else offline with a `wandb sync`
hint."""

from __future__ import annotations

import logging
import netrc
import os
import socket
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def wandb_reachable(timeout: float = 3.0) -> bool:
    """True when a TCP connection to the W&B server (or to the HTTPS proxy, if one is set) opens in `timeout` s."""
    server = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    proxy = urllib.request.getproxies().get(server.scheme or "https")
    if proxy and urllib.request.proxy_bypass(server.hostname or ""):  # the host is in no_proxy
        proxy = None
    target = urlsplit(proxy) if proxy else server
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        socket.create_connection((target.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def resolve_mode(mode: str) -> str:
    """`auto` → online with credentials and a reachable server (and WANDB_MODE not offline/disabled), else offline."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("offline", "disabled", "dryrun") or not has_wandb_credentials():
        return "offline"
    if not wandb_reachable():
        server = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))  # logged without user:password
        log.warning("wandb: credentials found but the server %s is unreachable; logging offline", server.hostname)
        return "offline"
    return "online"


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
            "wandb: offline run (no credentials, no server or WANDB_MODE=offline); upload later with: wandb sync %s",
            Path(save_dir) / "wandb" / "offline-run-*",
        )
    return logger


def finish_wandb(loggers: list) -> None:
    """End the W&B run of these loggers (if any), so the next multirun job starts its own."""
    from pytorch_lightning.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()
