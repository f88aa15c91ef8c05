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
from omegaconf import DictConfig

from recarena.data.interactions import Stage
from recarena.reporting.samples import explain_rows
from recarena.runs import Collect, UserSubset, eval_trainer, restore_run, run_stage
from recarena.utils.compose import CONFIG_DIR
from recarena.utils.console import quiet_lightning


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
    index = data.user_index(user)
    if index is None:
        raise ValueError(f"user={user!r} is not in the run's data ({data.n_users} users; raw ids such as "
                         f"{data.user_ids[:3].tolist()})")  # fmt: skip
    # the run's list length, so decoders whose lists depend on it (beam search) give the run's exact lists; items the
    # user gave negative feedback on (recarena.data.events) are asked for on top, then dropped
    blocked = data.blocked(index)
    run.model.eval_k = max(int(k), *[int(c) for c in run.cfg.eval.ks]) + len(blocked)
    collect = Collect()
    with tempfile.TemporaryDirectory(prefix="recarena-recommend-") as tmp:
        trainer = eval_trainer(run.cfg, [collect], tmp, accelerator)
        run_stage(trainer, stage, run, UserSubset(run.datamodule, [index]))
    (top,) = collect.outputs
    items, scores = top.items[0].cpu().numpy(), top.scores[0].float().cpu().numpy()
    keep = ~np.isin(items, blocked)
    items, scores = items[keep][: int(k)], scores[keep][: int(k)]
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
