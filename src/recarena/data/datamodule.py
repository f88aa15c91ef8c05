"""RecDataModule: loads, preprocesses and splits once per run; serves training views and the shared eval loaders."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytorch_lightning as pl_lightning
import torch
from torch.utils.data import DataLoader, RandomSampler

from recarena.data import sources
from recarena.data.cache import Notes, Processed, cache_folder, cache_key, input_files, read_cached, write_cached
from recarena.data.events import EventKinds, fold_events, read_events
from recarena.data.interactions import Interactions, Stage
from recarena.data.preprocess import preprocess
from recarena.data.views import EvalUsers
from recarena.errors import ConfigError

UNTIMED_SPLITS = ("random_ratio",)  # the splits that never read time (docs/protocol.md §2)

log = logging.getLogger(__name__)


class RecDataModule(pl_lightning.LightningDataModule):
    """One dataset, one split, shared by every family.

    Parameters
    ----------
    source: "ml100k", "atomic", "table" or "synthetic" (docs/protocol.md §1); its options come as keyword arguments.
    split: a function frame -> frame with `part` (a `_partial_` of recarena.data.splits).
    eval_batch_size: users per evaluation batch, lowered so one batch's dense scores fit `max_chunk_bytes`.
    """

    def __init__(
        self,
        source: str,
        split: Callable[..., pl.DataFrame],
        data_dir: str | Path = "data",
        name: str | None = None,
        seed: int = 0,
        min_rating: float | None = None,
        min_user_interactions: int = 0,
        min_item_interactions: int = 0,
        rating_scale: list[float] | None = None,
        max_user_interactions: int | None = None,
        cache: bool = True,
        eval_batch_size: int = 512,
        max_chunk_bytes: int = 256 * 2**20,
        num_workers: int = 0,
        max_users: int | None = None,
        events: str | None = None,
        event_kinds: dict | None = None,
        **source_options: Any,
    ) -> None:
        super().__init__()
        self.source, self.split_fn, self.data_dir = source, split, Path(data_dir)
        self.name = name or source
        self.seed = seed
        self.min_rating = min_rating
        self.min_user_interactions, self.min_item_interactions = min_user_interactions, min_item_interactions
        self.rating_scale = _scale(rating_scale)
        self.max_user_interactions = max_user_interactions
        self.cache = bool(cache)
        self.requested_eval_batch_size, self.max_chunk_bytes = int(eval_batch_size), int(max_chunk_bytes)
        if self.requested_eval_batch_size < 1:
            raise ConfigError(f"eval.batch_size={eval_batch_size!r}: must be >= 1")
        if self.max_chunk_bytes < 1:
            raise ConfigError(f"eval.max_chunk_bytes={max_chunk_bytes!r}: must be >= 1")
        self.num_workers = num_workers
        if max_users is not None and (isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 1):
            raise ConfigError(f"eval.max_users={max_users!r}: must be a positive integer, or null for every user")
        self.max_users = max_users
        self.events = events  # an events table folded into train after the split (written by recarena.update)
        self.event_kinds = EventKinds.from_config(event_kinds)  # its kinds' vocabulary (recorded by recarena.update)
        self.source_options = {k: v for k, v in source_options.items() if k != "_target_"}
        self.data: Interactions | None = None
        self.timing: dict[str, float] = {}  # load_seconds (read + preprocess), split_seconds (split + CSR build)

    def prepare_data(self) -> None:
        """Download once (rank 0 only under DDP): the sources fetched from a pinned archive, unless `data.path`."""
        self.fetched_folder()

    def fetched_folder(self) -> Path | None:
        """The hash-checked folder of a fetched source (fetching it first if needed); None when the data is local."""
        if self.source in sources.FETCHERS and self.source_options.get("path") is None:
            return sources.FETCHERS[self.source](self.data_dir)
        return None

    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            self.data = self.load()

    def load(self) -> Interactions:
        """Read → preprocess → split → Interactions (pure given the config and seed); stage times go to `timing`."""
        start = time.perf_counter()
        processed = self.processed()
        pre = processed.pre
        self.timing["load_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        frame = self.split_fn(pre.frame, seed=self.seed)
        counts = dict(pre.counts)
        for part, label in enumerate(("train", "valid", "test")):
            counts[label] = int((frame["part"] == part).sum())
        log.info("%s split: %s", self.name, counts)
        data = Interactions.build(
            frame, pre.user_ids, pre.item_ids, processed.items, processed.users, counts, self.name, processed.trust
        )
        data.max_users, data.sample_seed = self.max_users, self.seed
        if self.events:
            data, _, _ = fold_events(data, read_events(self.events), str(self.events), self.event_kinds)
        self.timing["split_seconds"] = time.perf_counter() - start
        return data

    def processed(self) -> Processed:
        """Read and preprocess the source, or read the result from the processed-data cache (`data.cache`), keyed by
        the source, its options and input files' hashes and the preprocessing settings."""
        cfg = {"source": self.source, **self.source_options, "seed": self.seed}
        options = {k: v for k, v in sources.reader_options(cfg, self.data_dir).items() if k != "data_dir"}
        settings = {
            "min_rating": self.min_rating,
            "min_user_interactions": self.min_user_interactions,
            "min_item_interactions": self.min_item_interactions,
            "rating_scale": self.rating_scale,
            "max_user_interactions": self.max_user_interactions,
        }
        folder = None
        if self.cache:
            files = input_files(options, self.fetched_folder())
            folder = cache_folder(self.data_dir, self.source, cache_key(self.source, options, settings, files))
            hit = read_cached(folder)
            if hit is not None:
                for note in hit.notes:  # the repairs stay visible on every run
                    log.warning("%s [as preprocessed for the cache %s]", note, folder.name)
                log.info("processed data read from the cache %s: %s", folder, hit.pre.counts)
                self._check_time(hit.timestamps, hit.origin)
                return hit
        raw = sources.load_source(cfg, self.data_dir)
        self._check_time(raw.timestamps, raw.origin)
        interactions = raw.interactions
        if not raw.timestamps:  # rows keep their file order (timestamp 0 for all): nothing is dropped as missing
            interactions = interactions.with_columns(timestamp=pl.lit(0.0, dtype=pl.Float64))
        with Notes("recarena.data.preprocess") as notes:
            pre = preprocess(interactions, origin=raw.origin, **settings)
        processed = Processed(
            pre, raw.items, raw.users, raw.origin, raw.timestamps, tuple(notes.messages), raw.trust
        )
        if folder is not None:
            write_cached(folder, processed, {"source": self.source, "options": options, "settings": settings})
            log.info("processed data cached in %s", folder)
        return processed

    def _check_time(self, timestamps: bool, origin: str) -> None:
        """A source without time (Last.fm plays) allows only the splits that ignore time; the others are refused."""
        split = getattr(self.split_fn, "func", self.split_fn).__name__
        if not timestamps and split not in UNTIMED_SPLITS:
            raise ConfigError(
                f"split={split}: data={self.name} has no timestamps ({origin}), and {split} orders or cuts "
                f"interactions by time; use split={' or split='.join(UNTIMED_SPLITS)}"
            )

    @property
    def eval_batch_size(self) -> int:
        """Users per evaluation batch: the requested size, capped so dense scores (+ masks) fit the byte budget."""
        assert self.data is not None, "setup() first"
        per_user = self.data.n_items * 4 * 4  # float32 scores plus comparison masks of the top-k selection
        return max(1, min(self.requested_eval_batch_size, self.max_chunk_bytes // per_user))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Evaluation batches move only their user tensor: history (CSR) and sequences (numpy) stay on the host,
        and Lightning's element-by-element walk over the sequence list (a large share of CPU eval time) is skipped."""
        if isinstance(batch, dict) and {"users", "history", "sequences"} <= batch.keys():
            return {**batch, "users": batch["users"].to(device)}
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def train_dataloader(self) -> DataLoader:
        view = self.trainer.lightning_module.train_view(self.data)
        shuffle = getattr(view, "shuffle", False)
        return DataLoader(
            view,
            batch_size=getattr(view, "batch_size", 1),
            sampler=EpochSeededSampler(view, self.seed) if shuffle else None,
            collate_fn=view.collate,
            num_workers=self.num_workers,
        )

    def eval_dataloader(self, stage: Stage) -> DataLoader:
        """Evaluated users of `stage` in ascending order, with their known items."""
        users = EvalUsers(self.data, stage)
        return DataLoader(users, batch_size=self.eval_batch_size, shuffle=False, collate_fn=users.collate)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")


class EpochSeededSampler(RandomSampler):
    """Shuffles with a generator seeded by (seed, epoch), so a run resumed from a checkpoint sees the same data
    order in its remaining epochs as the uninterrupted run (the global torch RNG is not checkpointed). Lightning
    calls `set_epoch` before every training epoch; under DDP it swaps this for a DistributedSampler (a
    RandomSampler subclass), which seeds by epoch the same way."""

    def __init__(self, data_source, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


def _scale(value: Any) -> tuple[float, float] | None:
    """`data.rating_scale` as (lowest, highest), or a ConfigError naming the key."""
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"data.rating_scale={value!r}: expected [lowest, highest], e.g. [1, 5]") from error
    return low, high  # the order is checked where it is used (preprocess)
