"""The contract between models and evaluation: a top-K list per user. Both sides import it from here, so the
evaluation never depends on the model package."""

from __future__ import annotations

from typing import NamedTuple

import torch


class TopK(NamedTuple):
    """Recommended item indices (users × K, best first; -1 = empty slot) and their scores.

    `invalid` (generative models) is each user's share of generated outputs that were not unknown items."""

    items: torch.Tensor
    scores: torch.Tensor
    invalid: torch.Tensor | None = None


def cat_topk(parts: list[TopK]) -> TopK:
    """Stack the TopK of consecutive user chunks."""
    invalid = None if parts[0].invalid is None else torch.cat([p.invalid for p in parts])
    return TopK(torch.cat([p.items for p in parts]), torch.cat([p.scores for p in parts]), invalid)
