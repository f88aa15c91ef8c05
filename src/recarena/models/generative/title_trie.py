"""Title-constrained generation: a prefix trie of every catalogue title's token sequence (ending with a terminator
token), so beam search can only spell real items, and never an item the user already has.

Items that share a title share one path; the path stays open while any of its items is unknown to the user, and a
finished title maps back to all of its items, so two items with one title both stay reachable."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from transformers import LogitsProcessor


class TitleTrie:
    """Nodes of the token trie of `sequences[i]` (item i's title tokens + terminator); node 0 is the root."""

    def __init__(self, sequences: list[list[int]]) -> None:
        self.children: list[dict[int, int]] = [{}]
        self.paths: list[np.ndarray] = []  # nodes on item i's path (root excluded), in order
        self.leaf_items: dict[tuple[int, ...], list[int]] = {}
        for item, tokens in enumerate(sequences):
            node, path = 0, []
            for token in tokens:
                nxt = self.children[node].get(int(token))
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][int(token)] = nxt
                    self.children.append({})
                node = nxt
                path.append(node)
            self.paths.append(np.asarray(path, dtype=np.int64))
            self.leaf_items.setdefault(tuple(int(t) for t in tokens), []).append(item)
        self.n_nodes = len(self.children)
        self.items_under = np.bincount(np.concatenate(self.paths), minlength=self.n_nodes) if self.paths else None
        self._tokens = [np.fromiter(c.keys(), dtype=np.int64, count=len(c)) for c in self.children]
        self._nodes = [np.fromiter(c.values(), dtype=np.int64, count=len(c)) for c in self.children]
        self.longest = max((len(s) for s in sequences), default=0)

    def blocked(self, known: np.ndarray) -> np.ndarray:
        """Nodes every one of whose items is in `known` (an array of item indices): closed for that user."""
        counts = np.zeros(self.n_nodes, dtype=np.int64)
        if len(known):
            counts = np.bincount(np.concatenate([self.paths[i] for i in known]), minlength=self.n_nodes)
        return (counts >= self.items_under) & (self.items_under > 0)

    def node_of(self, prefix: list[int] | np.ndarray) -> int | None:
        """The node a token prefix leads to, or None when it leaves the trie."""
        node = 0
        for token in prefix:
            node = self.children[node].get(int(token))
            if node is None:
                return None
        return node

    def allowed(self, node: int, blocked: np.ndarray) -> np.ndarray:
        """Token ids that continue from `node` into a subtree with at least one item the user does not know."""
        return self._tokens[node][~blocked[self._nodes[node]]]

    def items(self, tokens: list[int] | np.ndarray) -> list[int]:
        """Items whose full token sequence is exactly `tokens` (empty when it names no title)."""
        return self.leaf_items.get(tuple(int(t) for t in tokens), [])


class TitleConstraint(LogitsProcessor):
    """Beam rows (user-major, `num_beams` per user) may only extend a title path open for their user; a finished
    beam (terminator emitted) or a dead end may only emit `pad`."""

    def __init__(self, trie: TitleTrie, history: sp.csr_matrix, prompt_len: int, num_beams: int, pad: int) -> None:
        self.trie, self.prompt_len, self.num_beams, self.pad = trie, prompt_len, num_beams, pad
        ptr = history.indptr
        self.blocked = [trie.blocked(history.indices[ptr[u] : ptr[u + 1]]) for u in range(history.shape[0])]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        prefixes = input_ids[:, self.prompt_len :].cpu().numpy()
        closed = torch.ones(scores.shape, dtype=torch.bool)
        for row, prefix in enumerate(prefixes):
            node = self.trie.node_of(prefix)
            allowed = self.trie.allowed(node, self.blocked[row // self.num_beams]) if node is not None else []
            if len(allowed):
                closed[row, torch.from_numpy(allowed)] = False
            else:
                closed[row, self.pad] = False
        return scores.masked_fill(closed.to(scores.device), float("-inf"))
