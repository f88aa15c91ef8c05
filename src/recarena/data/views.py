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
            "sequences": self.sequences.rows(rows),
        }


def window_bounds(length: int, max_len: int) -> list[tuple[int, int]]:
    """The training windows of every sequence view: consecutive [start, end) slices of at most `max_len` positions,
    cut from the end of a sequence of `length`, so each position is in exactly one window (the most recent
    window is full; the oldest may be short)."""
    return [(max(0, end - max_len), end) for end in range(length, 0, -int(max_len))]


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
        for tokens in token_sequences:  # target j is token j + 1 (token 0 is BOS); its input is token j
            for start, end in window_bounds(len(tokens) - 1, max_len):
                self.windows.append((tokens[start:end], tokens[start + 1 : end + 1]))

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


class MaskedSequences(Dataset):
    """Cloze training (BERT4Rec) over each user's item-token sequence, re-masked every time it is drawn.

    Each window of at most `max_len` items has a share `mask_prob` of its items masked (all `width` tokens of
    an item together), and with probability `last_prob` its last item too, so training matches inference
    (a mask appended after the history). At least one item is masked; labels are -100 except at masks."""

    shuffle = True

    def __init__(
        self,
        item_sequences: list[np.ndarray],
        codes: np.ndarray,
        mask_token: int,
        max_len: int,
        mask_prob: float = 0.2,
        last_prob: float = 0.1,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        self.codes, self.mask_token = codes, mask_token
        self.mask_prob, self.last_prob, self.batch_size = mask_prob, last_prob, batch_size
        self.rng = np.random.default_rng(seed)
        self.windows = [
            seq[start:end] for seq in item_sequences if len(seq) >= 2 for start, end in window_bounds(len(seq), max_len)
        ]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.windows[index]

    def mask(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token inputs and labels of one window with whole items masked."""
        chosen = self.rng.random(len(items)) < self.mask_prob
        if self.rng.random() < self.last_prob:
            chosen[-1] = True
        if not chosen.any():
            chosen[self.rng.integers(len(items))] = True
        tokens = self.codes[items]  # (n, width)
        labels = np.where(chosen[:, None], tokens, -100)
        inputs = np.where(chosen[:, None], self.mask_token, tokens)
        return inputs.reshape(-1), labels.reshape(-1)

    def collate(self, batch: list[np.ndarray]) -> dict[str, torch.Tensor]:
        pairs = [self.mask(items) for items in batch]
        return {
            "input_ids": pad_batch([p[0] for p in pairs], 0),
            "attention_mask": (pad_batch([np.ones(len(p[0])) for p in pairs], 0) > 0).long(),
            "labels": pad_batch([p[1] for p in pairs], -100),
        }


