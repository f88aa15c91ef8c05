"""LLM-DGRS prompts and training views: an item history as tokens of a pretrained LM's vocabulary.

Item-token mode: `instruction` then each item as its own new token (id `vocab + item`), optionally followed by its
title and the terminator; the model predicts the next item token after every item. Title mode: `instruction`, one
line per item ("-" title terminator), then `answer`; the target is the next item's title and the terminator.
Token ids are concatenated, never re-tokenized from text, so a title's tokens are the same in prompts, targets
and the decoding trie."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from recarena.data.views import pad_batch, window_bounds


@dataclass
class PromptBuilder:
    """Token pieces of the prompt template; `vocab` is the first id of the item tokens (the LM's vocabulary size)."""

    instruction: list[int]
    answer: list[int]
    bullet: list[int]
    titles: list[list[int]]  # title tokens of every item (no terminator)
    end: int  # terminator token closing a title
    vocab: int
    history_text: bool = False

    def item_tokens(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Item-token prompt of a history and the position that predicts each of its items (the token before it)."""
        ids, before = list(self.instruction), []
        for item in np.asarray(items).tolist():
            before.append(len(ids) - 1)
            ids.append(self.vocab + item)
            if self.history_text:
                ids += self.titles[item] + [self.end]
        return np.asarray(ids, dtype=np.int64), np.asarray(before, dtype=np.int64)

    def title_prompt(self, items: np.ndarray) -> list[int]:
        """Title-mode prompt of a history: instruction, one bulleted title line per item, then the answer cue."""
        ids = list(self.instruction)
        for item in np.asarray(items).tolist():
            ids += self.bullet + self.titles[item] + [self.end]
        return ids + self.answer

    def target(self, item: int) -> list[int]:
        """What title mode generates for an item: its title tokens and the terminator."""
        return self.titles[int(item)] + [self.end]


class ItemTokenWindows(Dataset):
    """Item-token training: every train item is predicted once per epoch from the items before it in its window."""

    shuffle = True

    def __init__(self, sequences: list[np.ndarray], prompts: PromptBuilder, max_len: int, batch_size: int) -> None:
        self.prompts, self.batch_size = prompts, batch_size
        self.windows = [seq[a:b] for seq in sequences for a, b in window_bounds(len(seq), max_len)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.windows[index]

    def collate(self, batch: list[np.ndarray]) -> dict[str, torch.Tensor]:
        encoded = [self.prompts.item_tokens(items) for items in batch]
        rows = np.concatenate([np.full(len(b), r) for r, (_, b) in enumerate(encoded)])
        return {
            "input_ids": pad_batch([ids for ids, _ in encoded], 0),
            "attention_mask": pad_batch([np.ones(len(ids)) for ids, _ in encoded], 0),
            "rows": torch.from_numpy(rows),
            "positions": torch.from_numpy(np.concatenate([b for _, b in encoded])),
            "targets": torch.from_numpy(np.concatenate([np.asarray(items, dtype=np.int64) for items in batch])),
        }


class TitleExamples(Dataset):
    """Title-mode fine-tuning, `title_training=targets`: per user and epoch, `per_user` (history → next title)
    examples: the last train item, then targets drawn at random from earlier positions. Labels cover the target
    title and terminator only."""

    shuffle = True

    def __init__(
        self, sequences: list[np.ndarray], prompts: PromptBuilder, max_len: int, batch_size: int, per_user: int = 2,
        seed: int = 0,
    ) -> None:  # fmt: skip
        self.sequences = [s for s in sequences if len(s) >= 2]
        self.prompts, self.max_len, self.batch_size, self.per_user = prompts, max_len, batch_size, per_user
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.sequences) * self.per_user

    def __getitem__(self, index: int) -> tuple[list[int], list[int]]:
        seq = self.sequences[index // self.per_user]
        target = len(seq) - 1 if index % self.per_user == 0 else int(self.rng.integers(1, len(seq)))
        history = seq[max(0, target - self.max_len) : target]
        prompt, title = self.prompts.title_prompt(history), self.prompts.target(seq[target])
        return prompt + title, [-100] * len(prompt) + title

    def collate(self, batch: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        return collate_labelled(batch)


class TitleWindows(Dataset):
    """Title-mode fine-tuning, `title_training=windows`: each user's train sequence cut into windows of `max_len` + 1
    items (window_bounds), each written as the title list of the prompt, the loss on every title after the window's
    first: one forward pass teaches `max_len` next titles, and every train item but a window's first is a target once
    per epoch. The prompt's answer cue is then the list's bullet (PromptBuilder.answer)."""

    shuffle = True

    def __init__(self, sequences: list[np.ndarray], prompts: PromptBuilder, max_len: int, batch_size: int) -> None:
        self.prompts, self.batch_size = prompts, batch_size
        self.windows = [seq[a:b] for seq in sequences for a, b in window_bounds(len(seq), max_len + 1) if b - a >= 2]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[list[int], list[int]]:
        ids, labels = list(self.prompts.instruction), [-100] * len(self.prompts.instruction)
        for position, item in enumerate(np.asarray(self.windows[index]).tolist()):
            title = self.prompts.target(item)
            ids += self.prompts.bullet + title
            labels += [-100] * len(self.prompts.bullet) + (title if position > 0 else [-100] * len(title))
        return ids, labels

    def collate(self, batch: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        return collate_labelled(batch)


def collate_labelled(batch: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Right-padded token ids, their attention mask and labels (-100 where no loss is taken)."""
    ids = [np.asarray(i, dtype=np.int64) for i, _ in batch]
    return {
        "input_ids": pad_batch(ids, 0),
        "attention_mask": pad_batch([np.ones(len(i)) for i in ids], 0),
        "labels": pad_batch([np.asarray(labels, dtype=np.int64) for _, labels in batch], -100),
    }
