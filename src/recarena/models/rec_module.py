"""RecModule: the contract every family meets — recommend(users, history, k) -> TopK — and the shared eval steps."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import pytorch_lightning as pl
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset

from recarena.data.interactions import Interactions
from recarena.topk import TopK

if TYPE_CHECKING:
    from recarena.models.mmr import Reranker


class RecModule(pl.LightningModule):
    """A LightningModule that returns top-K lists with known items excluded; metrics are never computed here.

    `eval_k` (the longest list the evaluator needs) is set by RecEvalCallback; `reranker` (set by
    `recarena.models.mmr.attach_reranker` from the `rerank` config) re-ranks the model's top-N before the
    evaluator."""

    eval_k: int = 20
    reranker: Reranker | None = None
    # whether `recommend` can score a session: user index -1 with a history (and sequence) not in the data
    sessions: bool = True

    @property
    def trains(self) -> bool:
        """False for a model evaluated as it is (a zero-shot LLM): train.py then skips `fit`."""
        return True

    @abstractmethod
    def train_view(self, data: Interactions) -> Dataset:
        """The training dataset (with a `collate` method) this family learns from."""

    @abstractmethod
    def recommend(
        self, users: torch.Tensor, history: sp.csr_matrix, k: int, sequences: list[np.ndarray] | None = None
    ) -> TopK:
        """Top-k unknown items for each user; `history` rows are the users' known items."""

    @abstractmethod
    def explain(self, user: int, item: int, history: sp.csr_matrix, sequence: np.ndarray | None = None) -> str:
        """One line saying why `item` was recommended to `user`."""

    def explain_items(
        self, user: int, items: np.ndarray, history: sp.csr_matrix, sequence: np.ndarray | None = None
    ) -> list[str]:
        """`explain` for each of `items` (families override it to explain a whole list in one pass)."""
        return [self.explain(user, int(item), history, sequence) for item in items]

    def validation_step(self, batch: dict, batch_idx: int) -> TopK:
        return self.eval_lists(batch)

    def test_step(self, batch: dict, batch_idx: int) -> TopK:
        return self.eval_lists(batch)

    def eval_lists(self, batch: dict) -> TopK:
        """The batch's top-`eval_k`: the model's own, or its top-`candidates` re-ranked when a reranker is set."""
        reranker = self.reranker
        if reranker is None:
            return self.recommend(batch["users"], batch["history"], self.eval_k, batch["sequences"])
        if not reranker.fitted:  # DDP workers: built before their data existed, fitted from their own data module
            reranker.fit(self.trainer.datamodule.data)
        n = max(self.eval_k, reranker.candidates)
        return reranker.rerank(self.recommend(batch["users"], batch["history"], n, batch["sequences"]), self.eval_k)
