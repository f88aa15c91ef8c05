"""TIGER-style semantic item ids: residual k-means codes of an item embedding, collisions resolved by one more code.

Items that are close in the embedding share code prefixes, so a generated prefix narrows the search to similar
items. `source=random` gives random unique codes of the same shape: the baseline that shows what semantics add."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from sklearn.cluster import KMeans

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.models.generative.item_tokens import ItemTokens

log = logging.getLogger(__name__)
SOURCES = ("text", "cf", "random")


@dataclass(frozen=True)
class CodebookReport:
    """How well the codebooks are used: distinct codes per level, and items that needed the extra code."""

    used: list[int]
    sizes: list[int]
    collided_items: int

    def as_metrics(self) -> dict[str, float]:
        out = {f"codebook/level{i}_usage": u / s for i, (u, s) in enumerate(zip(self.used, self.sizes, strict=True))}
        out["codebook/collided_items"] = float(self.collided_items)
        return out


def residual_kmeans(vectors: np.ndarray, sizes: list[int], seed: int = 0) -> np.ndarray:
    """Codes (n_items, len(sizes)): level l clusters the residual left after levels < l."""
    residual = np.asarray(vectors, dtype=np.float64).copy()
    codes = np.zeros((len(residual), len(sizes)), dtype=np.int64)
    for level, size in enumerate(sizes):
        k = min(int(size), len(residual))
        kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed + level).fit(residual)
        codes[:, level] = kmeans.labels_
        residual -= kmeans.cluster_centers_[kmeans.labels_]
    return codes


def resolve_collisions(codes: np.ndarray, dedup: bool, key: str) -> tuple[np.ndarray, int]:
    """Append a level that numbers items sharing a code tuple (0, 1, ...), or fail when `dedup` is off."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    collided = int(counts[counts > 1].sum())
    if not dedup:
        if collided:
            raise ConfigError(
                f"{key}: the codebooks give {collided} items a code another item has; enlarge {key}.levels "
                f"or set {key}.dedup=true"
            )
        return codes, 0
    order = np.argsort(inverse, kind="stable")
    rank = np.empty(len(codes), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(len(codes)) - np.repeat(starts, counts)
    return np.column_stack([codes, rank]), collided


def item_vectors(data: Interactions, source: str, dim: int, seed: int, text_encoder=None) -> np.ndarray:
    """The embedding the codes are built from: item text (MiniLM), collaborative (SVD of train), or random."""
    if source == "text":
        from recarena.text.encoders import MiniLMEncoder
        from recarena.text.item_text import item_texts

        encoder = text_encoder or MiniLMEncoder(show_progress=False)
        return np.asarray(encoder.encode(item_texts(data, key="model.semantic.item_template")), dtype=np.float64)
    if source == "cf":
        train = sp.csr_matrix(data.train, dtype=np.float64)
        k = max(1, min(dim, min(train.shape) - 1))
        _, s, vt = svds(train, k=k, random_state=seed)
        return (vt.T * s).astype(np.float64)
    return np.random.default_rng(seed).normal(size=(data.n_items, dim))


def semantic_tokens(
    data: Interactions,
    levels: list[int],
    source: str = "text",
    dedup: bool = True,
    seed: int = 0,
    key: str = "model.semantic",
    text_encoder=None,
) -> tuple[ItemTokens, CodebookReport]:
    """Build unique code tuples for every item and the token vocabulary over them."""
    if source not in SOURCES:
        raise ConfigError(f"{key}.source={source!r}: choose one of {', '.join(SOURCES)}")
    if not levels or any(int(s) < 2 for s in levels):
        raise ConfigError(f"{key}.levels={list(levels)!r}: give at least one codebook of size >= 2")
    sizes = [int(s) for s in levels]
    if source == "random":
        codes = _random_unique_codes(data.n_items, sizes, seed) if np.prod(sizes) >= data.n_items else None
        if codes is None:
            codes = np.random.default_rng(seed).integers(0, sizes, size=(data.n_items, len(sizes)))
    else:
        codes = residual_kmeans(item_vectors(data, source, 64, seed, text_encoder), sizes, seed)
    codes, collided = resolve_collisions(codes, dedup, key)
    all_sizes = sizes + ([int(codes[:, -1].max()) + 1] if codes.shape[1] > len(sizes) else [])
    tokens = ItemTokens.from_levels(codes, all_sizes)
    report = CodebookReport([int(np.unique(codes[:, i]).size) for i in range(codes.shape[1])], all_sizes, collided)
    log.info("semantic ids (%s): levels %s, codes used %s, %d items shared a prefix", source, all_sizes,
             report.used, collided)  # fmt: skip
    return tokens, report


def _random_unique_codes(n_items: int, sizes: list[int], seed: int) -> np.ndarray:
    """Distinct random code tuples (sampled without replacement from the full code space)."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(np.prod(sizes)), size=n_items, replace=False)
    return np.stack(np.unravel_index(flat, sizes), axis=1).astype(np.int64)
