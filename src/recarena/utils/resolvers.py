"""OmegaConf resolvers the configs use; registered once on import."""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def monitor_k(ks) -> int:
    """The cut-off the monitored metric uses when the user names none: 10 when eval.ks has it, else its largest K."""
    values = [int(k) for k in (ks or [])]
    return 10 if 10 in values or not values else max(values)


def register() -> None:
    """`${pid:}` makes run/sweep folders of two processes started in the same second differ; `${monitor_k:...}` lets
    `optimized_metric` follow `eval.ks`."""
    if not OmegaConf.has_resolver("pid"):
        OmegaConf.register_new_resolver("pid", lambda: str(os.getpid()), use_cache=True)
    if not OmegaConf.has_resolver("monitor_k"):
        OmegaConf.register_new_resolver("monitor_k", monitor_k)


register()
