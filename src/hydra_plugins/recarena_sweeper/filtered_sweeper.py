"""`hydra/sweeper=filtered`: Hydra's basic sweeper (the Cartesian product of the swept values) less the combinations
an `exclude` rule names, so one multirun can cover every family × dataset × split that makes sense — e.g. no time
split on data without timestamps, and the trust family only on data with a trust graph.

    hydra:
      sweeper:
        exclude:
          - {data: [bookcrossing, filmtrust], split: [temporal_ratio, leave_one_out]}

A job is left out when it matches every key of one rule (a key matches when the job's value is among the listed
ones). Keys are override keys as written on the command line (`data`, `split`, `model`, `model.lr`...)."""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.types import Override

log = logging.getLogger(__name__)


@dataclass
class FilteredSweeperConf:
    """The sweeper's config node (typing.Optional: OmegaConf reads these annotations at run time; Hydra loads
    plugin modules without registering them, so postponed annotations cannot be resolved)."""

    _target_: str = "hydra_plugins.recarena_sweeper.filtered_sweeper.FilteredSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[dict[str, str]] = None  # noqa: UP045
    exclude: list[Any] = field(default_factory=list)


ConfigStore.instance().store(group="hydra/sweeper", name="filtered", node=FilteredSweeperConf, provider="recarena")


def rule_values(rule: Mapping[str, Any]) -> dict[str, set[str]]:
    """A rule's keys with their values as a set of strings (a single value or a list of them)."""
    out = {}
    for key, values in rule.items():
        listed = values if isinstance(values, Sequence) and not isinstance(values, str) else [values]
        out[str(key)] = {str(v) for v in listed}
    return out


def excluded(job: Sequence[str], rules: Sequence[Mapping[str, set[str]]]) -> bool:
    """Whether a job (its overrides `key=value`) matches every key of one of `rules`."""
    values = {}
    for override in job:
        key, _, value = override.partition("=")
        values[key.lstrip("+~")] = value
    return any(all(values.get(key) in allowed for key, allowed in rule.items()) for rule in rules)


class FilteredSweeper(BasicSweeper):
    """BasicSweeper whose job list drops the combinations matched by `exclude` (logged with their count)."""

    def __init__(
        self, max_batch_size: int | None = None, params: dict[str, str] | None = None, exclude: Any = ()
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        if not isinstance(exclude, Sequence) or not all(isinstance(r, Mapping) and r for r in exclude):
            raise ValueError(
                f"hydra.sweeper.exclude={exclude!r}: expected a list of non-empty mappings like "
                "{data: [filmtrust], split: [leave_one_out]}"
            )
        self.rules = [rule_values(rule) for rule in exclude]

    def split_arguments(self, overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
        """The basic sweeper's batches, with excluded jobs removed (job numbers stay contiguous)."""
        jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        kept = [job for job in jobs if not excluded(job, self.rules)]
        if len(kept) < len(jobs):
            log.info("hydra.sweeper.exclude: %d of %d combinations left out", len(jobs) - len(kept), len(jobs))
        if not kept:
            return []
        size = max_batch_size or len(kept)
        return [kept[i : i + size] for i in range(0, len(kept), size)]
