"""From generated title text to catalogue items: grounding by embedding similarity, and the error rates of outputs.

Embedding grounding (BIGRec-style): each generated title and every catalogue title are embedded by one sentence
encoder; an item's score is its best cosine similarity to any of the user's generated outputs, plus
`popularity_weight` × its log train popularity scaled to [0, 1]; the user's known items are masked and the top K
form the list. Free text that names no title still lands on the nearest real items.

Error rates (as RecLM-eval reports them) classify every raw output of a title generator, before grounding, into one
of four classes checked in this order: a repeat of an earlier output of the same user, a string that is no
catalogue title, a title whose items the user all has (a history repeat), or a valid new title."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from recarena.models.masked_topk import rank_scores
from recarena.topk import GENERATION_ERRORS, TopK


def normalise_title(text: str) -> str:
    """The form titles are compared in: whitespace collapsed, case kept."""
    return " ".join(str(text).split())


def output_errors(outputs: Sequence[str], index: dict[str, list[int]], known: set[int]) -> np.ndarray:
    """Each share of `outputs` (one user's generated titles, best first) in GENERATION_ERRORS order: output_repeat,
    not_in_catalogue, history_repeat. `index` maps a normalised title to its items. No outputs: all zero."""
    counts = dict.fromkeys(GENERATION_ERRORS, 0)
    seen: set[str] = set()
    for text in outputs:
        name = normalise_title(text)
        items = index.get(name)
        if name in seen:
            counts["output_repeat"] += 1
        elif not items:
            counts["not_in_catalogue"] += 1
        elif all(i in known for i in items):
            counts["history_repeat"] += 1
        seen.add(name)
    return np.asarray([counts[e] for e in GENERATION_ERRORS], dtype=np.float32) / max(1, len(outputs))


class EmbeddingGrounding:
    """Nearest catalogue titles to generated text, by an HFEncoder's L2-normalised sentence vectors (the catalogue's
    through its cache, generated outputs never cached)."""

    def __init__(self, encoder, titles: Sequence[str], popularity: np.ndarray, popularity_weight: float = 0.0) -> None:
        self.encoder = encoder
        self.titles = torch.from_numpy(np.asarray(encoder.encode(list(titles)), dtype=np.float32))
        counts = np.log1p(np.asarray(popularity, dtype=np.float64))
        self.prior = torch.from_numpy((counts / max(counts.max(), 1e-12)).astype(np.float32))
        self.popularity_weight = float(popularity_weight)

    def scores(self, outputs: Sequence[Sequence[str]]) -> torch.Tensor:
        """(users, items): each item's best cosine similarity to one of the user's outputs, plus the popularity
        prior. A user without outputs scores by the prior alone."""
        flat = [normalise_title(t) for texts in outputs for t in texts]
        encoded = self.encoder.encode(flat, cache=False) if flat else np.zeros((0, self.titles.shape[1]))
        vectors = torch.from_numpy(np.asarray(encoded, dtype=np.float32))
        rows, start = [], 0
        for texts in outputs:
            if texts:
                rows.append((vectors[start : start + len(texts)] @ self.titles.T).max(dim=0).values)
            else:
                rows.append(torch.zeros(self.titles.shape[0]))
            start += len(texts)
        return torch.stack(rows) + self.popularity_weight * self.prior

    def rank(self, outputs: Sequence[Sequence[str]], history: sp.csr_matrix, k: int) -> TopK:
        """The top-k unknown items of each user (row b of `history` ↔ outputs[b]); no slot is invalid."""
        top = rank_scores(self.scores(outputs), history, k)
        return top._replace(invalid=torch.zeros(len(outputs)))
