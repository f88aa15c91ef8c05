"""Training views: what a family's training loop iterates over, built from the shared Interactions."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset

from recarena.data.interactions import Interactions, Stage


class WholeData:
    """One batch holding the whole split (opaque to Lightning's device transfer, so never copied)."""

    def __init__(self, data: Interactions) -> None:
        self.data = data


class MatrixView(Dataset):
    """A single item: the whole train split, for models fitted in one step (pop, kNN, MF, content)."""

    def __init__(self, data: Interactions) -> None:
        self.data = data

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> WholeData:
        return WholeData(self.data)

    @staticmethod
    def collate(batch: list[WholeData]) -> WholeData:
        return batch[0]


class EvalUsers(Dataset):
    """Evaluated users of a stage; batches carry each user's known items (CSR) and time-ordered history."""

    def __init__(self, data: Interactions, stage: Stage) -> None:
        self.data, self.stage = data, stage
        self.users = data.eval_users(stage)
        self.known = data.known(stage)
        self.sequences = data.sequences(stage)

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, index: int) -> int:
        return int(self.users[index])

    def collate(self, users: list[int]) -> dict:
        rows = np.asarray(users, dtype=np.int64)
        history: sp.csr_matrix = self.known[rows]
        return {
            "users": torch.from_numpy(rows),
            "history": history,
            "sequences": [self.sequences[u] for u in rows],
        }
