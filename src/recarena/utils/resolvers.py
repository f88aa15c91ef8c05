"""OmegaConf resolvers the configs use; registered once on import."""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def register() -> None:
    """`${pid:}` makes run/sweep folders of two processes started in the same second differ."""
    if not OmegaConf.has_resolver("pid"):
        OmegaConf.register_new_resolver("pid", lambda: str(os.getpid()), use_cache=True)


register()
