"""Constrained generation over item tokens: only real, unknown items can be produced.

`ItemConstraint` is a vectorised transformers `LogitsProcessor`: for atomic ids it applies one boolean
mask per user; for multi-token ids it walks a prefix trie of the item code tuples."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from transformers import LogitsProcessor

from recarena.models.generative.item_tokens import PAD, ItemTokens


class ItemConstraint(LogitsProcessor):
    """Allows at each generated step only tokens that continue the code of an item the user does not know.

    Rows of `scores` are (user, beam) pairs in user-major order, as transformers' beam search lays them
    out. When no item is left for a prefix, only PAD is allowed: that beam ends as an invalid output."""

    def __init__(self, tokens: ItemTokens, history: sp.csr_matrix, prompt_len: int, num_beams: int) -> None:
        self.tokens, self.prompt_len, self.num_beams = tokens, prompt_len, num_beams
        n_users = history.shape[0]
        self.allowed_items = np.ones((n_users, tokens.n_items), dtype=bool)
        rows = np.repeat(np.arange(n_users), np.diff(history.indptr))
        self.allowed_items[rows, history.indices] = False
        self._first = self._level_mask(0, self.allowed_items) if tokens.width > 0 else None

    def _level_mask(self, level: int, allowed_items: np.ndarray) -> torch.Tensor:
        """(rows, vocab) mask of the level-`level` tokens of each row's allowed items."""
        mask = np.zeros((allowed_items.shape[0], self.tokens.vocab_size), dtype=bool)
        r, i = np.nonzero(allowed_items)
        mask[r, self.tokens.codes[i, level]] = True
        return torch.from_numpy(mask)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len
        users = torch.arange(input_ids.shape[0]) // self.num_beams
        if step == 0:
            mask = self._first[users]
        else:
            prefix = input_ids[:, self.prompt_len :].cpu().numpy()
            items = self.allowed_items[users.numpy()]
            for level in range(step):
                items &= self.tokens.codes[None, :, level] == prefix[:, level, None]
            mask = self._level_mask(step, items)
        mask = mask.to(scores.device)
        empty = ~mask.any(dim=1)
        mask[empty, PAD] = True
        return scores.masked_fill(~mask, float("-inf"))
