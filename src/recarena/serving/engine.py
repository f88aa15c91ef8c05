"""A finished run held in memory for serving: raw ids in, explained top-K out, through the model's own test step.

The run is restored as `recarena.recommend` restores it (fit-once models re-fitted from the run's config, gradient
models from their best checkpoint, loaded once by a one-user Trainer test), so a known user's list equals
`recommend`'s. Requests then call the model's `test_step` directly: no Trainer per request, and several requests
in one call when the service batches them (`Engine.answer`; test steps are batch-invariant, so the lists are those
of one-at-a-time scoring). Raw ids are looked up by the data's one id rule (`Interactions.user_index`/`item_index`),
and items a user gave negative feedback on never appear in that user's lists."""

from __future__ import annotations

import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from omegaconf import OmegaConf

from recarena.data.interactions import Interactions
from recarena.models.masked_topk import rank_scores
from recarena.runs import Collect, UserSubset, eval_trainer, restore_run, run_stage
from recarena.topk import TopK

SESSION = -1  # user index of a history given with the request (recarena.models.recommenders.recommender.SESSION)


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


@dataclass
class Query:
    """One list the model must compute: a user index (SESSION for a history given with the request), that history
    as a 1-row CSR and as a sequence, the list's length and the items the user asked never to see."""

    index: int
    history: sp.csr_matrix
    sequence: np.ndarray
    k: int
    blocked: np.ndarray


class Engine:
    """The run's data and model, with lookups from raw ids; `lock` serialises model calls (the model is not
    re-entrant: eval_k and generation caches are per call)."""

    def __init__(self, run_dir: str | Path, data_dir: str | None = None, accelerator: str | None = "cpu") -> None:
        self.run_dir = Path(run_dir).resolve()
        run = restore_run(self.run_dir, data_dir)
        self.cfg, self.model = run.cfg, run.model
        self.data: Interactions = run.datamodule.data
        self.ks = [int(k) for k in self.cfg.eval.ks]
        # one Trainer test on one user loads the checkpoint (weights only), sets the model up and warms it
        self._tmp = tempfile.TemporaryDirectory(prefix="recarena-serve-")
        trainer = eval_trainer(self.cfg, [Collect()], self._tmp.name, accelerator)
        run_stage(trainer, "test", run, UserSubset(run.datamodule, [0]))
        self.model.eval()
        self.lock = threading.Lock()
        self.known = self.data.known("test")
        self.sequences = self.data.sequences("test")
        self.popularity = self.data.popularity()
        self.labels = [(str(i), self.data.item_label(n)) for n, i in enumerate(self.data.item_ids.tolist())]
        self.name = model_name(self.run_dir)

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def check_k(self, k: int) -> int:
        if not 1 <= int(k) <= self.n_items:
            raise RequestError(("k",), f"{k} is outside 1 … {self.n_items} (the catalogue's size)")
        return int(k)

    def item_of(self, raw: Any, loc: tuple[str | int, ...]) -> int:
        """Item index of a raw id (string or number, by the data's id rule); an unknown one is a RequestError."""
        index = self.data.item_index(raw)
        if index is None:
            raise RequestError(loc, f"item {raw!r} is not in the run's catalogue")
        return index

    def for_user(self, user: Any, k: int) -> Answer:
        """A known user's top-k with the run's test history (train + valid); an unknown one gets popularity."""
        query = self.user_query(user, k)
        return query if isinstance(query, Answer) else self.answer([query])[0]

    def for_history(self, raw_items: list[Any], k: int) -> Answer:
        """A session's top-k from an explicit history (raw ids, oldest first); see `history_query`."""
        query = self.history_query(raw_items, k)
        return query if isinstance(query, Answer) else self.answer([query])[0]

    def user_query(self, user: Any, k: int) -> Query | Answer:
        """The query for a known user's list, or the popularity answer for a user the run does not know."""
        k = self.check_k(k)
        index = self.data.user_index(user)
        if index is None:
            history = sp.csr_matrix((1, self.n_items), dtype=np.float32)
            reason = f"user {user!r} is not in the run's data"
            return Answer(self._popular(history, k), "popularity", reason)
        return Query(index, self._known_row(index), self.sequences[index], k, self.data.blocked(index))

    def history_query(self, raw_items: list[Any], k: int) -> Query | Answer:
        """The query for a session's history; an empty history, or a family that cannot score a new history
        (per-user parameters: mf, text user profiles), answers popularity over the unseen items, flagged."""
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
        return Query(SESSION, history, sequence, k, np.zeros(0, dtype=np.int64))

    def answer(self, queries: list[Query]) -> list[Answer]:
        """The explained lists of `queries`, scored in one test step per list length (`eval_k`, as `recommend` sets
        it: beam lists depend on their length; a user's blocked items are asked for on top and then dropped)."""
        groups: dict[int, list[int]] = defaultdict(list)
        for n, query in enumerate(queries):
            groups[max(query.k, *self.ks) + len(query.blocked)].append(n)
        answers: list[Answer | None] = [None] * len(queries)
        with self.lock, torch.inference_mode():
            for eval_k, members in groups.items():
                chosen = [queries[n] for n in members]
                batch = {
                    "users": torch.tensor([q.index for q in chosen]),
                    "history": sp.vstack([q.history for q in chosen], format="csr"),
                    "sequences": [q.sequence for q in chosen],
                }
                self.model.eval_k = eval_k
                top = self.model.test_step(batch, 0)
                for row, n in enumerate(members):
                    answers[n] = Answer(self._rows(top, row, queries[n]))
        return answers  # type: ignore[return-value]

    def _known_row(self, index: int) -> sp.csr_matrix:
        """The user's known items as a 1-row CSR (a view of the run's matrix, not scipy's fancy indexing)."""
        start, stop = self.known.indptr[index], self.known.indptr[index + 1]
        row = (self.known.data[start:stop], self.known.indices[start:stop], np.array([0, stop - start]))
        return sp.csr_matrix(row, shape=(1, self.n_items))

    def _popular(self, history: sp.csr_matrix, k: int) -> list[dict[str, Any]]:
        top = rank_scores(torch.from_numpy(self.popularity[None, :].astype(np.float32)), history, k)
        rows = []
        for rank, item in enumerate(top.items[0].tolist(), start=1):
            if item >= 0:
                count = int(self.popularity[item])
                rows.append(self._row(rank, item, float(count), f"popular: {count} users interacted with it"))
        return rows

    def _rows(self, top: TopK, row: int, query: Query) -> list[dict[str, Any]]:
        """The query's explained rows from row `row` of a batch's TopK: empty slots and blocked items dropped, the
        first k kept, ranked 1 … n. Called under `lock` (explanations read the model)."""
        items = top.items[row].cpu().numpy()
        scores = top.scores[row].float().cpu().numpy()
        keep = (items >= 0) & ~np.isin(items, query.blocked)
        items, scores = items[keep][: query.k], scores[keep][: query.k]
        why = self.model.explain_items(query.index, items, query.history, query.sequence) if len(items) else []
        return [self._row(r, int(i), float(s), w)
                for r, (i, s, w) in enumerate(zip(items, scores, why, strict=True), start=1)]  # fmt: skip

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
