"""The contract between models and evaluation: a top-K list per user. Both sides import it from here, so the
evaluation never depends on the model package."""

from __future__ import annotations

from typing import NamedTuple

import torch

# title generators: the classes of a raw generated output that is not a valid new title (a partition, in this order)
GENERATION_ERRORS = ("output_repeat", "not_in_catalogue", "history_repeat")


class TopK(NamedTuple):
    """Recommended item indices (users × K, best first; -1 = empty slot) and their scores.

    `invalid` (generative models) is each user's share of list slots whose generated output was not an unknown item.
    `errors` (title generators) is each user's share of raw outputs in each class of GENERATION_ERRORS (users × 3)."""

    items: torch.Tensor
    scores: torch.Tensor
    invalid: torch.Tensor | None = None
    errors: torch.Tensor | None = None


def cat_topk(parts: list[TopK]) -> TopK:
    """Stack the TopK of consecutive user chunks."""

    def cat(name: str) -> torch.Tensor | None:
        return None if getattr(parts[0], name) is None else torch.cat([getattr(p, name) for p in parts])

    return TopK(cat("items"), cat("scores"), cat("invalid"), cat("errors"))
