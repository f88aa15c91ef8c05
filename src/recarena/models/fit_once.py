"""FitOnceModule: runs any non-gradient Recommender through the Trainer — one fit, no optimiser, no fake epochs."""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset

from recarena.data.interactions import Interactions
from recarena.data.views import MatrixView, WholeData
from recarena.models.masked_topk import rank_scores
from recarena.models.rec_module import RecModule
from recarena.models.recommenders.recommender import Recommender
from recarena.topk import TopK

# a fit-once model has no optimiser on purpose; Lightning's warning about it would only mislead
warnings.filterwarnings("ignore", message=r".*configure_optimizers.* returned `None`")


class FitOnceModule(RecModule):
    """Fits its recommender in the first (only) training step, then stops training; evaluation is shared."""

    def __init__(self, recommender: Recommender, refit_on_valid: bool = False) -> None:
        super().__init__()
        self.recommender = recommender
        self.refit_on_valid = refit_on_valid
        self.automatic_optimization = False
        self.fit_seconds = 0.0
        self.fitted = False

    @property
    def sessions(self) -> bool:
        return self.recommender.sessions

    def train_view(self, data: Interactions) -> Dataset:
        return MatrixView(data)

    def refit(self, data: Interactions) -> float:
        """Fit the recommender on `data`'s train part (training, a restored run, an update, a replay window: the one
        way a fit-once model is brought up to data); returns the seconds it took."""
        start = time.perf_counter()
        self.recommender.fit(data)
        self.fitted = True
        return time.perf_counter() - start

    def training_step(self, batch: WholeData, batch_idx: int) -> None:
        if not self.fitted:
            self.fit_seconds = self.refit(batch.data)  # the training fit's time, reported in metrics.json
            self.log("fit_seconds", self.fit_seconds, on_step=False, on_epoch=True, batch_size=1)

    def on_train_epoch_end(self) -> None:
        self.trainer.should_stop = True  # a second epoch would fit nothing new

    def on_test_start(self) -> None:
        """With `eval.refit_on_valid`, fit again on train + valid before scoring the test period."""
        if self.refit_on_valid:
            self.refit(self.trainer.datamodule.data.refit_view())

    def configure_optimizers(self) -> None:
        return None

    def recommend(
        self, users: torch.Tensor, history: sp.csr_matrix, k: int, sequences: list[np.ndarray] | None = None
    ) -> TopK:
        scores = self.recommender.score(users.cpu().numpy(), history)
        top = rank_scores(torch.from_numpy(np.ascontiguousarray(scores)), history, k)
        return TopK(top.items.to(users.device), top.scores.to(users.device))

    def explain(self, user: int, item: int, history: sp.csr_matrix, sequence: np.ndarray | None = None) -> str:
        return self.recommender.explain(user, item, history)

    def explain_items(
        self, user: int, items: np.ndarray, history: sp.csr_matrix, sequence: np.ndarray | None = None
    ) -> list[str]:
        return self.recommender.explain_items(user, items, history)
