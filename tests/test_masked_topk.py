"""Scores → top-K: known items masked, ties broken by ascending item index, empty slots marked -1."""

import numpy as np
import scipy.sparse as sp
import torch

from recarena.models.masked_topk import rank_scores


def test_ties_go_to_the_lower_item_index():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0]])
    top = rank_scores(scores, sp.csr_matrix((1, 5)), k=2)
    assert top.items.tolist() == [[1, 2]]  # three items tie at 3.0: indices 1 and 2 win
    top = rank_scores(scores, sp.csr_matrix((1, 5)), k=4)
    assert top.items.tolist() == [[1, 2, 4, 3]]


def test_known_items_are_never_recommended():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    history = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=np.float32))
    top = rank_scores(scores, history, k=2)
    assert top.items.tolist() == [[1, 3], [0, 2]]


def test_fewer_recommendable_items_than_k_leaves_empty_slots():
    history = sp.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32))
    top = rank_scores(torch.tensor([[3.0, 2.0, 1.0]]), history, k=3)
    assert top.items.tolist() == [[2, -1, -1]]


def test_nan_scores_rank_last_and_input_is_not_modified():
    scores = torch.tensor([[float("nan"), 0.5, 0.1]])
    before = scores.clone()
    top = rank_scores(scores, sp.csr_matrix((1, 3)), k=2)
    assert top.items.tolist() == [[1, 2]]
    assert torch.equal(torch.isnan(scores), torch.isnan(before))


def test_matches_a_full_stable_sort_on_random_scores():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(50, 40)).astype(np.float32)  # many ties
    history = sp.random(50, 40, density=0.2, format="csr", random_state=1)
    top = rank_scores(torch.from_numpy(scores), history, k=10).items.numpy()
    masked = scores.copy()
    masked[history.nonzero()] = -np.inf
    expected = np.stack([np.lexsort((np.arange(40), -row))[:10] for row in masked])
    assert np.array_equal(top, expected)
