"""Item identifiers as tokens: `atomic` (one token per item) or code tuples (TIGER-style semantic ids).

Token 0 is padding, 1 begins a sequence, 2 is the mask (BERT-DGRS); item codes follow. Each code level
has its own token range, so a token says both its level and its code."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD, BOS, MASK = 0, 1, 2
N_SPECIAL = 3


@dataclass(frozen=True)
class ItemTokens:
    """codes[i] = the token ids of item i (length `width`); `vocab_size` covers specials and every code."""

    codes: np.ndarray  # (n_items, width) int64 token ids
    vocab_size: int

    @classmethod
    def atomic(cls, n_items: int) -> ItemTokens:
        """One token per item, N_SPECIAL + index: never a rank or time order leaking into the id."""
        codes = (np.arange(n_items, dtype=np.int64) + N_SPECIAL)[:, None]
        return cls(codes=codes, vocab_size=n_items + N_SPECIAL)

    @classmethod
    def from_levels(cls, levels: np.ndarray, sizes: list[int]) -> ItemTokens:
        """Code tuples (n_items, n_levels) with level l's codes in [0, sizes[l]) → disjoint token ranges."""
        offsets = N_SPECIAL + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return cls(codes=levels.astype(np.int64) + offsets[None, :], vocab_size=int(N_SPECIAL + sum(sizes)))

    @property
    def n_items(self) -> int:
        return self.codes.shape[0]

    @property
    def width(self) -> int:
        return self.codes.shape[1]

    def encode(self, items: np.ndarray, bos: bool = True) -> np.ndarray:
        """Token sequence of a time-ordered item sequence (each item's codes in order), BOS first."""
        body = self.codes[np.asarray(items, dtype=np.int64)].reshape(-1)
        return np.concatenate([[BOS], body]) if bos else body

    def decode(self, tokens: np.ndarray) -> int:
        """Item index of one code tuple, or -1 when the tuple names no item."""
        match = np.flatnonzero((self.codes == np.asarray(tokens)[None, :]).all(axis=1))
        return int(match[0]) if match.size else -1

    def decode_rows(self, rows: np.ndarray) -> np.ndarray:
        """Item index of every row of code tuples (rows, width); -1 where a row names no item."""
        lookup = {tuple(code): item for item, code in enumerate(self.codes.tolist())}
        return np.array([lookup.get(tuple(row), -1) for row in np.asarray(rows).tolist()], dtype=np.int64)

    def item_of_token(self) -> np.ndarray:
        """For atomic ids: item index of every token (-1 for specials)."""
        lookup = np.full(self.vocab_size, -1, dtype=np.int64)
        if self.width == 1:
            lookup[self.codes[:, 0]] = np.arange(self.n_items)
        return lookup
