"""Sample recommendations with the model's explanations: rows for one user's top-K, and a W&B table per run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recarena.data.interactions import Interactions, Stage

log = logging.getLogger(__name__)

COLUMNS = ["user", "rank", "item", "title", "score", "explanation"]


def _plain(value: Any) -> Any:
    """numpy scalars → Python values (W&B tables and JSON want plain types)."""
    return value.item() if isinstance(value, np.generic) else value


def explain_rows(
    model, data: Interactions, user: int, items: np.ndarray, scores: np.ndarray, stage: Stage = "test"
) -> list[dict[str, Any]]:
    """One row per recommended item (empty slots skipped): raw user and item ids, title, score and the model's
    `explain_items(user, items, history, sequence)`, with the history the model saw for `stage`
    (docs/protocol.md §3)."""
    history = data.known(stage)[int(user)]
    sequence = data.sequences(stage)[int(user)]
    items, scores = np.asarray(items), np.asarray(scores)
    listed = np.flatnonzero(items >= 0)
    why = model.explain_items(int(user), items[listed], history, sequence) if listed.size else []
    return [
        {
            "user": _plain(data.user_ids[int(user)]),
            "rank": int(position) + 1,
            "item": _plain(data.item_ids[int(items[position])]),
            "title": data.item_label(int(items[position])),
            "score": float(scores[position]),
            "explanation": explanation,
        }
        for position, explanation in zip(listed, why, strict=True)
    ]


def sample_rows(model, data: Interactions, recommendations: pl.DataFrame, n_users: int = 5, k: int = 10) -> list[list]:
    """Explained rows for the first `n_users` test users of a run's recommendations (raw ids, rank ≤ k)."""
    test = recommendations.filter((pl.col("stage") == "test") & (pl.col("rank") <= k) & pl.col("item").is_not_null())
    users = test["user"].unique(maintain_order=True).head(n_users).to_list()
    rows = []
    for raw_user in users:
        mine = test.filter(pl.col("user") == raw_user).sort("rank")
        items = np.array([data.item_index(i) for i in mine["item"].to_list()])
        for row in explain_rows(model, data, data.user_index(raw_user), items, mine["score"].to_numpy()):
            rows.append([row[c] for c in COLUMNS])
    return rows


def log_recommendation_samples(
    loggers: list, model, data: Interactions, evaluator, n_users: int = 5, k: int = 10
) -> None:
    """Log a `recommendation_samples` W&B table (first test users' top-k with explanations) when a WandbLogger is
    present; rank zero only. Reads the run's recommendations.parquet, so the table shows exactly what was scored.
    A failure here is logged, never raised: the run itself has already succeeded."""
    from pytorch_lightning.loggers import WandbLogger

    wandb_logger = next((lg for lg in loggers if isinstance(lg, WandbLogger)), None)
    trainer = getattr(model, "trainer", None)
    if wandb_logger is None or trainer is None or not trainer.is_global_zero:
        return
    try:
        import wandb

        folder = Path(evaluator.output_dir or trainer.default_root_dir)
        recommendations = pl.read_parquet(folder / "recommendations.parquet")
        rows = sample_rows(model, data, recommendations, n_users=n_users, k=k)
        wandb_logger.experiment.log({"recommendation_samples": wandb.Table(columns=COLUMNS, data=rows)})
    except Exception as error:  # a secondary output: never fail the finished run
        log.warning("could not log sample recommendations: %s: %s", type(error).__name__, error)
