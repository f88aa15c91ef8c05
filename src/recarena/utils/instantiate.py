"""The one way configs become objects: Hydra's instantiate, with errors that name the config key."""

from __future__ import annotations

from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from recarena.errors import RecArenaError


def build(cfg: DictConfig | None, key: str, **kwargs: Any) -> Any:
    """Instantiate the `_target_` config found at `key`; None stays None."""
    if cfg is None:
        return None
    try:
        return hydra.utils.instantiate(cfg, _convert_="all", **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, RecArenaError):
            raise cause from None
        raise RecArenaError(f"{key}: could not build {cfg.get('_target_', '?')}: {error}") from error


def build_all(cfg: DictConfig | None, key: str) -> list[Any]:
    """Instantiate every `_target_` entry of a mapping such as `callbacks` (entries set to null are skipped)."""
    if cfg is None:
        return []
    return [build(value, f"{key}.{name}") for name, value in cfg.items() if value is not None]
