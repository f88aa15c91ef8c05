"""Next-item losses that stay bounded on large catalogues: full-softmax cross-entropy computed a chunk of positions
at a time (each chunk's logits recomputed in backward), and sampled softmax with uniform or popularity negatives and
the logQ correction (Bengio & Senécal 2008; Yi et al. 2019), as gSASRec-style training uses."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from recarena.errors import ConfigError

LOSSES = ("full", "sampled")
SAMPLERS = ("uniform", "popularity")


def check_loss(loss: str, chunk_bytes: int, negatives: int, sampler: str, item_ids: str) -> None:
    """Named errors for the loss settings that need no data (the negatives are checked against the catalogue later)."""
    if loss == "sampled" and item_ids != "atomic":
        raise ConfigError("model.loss=sampled draws negative items: it needs model.item_ids=atomic")
    if loss not in LOSSES:
        raise ConfigError(f"model.loss={loss!r}: choose one of {', '.join(LOSSES)}")
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise ConfigError(f"model.loss_chunk_bytes={chunk_bytes!r}: the logits budget of one loss chunk, >= 1 byte")
    if loss == "sampled":
        if isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 1:
            raise ConfigError(f"model.negatives={negatives!r}: the negatives per batch, a positive integer")
        if sampler not in SAMPLERS:
            raise ConfigError(f"model.sampler={sampler!r}: choose one of {', '.join(SAMPLERS)}")


def chunked_cross_entropy(
    hidden: torch.Tensor, labels: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor], vocab: int,
    chunk_bytes: int,
) -> torch.Tensor:  # fmt: skip
    """Mean cross-entropy over the positions whose label is not -100, with `head(hidden) -> logits` applied to at
    most `chunk_bytes / (4 · vocab)` positions at a time; equal to the full loss (and its gradients)."""
    keep = labels != -100
    states, targets = hidden[keep], labels[keep]
    per_chunk = max(1, chunk_bytes // (4 * vocab))
    if len(targets) <= per_chunk:
        return F.cross_entropy(head(states).float(), targets)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, len(targets), per_chunk):
        part = slice(start, start + per_chunk)
        total = total + checkpoint(_summed_ce, states[part], targets[part], head, use_reentrant=False)
    return total / len(targets)


def _summed_ce(states: torch.Tensor, targets: torch.Tensor, head: Callable) -> torch.Tensor:
    return F.cross_entropy(head(states).float(), targets, reduction="sum")


def sampled_cross_entropy(
    hidden: torch.Tensor, items: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, negatives: torch.Tensor,
    log_q: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """Softmax over each position's positive item and the batch's shared `negatives` (item indices), every logit
    corrected by −log q(item) (the sampling probability), a negative equal to the positive masked out.

    `hidden` (N, d) and `items` (N,) are the positions' states and target items; `weight`/`bias` the output rows of
    the items (row i = item i). With every item as a negative and uniform q this is the full softmax over items."""
    pos = (hidden * weight[items]).sum(-1) - log_q[items]
    neg = hidden @ weight[negatives].T - log_q[negatives]
    if bias is not None:
        pos, neg = pos + bias[items], neg + bias[negatives]
    neg = neg.masked_fill(negatives[None, :] == items[:, None], float("-inf"))
    logits = torch.cat([pos[:, None], neg], dim=1).float()
    return F.cross_entropy(logits, torch.zeros(len(items), dtype=torch.long, device=logits.device))


def draw_negatives(
    n_items: int, negatives: int, probabilities: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    """`negatives` item indices for one batch: every item when it asks for all of them, else drawn with replacement
    (uniformly, or from `probabilities`)."""
    if negatives >= n_items:
        return torch.arange(n_items)
    if probabilities is None:
        return torch.randint(n_items, (negatives,), generator=generator)
    return torch.multinomial(probabilities, negatives, replacement=True, generator=generator)
