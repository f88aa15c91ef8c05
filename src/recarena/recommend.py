"""`python -m recarena.recommend run_dir=<run> user=196 k=10`: a finished run's top-K for one user, with explanations.

The run is restored as in `recarena.eval` (fit-once models re-fitted from the run's config, gradient models from
their best checkpoint) and the user is scored through the same Trainer test (or validation) step, with the same
history (train + valid for test), so the list equals the run's recommendations.parquet rows for that user."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import polars as pl
import pytorch_lightning as pl_lightning
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from recarena.data.interactions import Interactions, Stage
from recarena.data.views import EvalUsers
from recarena.eval import eval_trainer, quiet_lightning, restore_run, run_stage
from recarena.reporting.samples import explain_rows
from recarena.utils.compose import CONFIG_DIR


class UserSubset(pl_lightning.LightningDataModule):
    """The run's data module, serving only `users` to the val/test loops (one batch, the stage's known items)."""

    def __init__(self, inner: pl_lightning.LightningDataModule, users: np.ndarray) -> None:
        super().__init__()
        self.inner, self.users = inner, np.asarray(users, dtype=np.int64)
        self.data: Interactions | None = getattr(inner, "data", None)

    def setup(self, stage: str | None = None) -> None:
        self.inner.setup(stage)
        self.data = self.inner.data

    def _loader(self, stage: Stage) -> DataLoader:
        users = EvalUsers(self.data, stage)
        users.users = self.users  # any known user, evaluated in this stage or not
        return DataLoader(users, batch_size=len(self.users), shuffle=False, collate_fn=users.collate)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class _Collect(pl_lightning.Callback):
    """Keeps the TopK every val/test step returns."""

    def __init__(self) -> None:
        self.outputs: list = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.outputs.append(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.outputs.append(outputs)


def user_index(data: Interactions, user: Any) -> int:
    """Index of a raw user id (as in recommendations.parquet); integer ids accept "196" and 196 alike."""
    ids = data.user_ids
    try:
        key = int(user) if np.issubdtype(ids.dtype, np.integer) else str(user)
    except (TypeError, ValueError):
        key = None
    found = np.flatnonzero(ids == key) if key is not None else np.zeros(0, dtype=np.int64)
    if not found.size:
        raise ValueError(
            f"user={user!r} is not in the run's data ({len(ids)} users; raw ids such as {ids[:3].tolist()})"
        )
    return int(found[0])


def recommend(
    run_dir: str | Path,
    user: Any,
    k: int = 10,
    stage: Stage = "test",
    data_dir: str | None = None,
    accelerator: str | None = None,
) -> list[dict[str, Any]]:
    """Top-k rows (user, rank, item, title, score, explanation) for one raw user id of a finished run."""
    if stage not in ("val", "test"):
        raise ValueError(f"stage={stage!r}: expected val or test")
    if int(k) < 1:
        raise ValueError(f"k={k!r}: must be >= 1")
    run = restore_run(run_dir, data_dir)
    data = run.datamodule.data
    index = user_index(data, user)
    # the run's list length, so decoders whose lists depend on it (beam search) give the run's exact lists
    run.model.eval_k = max(int(k), *[int(c) for c in run.cfg.eval.ks])
    collect = _Collect()
    with tempfile.TemporaryDirectory(prefix="recarena-recommend-") as tmp:
        trainer = eval_trainer(run.cfg, [collect], tmp, accelerator)
        run_stage(trainer, stage, run, UserSubset(run.datamodule, [index]))
    (top,) = collect.outputs
    items = top.items[0, : int(k)].cpu().numpy()
    scores = top.scores[0, : int(k)].float().cpu().numpy()
    return explain_rows(run.model, data, index, items, scores, stage)


def saved_rows(run_dir: str | Path, user: Any, stage: Stage, k: int) -> pl.DataFrame | None:
    """The run's own recommendations.parquet rows for this user and stage (rank ≤ k), or None if absent."""
    path = Path(run_dir) / "recommendations.parquet"
    if not path.exists():
        return None
    frame = pl.read_parquet(path).filter((pl.col("stage") == stage) & (pl.col("rank") <= k))
    frame = frame.filter(pl.col("user").cast(pl.String) == str(user))
    return frame.sort("rank") if frame.height else None


def format_rows(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header]
    for row in rows:
        lines.append(f"{row['rank']:>3}. {row['title']}  [item {row['item']}, score {row['score']:.4g}]")
        lines.append(f"     {row['explanation']}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="recommend")
def main(cfg: DictConfig) -> None:
    """Print the top-K with explanations, and whether it matches the run's saved list for that user."""
    quiet_lightning()
    try:
        rows = recommend(cfg.run_dir, cfg.user, int(cfg.k), cfg.stage, cfg.data_dir, cfg.accelerator)
    except (ValueError, FileNotFoundError) as error:
        print(f"recommend: {error}", file=sys.stderr)
        sys.exit(2)
    if cfg.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(format_rows(rows, f"top-{cfg.k} for user {cfg.user} ({cfg.stage} history) from {cfg.run_dir}:"))
    saved = saved_rows(cfg.run_dir, cfg.user, cfg.stage, int(cfg.k))
    if saved is not None:
        same = saved["item"].to_list() == [r["item"] for r in rows]
        verdict = "same items and order as" if same else "WARNING: differs from"
        print(f"{verdict} the run's recommendations.parquet ({cfg.stage})", file=sys.stderr)


if __name__ == "__main__":
    main()
