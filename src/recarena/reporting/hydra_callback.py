"""Hydra callback: write the sweep report when a multirun ends, and put a failed job's error into its log.

Hydra's basic sweeper raises once a batch of jobs contains a failure, so `on_multirun_end` never runs then; the
callback also reports at process exit in that case, so the jobs that finished and the failed ones are still shown."""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    """`hydra.callbacks.report` (conf/hydra/default.yaml): `python -m recarena.report <sweep dir>` after a multirun.

    Parameters
    ----------
    enabled: write the report at all (`hydra.callbacks.report.enabled=false` to skip it).
    k, alpha, wandb: passed to `recarena.reporting.sweep_report.make_report`."""

    def __init__(self, enabled: bool = True, k: int = 10, alpha: float = 0.05, wandb: str = "auto") -> None:
        self.enabled, self.k, self.alpha, self.wandb = bool(enabled), int(k), float(alpha), str(wandb)
        self.sweep_dir: Path | None = None
        self.reported = False
        self._pid: int | None = None  # the process that runs the sweep (launchers may run jobs in workers)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self._pid = os.getpid()
        self._arm()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """A failed job's exception goes into its own log (train.log), where the report finds the error line."""
        self._arm()
        if job_return.status == JobStatus.FAILED:
            error = getattr(job_return, "_return_value", None)  # `return_value` re-raises it
            exc_info = (type(error), error, error.__traceback__) if isinstance(error, BaseException) else None
            log.error("job failed: %s: %s", type(error).__name__, error, exc_info=exc_info)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            self._report()

    def _arm(self) -> None:
        """(Re-)register the exit hook, so it runs before the hooks W&B registered in the jobs (last in, first out)."""
        if self.enabled and self._pid == os.getpid():
            atexit.unregister(self._report_if_stopped)
            atexit.register(self._report_if_stopped)

    def _report_if_stopped(self) -> None:
        if not self.reported and self._pid == os.getpid() and self.sweep_dir is not None and self.sweep_dir.is_dir():
            log.warning("the sweep stopped early (a job failed): reporting the jobs in %s", self.sweep_dir)
            self._report()

    def _report(self) -> None:
        from recarena.reporting.replay_report import is_replay_sweep, make_replay_report
        from recarena.reporting.sweep_report import make_report

        self.reported = True
        with _without_job_log():
            try:
                if is_replay_sweep(self.sweep_dir):  # experiment=replay: per-window tables, not a leaderboard
                    log.info("replay report: %s", make_replay_report(self.sweep_dir, k=self.k)["md"])
                    return
                report = make_report(self.sweep_dir, k=self.k, alpha=self.alpha, wandb=self.wandb)
            except Exception as error:  # a report problem must not fail a finished sweep
                log.error(
                    "sweep report failed (%s: %s); run it again with: python -m recarena.report %s",
                    type(error).__name__,
                    error,
                    self.sweep_dir,
                )
                return
            log.info("sweep report: %s", report.files.get("md"))


@contextmanager
def _without_job_log() -> Iterator[None]:
    """Detach the last job's log file from the root logger, so the report's messages do not land in it."""
    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    for handler in files:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in files:
            root.addHandler(handler)
