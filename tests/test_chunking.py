"""Full ranking runs in user chunks sized by `eval.max_chunk_bytes`; the metrics must not depend on the chunk size."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recarena.models.recommenders.knn import ItemKNN, UserKNN
from recarena.models.recommenders.similarity import BLOCK_CELL_BYTES, cosine_topk

N_ITEMS = 200  # data=synthetic's default catalogue; one user's dense scores cost N_ITEMS * 16 bytes in the budget


@pytest.mark.parametrize("model, recommender", [("itemcf", ItemKNN), ("usercf", UserKNN)])
def test_metrics_are_identical_across_memory_budgets(run_train, monkeypatch, model, recommender):
    rows_per_call: list[int] = []
    score = recommender.score

    def counting_score(self, users, history):
        rows_per_call.append(len(users))
        return score(self, users, history)

    monkeypatch.setattr(recommender, "score", counting_score)
    runs = []
    # a budget below one user's scores (batch size 1), about seven users' worth, and the default (256 MiB)
    for budget, most_rows in ((1, 1), (N_ITEMS * 16 * 7, 7), (None, 512)):
        rows_per_call.clear()
        extra = [] if budget is None else [f"eval.max_chunk_bytes={budget}"]
        runs.append(run_train(f"model={model}", "data=synthetic", "logger=none", *extra)[0])
        assert max(rows_per_call) <= most_rows
    assert max(rows_per_call) > 7  # the default budget really scored bigger chunks
    for stage in ("val", "test"):
        for other in runs[1:]:
            assert other[stage].keys() == runs[0][stage].keys()
            for name, value in runs[0][stage].items():
                assert other[stage][name] == pytest.approx(value, abs=1e-9, rel=0), (stage, name)


def test_similarity_blocks_sized_by_the_byte_budget_give_the_same_neighbours():
    """cosine_topk bounds its dense (rows × len(right)) block by max_block_bytes (UserKNN: rows × n_users)."""
    rng = np.random.default_rng(0)
    left = sp.random(57, 40, density=0.2, format="csr", random_state=1, data_rvs=lambda n: rng.integers(1, 3, n))
    right = sp.random(90, 40, density=0.2, format="csr", random_state=2, data_rvs=lambda n: rng.integers(1, 3, n))
    default = cosine_topk(left, right, 7, shrink=1.0)
    threads = torch.get_num_threads()
    try:
        for workers in (1, 2):  # blocks computed one after the other, then on two threads at once
            torch.set_num_threads(workers)
            for budget in (1, BLOCK_CELL_BYTES * 90 * 5):  # one row per block, then five (per worker)
                small = cosine_topk(left, right, 7, shrink=1.0, max_block_bytes=budget)
                assert np.array_equal(small.indptr, default.indptr)
                assert np.array_equal(small.indices, default.indices)
                assert np.array_equal(small.data, default.data)
    finally:
        torch.set_num_threads(threads)
