"""`python -m recarena.update run_dir=<run> feedback=<db or table>`: the next iteration of a served run.

The feedback is folded into the run's data by the data layer's rules (`recarena.data.events`), the model is updated
(`recarena.models.adapt`: fit-once families refit, gradient families train `steps` more steps from their weights)
and a new run folder is written beside the parent, all at once (a temp folder renamed into place):
- `.hydra/` the parent's config with `data.events` pointing at the new folder's `events.parquet` (so `recommend`,
  `eval` and `serve` restore the updated data), `data.event_kinds` the kinds' vocabulary (config group `events`)
  and `parent_run` naming the parent;
- `events.parquet`: every event folded in since the original run (the parent's, then the new ones kept), with its
  kind: positives are interactions, negatives keep their item out of that user's lists;
- `update.json`: parent, feedback source, cleaning counts, users concerned, steps and seconds;
- gradient families: `checkpoints/updated.ckpt`, the updated weights."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import polars as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from recarena.data.events import EventKinds, fold_events, read_events
from recarena.data.feedback import FeedbackStore, redacted
from recarena.errors import RecArenaError
from recarena.models.adapt import check_update, load_weights, train_steps, users_subset
from recarena.models.fit_once import FitOnceModule
from recarena.runs import restore_run
from recarena.utils.compose import CONFIG_DIR
from recarena.utils.console import quiet_lightning
from recarena.utils.io import write_json, write_parquet

log = logging.getLogger(__name__)

TABLES = (".parquet", ".csv", ".tsv")
EVENTS_FILE = "events.parquet"


def read_feedback(source: str | Path) -> pl.DataFrame:
    """Events from a table file or a feedback database (an SQLAlchemy URL or an SQLite file)."""
    text = str(source)
    if Path(text).suffix in TABLES:
        return read_events(text)
    if "://" not in text and not Path(text).exists():
        raise FileNotFoundError(f"feedback={text}: no such database or table")
    store = FeedbackStore(text, key="feedback", read_only=True)
    try:
        return store.frame()
    finally:
        store.close()


def update(
    run_dir: str | Path,
    feedback: str | Path | None = None,
    out_dir: str | Path | None = None,
    steps: int = 50,
    data_dir: str | None = None,
    accelerator: str | None = None,
    lr_scale: float = 0.1,
    kinds: EventKinds | None = None,
) -> Path:
    """Write the updated run folder and return its path (see the module docstring)."""
    check_update(steps, lr_scale)
    kinds = kinds or EventKinds()
    parent = Path(run_dir).resolve()
    source = Path(feedback) if feedback is not None and "://" not in str(feedback) else feedback
    source = source if source is not None else parent / "feedback.sqlite"
    out = (
        Path(out_dir).resolve()
        if out_dir
        else parent.with_name(f"{parent.name}.update-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    if out.exists():
        raise FileExistsError(f"out_dir={out}: exists already; an update writes a new run folder")
    events = read_feedback(source)
    start = time.perf_counter()
    run = restore_run(parent, data_dir)
    data = run.datamodule.data
    new_data, counts, kept = fold_events(data, events, redacted(source), kinds)
    users = np.unique(new_data.frame.filter(pl.col("pos") > int(data.frame["pos"].max()))["u"].to_numpy())
    model, trainer = run.model, None
    if isinstance(model, FitOnceModule):
        model.refit(new_data)
    elif run.checkpoint is not None:
        load_weights(model, new_data, run.checkpoint)
        if len(users) and int(steps) > 0:
            trainer = train_steps(model, run.cfg, users_subset(new_data, users), int(steps), accelerator, lr_scale)
    seconds = time.perf_counter() - start
    parent_events = _parent_events(run.cfg)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        folder = Path(tmp) / "run"
        _write_config(parent, folder, kinds)
        write_parquet(folder / EVENTS_FILE, pl.concat([parent_events, kept]) if parent_events is not None else kept)
        if trainer is not None:
            trainer.save_checkpoint(folder / "checkpoints" / "updated.ckpt", weights_only=True)
        elif run.checkpoint is not None:  # nothing to train on: the parent's weights, unchanged
            (folder / "checkpoints").mkdir()
            shutil.copy2(run.checkpoint, folder / "checkpoints" / "updated.ckpt")
        record: dict[str, Any] = {
            "parent_run": str(parent), "feedback": redacted(source), "cleaning": counts,
            "users_updated": int(len(users)),
            "steps": int(steps) if trainer is not None else 0, "lr_scale": float(lr_scale), "seconds": seconds,
            "how": "refit" if isinstance(model, FitOnceModule) else "fine-tune",
        }  # fmt: skip
        write_json(folder / "update.json", record)
        os.replace(folder, out)
    log.info("updated run written to %s: %s", out, record)
    return out


def _parent_events(cfg: DictConfig) -> pl.DataFrame | None:
    path = cfg.data.get("events")
    return read_events(path).with_columns(pl.col("timestamp").cast(pl.Int64)) if path else None


def _write_config(parent: Path, folder: Path, kinds: EventKinds) -> None:
    """The parent's saved Hydra files, its config pointing `data.events` at this folder's table (resolved against
    the folder the run is restored from), recording the kinds' vocabulary and naming the parent."""
    shutil.copytree(parent / ".hydra", folder / ".hydra")
    config = OmegaConf.load(parent / ".hydra" / "config.yaml")
    with open_dict(config):
        config.data.events = "${hydra:runtime.output_dir}/" + EVENTS_FILE
        config.data.event_kinds = kinds.as_config()
        config.parent_run = str(parent)
    OmegaConf.save(config, folder / ".hydra" / "config.yaml")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="update")
def main(cfg: DictConfig) -> None:
    quiet_lightning()
    logging.getLogger("recarena").setLevel(logging.INFO)
    try:
        kinds = EventKinds.from_config(cfg.get("events"))
        out = update(cfg.run_dir, cfg.feedback, cfg.out_dir, cfg.steps, cfg.data_dir, cfg.accelerator, cfg.lr_scale,
                     kinds)  # fmt: skip
    except (RecArenaError, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"update: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"updated run: {out}")
    print((out / "update.json").read_text())


if __name__ == "__main__":
    main()
