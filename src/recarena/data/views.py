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


def pad_batch(rows: list[np.ndarray], value: int) -> torch.Tensor:
    """Right-pad 1-D integer arrays into a (len(rows), longest) tensor."""
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, : len(row)] = torch.from_numpy(np.asarray(row, dtype=np.int64))
    return out


class CausalWindows(Dataset):
    """Next-token training windows over each user's token sequence ([BOS] + item codes, time order).

    A long sequence is cut from its end into consecutive windows of at most `max_len` targets, so every
    train interaction is a target exactly once per epoch; a window's inputs are the tokens just before
    its targets. Padding gets label -100 (ignored by the loss)."""

    shuffle = True

    def __init__(self, token_sequences: list[np.ndarray], max_len: int, batch_size: int = 128) -> None:
        self.batch_size = batch_size
        self.windows: list[tuple[np.ndarray, np.ndarray]] = []
        for tokens in token_sequences:
            end = len(tokens) - 1
            while end >= 1:
                start = max(1, end - max_len + 1)
                self.windows.append((tokens[start - 1 : end], tokens[start : end + 1]))
                end = start - 1

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.windows[index]

    @staticmethod
    def collate(batch: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
        inputs = pad_batch([b[0] for b in batch], 0)
        return {
            "input_ids": inputs,
            "attention_mask": (pad_batch([np.ones(len(b[0])) for b in batch], 0) > 0).long(),
            "labels": pad_batch([b[1] for b in batch], -100),
        }
