"""RecEvalCallback: the one place metrics are computed — collects top-K lists, scores them, logs, writes files."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytorch_lightning as pl_lightning
import torch

from recarena.data.interactions import Interactions, Stage
from recarena.errors import ConfigError
from recarena.evaluation import metrics as M
from recarena.topk import GENERATION_ERRORS, TopK
from recarena.utils.io import write_json, write_parquet
from recarena.utils.memory import run_memory

log = logging.getLogger(__name__)


def check_ks(ks: Sequence[int], n_items: int | None = None) -> list[int]:
    """Validate `eval.ks`: a non-empty list of positive ints, none above the catalogue size."""
    ks = list(ks) if ks is not None else []
    if not ks:
        raise ConfigError("eval.ks is empty: give at least one cut-off, e.g. eval.ks=[10]")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"eval.ks contains {k!r}: every K must be a positive integer")
        if n_items is not None and k > n_items:
            raise ConfigError(f"eval.ks contains {k}: larger than the catalogue ({n_items} items)")
    return sorted(set(ks))


class RecEvalCallback(pl_lightning.Callback):
    """Evaluates every family identically (docs/protocol.md §3-5).

    Gathers the top-K lists of all ranks at the end of a val/test epoch, computes §4 metrics over the
    evaluated users (with user slices cold/warm and item slices unseen/tail/head), logs them as
    `{stage}/{metric}@{K}` through `pl_module.log_dict` (so checkpointing, early stopping and sweeps see the same
    numbers) and writes metrics.json, recommendations.parquet and per_user_metrics.parquet atomically into
    `output_dir` (raw ids)."""

    def __init__(
        self,
        ks: Sequence[int] = (5, 10, 20),
        cold_threshold: int = 20,
        output_dir: str | None = None,
        head_share: float = 0.2,
    ) -> None:
        self.ks = check_ks(ks)
        self.cold_threshold = int(cold_threshold)
        if isinstance(head_share, bool) or not isinstance(head_share, int | float) or not 0 <= head_share <= 1:
            raise ConfigError(
                f"eval.head_share={head_share!r}: the share of the seen items that form the head slice, in [0, 1]"
            )
        self.head_share = float(head_share)
        self.output_dir = Path(output_dir) if output_dir else None
        self.results: dict[str, dict[str, float]] = {}
        self.timing: dict[str, float] = {}
        self._frames: dict[str, tuple[pl.DataFrame, pl.DataFrame]] = {}
        self._buffers: dict[str, list] = {}
        self._started: dict[str, float] = {}
        self._catalogue_of: tuple = ()  # (data, data.train, data.items) the cached catalogue was computed from
        self._catalogue_cache: tuple[np.ndarray, np.ndarray | None] | None = None

    # -- Lightning hooks -------------------------------------------------------------------------------
    def setup(self, trainer: pl_lightning.Trainer, pl_module: pl_lightning.LightningModule, stage: str) -> None:
        data = self._data(trainer)
        check_ks(self.ks, data.n_items)
        pl_module.eval_k = max(self.ks)

    def on_train_start(self, trainer, pl_module) -> None:
        self._started["train"] = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.timing["train_seconds"] = time.perf_counter() - self._started.get("train", time.perf_counter())

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start("val")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start("test")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._collect("val", outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._collect("test", outputs, batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._finish("val", trainer, pl_module)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._finish("test", trainer, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.write(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "validate":
            self.write(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self.write(trainer)

    # -- collection and scoring ------------------------------------------------------------------------
    def _start(self, stage: Stage) -> None:
        self._buffers[stage] = []
        self._started[stage] = time.perf_counter()

    def _collect(self, stage: Stage, outputs: TopK, batch: dict) -> None:
        if not isinstance(outputs, TopK):
            raise TypeError(f"{stage}_step must return a TopK, got {type(outputs).__name__}")
        users = batch["users"].detach().cpu()
        nan = float("nan")
        invalid = outputs.invalid if outputs.invalid is not None else torch.full((len(users),), nan)
        errors = outputs.errors if outputs.errors is not None else torch.full((len(users), len(GENERATION_ERRORS)), nan)
        row = (
            users,
            outputs.items.detach().cpu(),
            outputs.scores.detach().float().cpu(),
            invalid.detach().float().cpu(),
            errors.detach().float().cpu(),
        )
        self._buffers.setdefault(stage, []).append(row)

    def _finish(self, stage: Stage, trainer, pl_module) -> None:
        users, items, scores, invalid, errors = self._gathered(stage, pl_module)
        data = self._data(trainer)
        per_user, summary = self.compute(
            data, stage, users, items, None if np.isnan(invalid).all() else invalid,
            None if np.isnan(errors).all() else errors,
        )  # fmt: skip
        self.timing[f"{stage}_seconds"] = time.perf_counter() - self._started.get(stage, time.perf_counter())
        self.results[stage] = summary
        self._frames[stage] = (
            recommendation_rows(data, stage, users, items, scores),
            per_user_rows(data, stage, users, per_user),
        )
        logged = {f"{stage}/{name}": value for name, value in summary.items()}
        pl_module.log_dict(logged, on_step=False, on_epoch=True, batch_size=1, sync_dist=trainer.world_size > 1)
        if trainer.is_global_zero:
            shown = ", ".join(f"{n}={summary[n]:.4f}" for n in (f"recall@{k}" for k in self.ks) if n in summary)
            log.info("%s (%d users): %s", stage, len(users), shown)

    def compute(
        self,
        data: Interactions,
        stage: Stage,
        users: np.ndarray,
        items: np.ndarray,
        invalid: np.ndarray | None = None,
        errors: np.ndarray | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Per-user metric arrays and the stage summary (means, coverage, Gini, slices) for these lists; a title
        generator's output error shares (`errors`, users × GENERATION_ERRORS) as `<class>_rate`."""
        expected = data.eval_users(stage)
        if not np.array_equal(users, expected):
            missing = np.setdiff1d(expected, users)
            raise RuntimeError(f"{stage}: top-K lists missing for {len(missing)} evaluated users, e.g. {missing[:5]}")
        truth = data.truth(stage)[users]
        per_user = M.accuracy_per_user(items, truth, self.ks)
        popularity, genres = self._catalogue(data)
        per_user.update(M.beyond_per_user(items, self.ks, popularity, data.n_users, genres))
        summary = {name: float(values.mean()) for name, values in per_user.items()}
        for k in self.ks:
            summary[f"coverage@{k}"] = M.coverage(items, data.n_items, k)
            summary[f"gini@{k}"] = M.gini(items, data.n_items, k)
        if invalid is not None:
            per_user["invalid_rate"] = invalid
            summary["invalid_rate"] = float(invalid.mean())
        if errors is not None:
            for column, name in enumerate(GENERATION_ERRORS):
                per_user[f"{name}_rate"] = errors[:, column]
                summary[f"{name}_rate"] = float(errors[:, column].mean())
        if data.max_users is not None:  # logged too, so a sampled run is visible as such in W&B
            summary["sampled_users"] = float(len(users))
        slices, threshold = M.item_slices(popularity, self.head_share)
        summary.update(M.item_slice_metrics(items, truth, self.ks, slices))
        summary["items/head_min_train_count"] = threshold
        cold = data.train_counts()[users] <= self.cold_threshold
        for label, members in (("cold", cold), ("warm", ~cold)):
            summary[f"users/{label}"] = float(members.sum())
            for name in per_user:
                if members.any() and name.split("@")[0] in M.ACCURACY:
                    summary[f"{name}/{label}"] = float(per_user[name][members].mean())
        return per_user, summary

    def _catalogue(self, data: Interactions) -> tuple[np.ndarray, np.ndarray | None]:
        """Train popularity and genre matrix of the items, built once per dataset: val and test share them, and
        the genre matrix costs a Python pass over the catalogue."""
        source = (data, data.train, data.items)
        if self._catalogue_cache is None or any(a is not b for a, b in zip(self._catalogue_of, source, strict=True)):
            self._catalogue_cache = (data.popularity(), data.item_genres())
            self._catalogue_of = source
        return self._catalogue_cache

    def _gathered(self, stage: Stage, pl_module) -> tuple[np.ndarray, ...]:
        """All ranks' lists, one row per user in ascending user order (DDP padding duplicates removed)."""
        buffer = self._buffers.get(stage) or []
        k = max(self.ks)
        users = torch.cat([b[0] for b in buffer]) if buffer else torch.zeros(0, dtype=torch.long)
        items = torch.cat([b[1] for b in buffer]) if buffer else torch.zeros((0, k), dtype=torch.long)
        scores = torch.cat([b[2] for b in buffer]) if buffer else torch.zeros((0, k))
        invalid = torch.cat([b[3] for b in buffer]) if buffer else torch.zeros(0)
        errors = torch.cat([b[4] for b in buffer]) if buffer else torch.zeros((0, len(GENERATION_ERRORS)))
        columns = (users, items, scores, invalid, errors)
        if pl_module.trainer.world_size > 1:
            columns = tuple(_all_gather_rows(pl_module, t) for t in columns)
        unique, first = np.unique(columns[0].numpy(), return_index=True)
        return (unique, *(t.numpy()[first] for t in columns[1:]))

    def _data(self, trainer) -> Interactions:
        datamodule = trainer.datamodule
        if datamodule is None or getattr(datamodule, "data", None) is None:
            raise RuntimeError("RecEvalCallback needs the shared RecDataModule (pass datamodule= to the Trainer)")
        return datamodule.data

    # -- files -----------------------------------------------------------------------------------------
    def write(self, trainer) -> None:
        """Write metrics.json and the two parquet files for the stages evaluated so far (rank zero only)."""
        if not trainer.is_global_zero or not self.results:
            return
        out = self.output_dir or Path(trainer.default_root_dir)
        module = trainer.lightning_module
        timing = {**getattr(trainer.datamodule, "timing", {}), **self.timing}  # data stages, then train/val/test
        if hasattr(module, "fit_seconds"):
            timing["fit_seconds"] = float(module.fit_seconds)
        timing.update(run_memory())  # peak since the run started (recarena.train resets the mark)
        data = self._data(trainer)
        sampling = {
            "eval_max_users": data.max_users,
            "eval_users": {stage: int(len(data.eval_users(stage))) for stage in self.results},
            "all_eval_users": {stage: data.all_eval_users(stage) for stage in self.results},
        }
        write_json(out / "metrics.json", {**self.results, "timing": timing, "sampling": sampling})
        recs = [f[0] for f in self._frames.values()]
        users = [f[1] for f in self._frames.values()]
        write_parquet(out / "recommendations.parquet", pl.concat(recs, how="diagonal_relaxed"))
        write_parquet(out / "per_user_metrics.parquet", pl.concat(users, how="diagonal_relaxed"))


def _all_gather_rows(pl_module, tensor: torch.Tensor) -> torch.Tensor:
    """Gather a tensor whose first dimension differs between ranks: pad to the longest, gather, trim."""
    length = torch.tensor([tensor.shape[0]], device=pl_module.device)
    lengths = pl_module.all_gather(length).view(-1).cpu()
    longest = int(lengths.max())
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype)
    padded[: tensor.shape[0]] = tensor
    gathered = pl_module.all_gather(padded.to(pl_module.device)).cpu()
    return torch.cat([gathered[r, : int(n)] for r, n in enumerate(lengths)])


def recommendation_rows(
    data: Interactions, stage: Stage, users: np.ndarray, items: np.ndarray, scores: np.ndarray
) -> pl.DataFrame:
    """One row per (user, rank) with raw ids; an empty slot (-1) has a null item."""
    n, k = items.shape
    flat = items.ravel()
    raw_items = pl.Series("item", data.item_ids[np.where(flat >= 0, flat, 0)]).scatter(np.flatnonzero(flat < 0), None)
    return pl.DataFrame(
        {
            "user": data.user_ids[np.repeat(users, k)],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
            "item": raw_items,
            "score": scores.ravel().astype(np.float64),
            "stage": [stage] * (n * k),
        }
    )


def per_user_rows(data: Interactions, stage: Stage, users: np.ndarray, per_user: dict[str, np.ndarray]) -> pl.DataFrame:
    """One row per evaluated user: raw id, stage, train size and every per-user metric."""
    return pl.DataFrame(
        {
            "user": data.user_ids[users],
            "stage": [stage] * len(users),
            "train_interactions": data.train_counts()[users],
            **per_user,
        }
    )
