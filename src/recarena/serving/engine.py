"""A finished run held in memory for serving: raw ids in, explained top-K out, through the model's own test step.

The run is restored as `recarena.recommend` restores it (fit-once models re-fitted from the run's config, gradient
models from their best checkpoint, loaded once by a one-user Trainer test), so a known user's list equals
`recommend`'s. Requests then call the model's `test_step` directly: no Trainer per request."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from omegaconf import OmegaConf

from recarena.data.interactions import Interactions
from recarena.eval import eval_trainer, restore_run, run_stage
from recarena.models.ranking import rank_scores
from recarena.recommend import UserSubset, _Collect
from recarena.reporting.samples import _plain
from recarena.topk import TopK

SESSION = -1  # user index of a history given with the request (recarena.models.recommenders.base.SESSION)


class RequestError(ValueError):
    """A request value the service cannot answer; `loc` names it as FastAPI does: ("k",), ("history", 2)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc))}: {message}")
        self.loc, self.message = loc, message


@dataclass
class Answer:
    """One recommendation answer: explained rows, and the fallback used (None: the model's own list)."""

    items: list[dict[str, Any]]
    fallback: str | None = None
    reason: str | None = None


class Engine:
    """The run's data and model, with lookups from raw ids; `lock` serialises scoring (the model is not
    re-entrant: eval_k and generation caches are per call)."""

    def __init__(self, run_dir: str | Path, data_dir: str | None = None, accelerator: str | None = "cpu") -> None:
        self.run_dir = Path(run_dir).resolve()
        run = restore_run(self.run_dir, data_dir)
        self.cfg, self.model = run.cfg, run.model
        self.data: Interactions = run.datamodule.data
        self.ks = [int(k) for k in self.cfg.eval.ks]
        # one Trainer test on one user loads the checkpoint (weights only), sets the model up and warms it
        self._tmp = tempfile.TemporaryDirectory(prefix="recarena-serve-")
        trainer = eval_trainer(self.cfg, [_Collect()], self._tmp.name, accelerator)
        run_stage(trainer, "test", run, UserSubset(run.datamodule, [0]))
        self.model.eval()
        self.lock = threading.Lock()
        self.user_index = {str(u): i for i, u in enumerate(self.data.user_ids.tolist())}
        self.item_index = {str(i): n for n, i in enumerate(self.data.item_ids.tolist())}
        self.known = self.data.known("test")
        self.sequences = self.data.sequences("test")
        self.popularity = self.data.popularity()
        self.labels = [(str(_plain(i)), self.data.item_label(n)) for n, i in enumerate(self.data.item_ids.tolist())]
        self.name = model_name(self.run_dir)

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def check_k(self, k: int) -> int:
        if not 1 <= int(k) <= self.n_items:
            raise RequestError(("k",), f"{k} is outside 1 … {self.n_items} (the catalogue's size)")
        return int(k)

    def item_of(self, raw: Any, loc: tuple[str | int, ...]) -> int:
        """Item index of a raw id (string or number as in the data); an unknown one is a RequestError at `loc`."""
        index = self.item_index.get(str(raw))
        if index is None:
            raise RequestError(loc, f"item {raw!r} is not in the run's catalogue")
        return index

    def for_user(self, user: Any, k: int) -> Answer:
        """A known user's top-k with the run's test history (train + valid); an unknown one gets popularity."""
        k = self.check_k(k)
        index = self.user_index.get(str(user))
        if index is None:
            history = sp.csr_matrix((1, self.n_items), dtype=np.float32)
            reason = f"user {user!r} is not in the run's data"
            return Answer(self._popular(history, k), "popularity", reason)
        history = self._known_row(index)
        sequence = self.sequences[index]
        top = self._score(index, history, sequence, k)
        return Answer(self._rows(top, index, history, sequence, k))

    def for_history(self, raw_items: list[Any], k: int) -> Answer:
        """A session's top-k from an explicit history (raw ids, oldest first); families that cannot score a new
        history (per-user parameters: mf, text user profiles) answer popularity over the unseen items, flagged."""
        k = self.check_k(k)
        items = np.asarray([self.item_of(raw, ("history", n)) for n, raw in enumerate(raw_items)], dtype=np.int64)
        sequence = items[np.sort(np.unique(items, return_index=True)[1])]  # first occurrence of each, in order
        history = sp.csr_matrix(
            (np.ones(len(sequence), dtype=np.float32), sequence, [0, len(sequence)]), shape=(1, self.n_items)
        )  # indices in the order seen: content's recency weights read a session's order from its row
        if not len(sequence):
            return Answer(self._popular(history, k), "popularity", "the history is empty")
        if not self.model.sessions:
            reason = f"{self.name} scores users by parameters learnt in training; a new history needs an update"
            return Answer(self._popular(history, k), "popularity", reason)
        top = self._score(SESSION, history, sequence, k)
        return Answer(self._rows(top, SESSION, history, sequence, k))

    def _known_row(self, index: int) -> sp.csr_matrix:
        """The user's known items as a 1-row CSR (a view of the run's matrix, not scipy's fancy indexing)."""
        start, stop = self.known.indptr[index], self.known.indptr[index + 1]
        row = (self.known.data[start:stop], self.known.indices[start:stop], np.array([0, stop - start]))
        return sp.csr_matrix(row, shape=(1, self.n_items))

    def _score(self, index: int, history: sp.csr_matrix, sequence: np.ndarray, k: int) -> TopK:
        batch = {"users": torch.tensor([index]), "history": history, "sequences": [sequence]}
        with self.lock, torch.inference_mode():
            self.model.eval_k = max(k, *self.ks)  # as recommend: beam lists depend on their length
            return self.model.test_step(batch, 0)

    def _popular(self, history: sp.csr_matrix, k: int) -> list[dict[str, Any]]:
        top = rank_scores(torch.from_numpy(self.popularity[None, :].astype(np.float32)), history, k)
        rows = []
        for rank, item in enumerate(top.items[0].tolist(), start=1):
            if item >= 0:
                count = int(self.popularity[item])
                rows.append(self._row(rank, item, float(count), f"popular: {count} users interacted with it"))
        return rows

    def _rows(self, top: TopK, user: int, history: sp.csr_matrix, sequence: np.ndarray, k: int) -> list[dict]:
        items = top.items[0, :k].cpu().numpy()
        scores = top.scores[0, :k].float().cpu().numpy()
        ranks = [rank for rank, item in enumerate(items.tolist(), start=1) if item >= 0]
        chosen = items[items >= 0]
        with self.lock:
            why = self.model.explain_items(user, chosen, history, sequence) if len(chosen) else []
        return [self._row(r, int(i), float(scores[r - 1]), w) for r, i, w in zip(ranks, chosen, why, strict=True)]

    def _row(self, rank: int, item: int, score: float, explanation: str) -> dict[str, Any]:
        raw_id, title = self.labels[item]
        return {"rank": rank, "item": raw_id, "title": title, "score": score, "explanation": explanation}


def model_name(run_dir: Path) -> str:
    """The run's model choice (hydra.runtime.choices.model), or its folder name without a Hydra record."""
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    choice = (
        OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.choices.model") if hydra_yaml.exists() else None
    )
    return str(choice or run_dir.name)
