"""A benchmark-only Lightning callback, added by config: keeps handles on the run's objects for measurements.

It only stores references (no work in the timed stages), so the road being measured is unchanged."""

from __future__ import annotations

import pytorch_lightning as pl

from recarena.evaluation.callback import RecEvalCallback

LAST: dict[str, object] = {}  # the latest run's trainer, datamodule, module and evaluator


class Probe(pl.Callback):
    """Remembers the trainer, datamodule, LightningModule and RecEvalCallback of the run that just tested."""

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        LAST.update(
            trainer=trainer,
            datamodule=trainer.datamodule,
            module=pl_module,
            evaluator=next(c for c in trainer.callbacks if isinstance(c, RecEvalCallback)),
        )
