"""docs/protocol.md §4 metrics against hand-computed values, edge cases included."""

import math

import numpy as np
import pytest

from recarena.evaluation.metrics import as_truth_matrix, coverage, gini, hits, ranking_metrics


def test_recall_precision_ndcg_hand_computed():
    topk = np.array([[3, 1, 7]])  # user 0 recommended items 3, 1, 7
    truth = [{1, 9}]  # two relevant items, one hit at rank 2
    m = ranking_metrics(topk, truth, n_items=10, k=3)
    assert m["recall@3"] == pytest.approx(1 / 2)
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["hit@3"] == 1.0
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m["mrr@3"] == pytest.approx(1 / 2)
    assert m["map@3"] == pytest.approx((1 / 2) / 2)  # precision@2 at the hit, over min(3, |T|) = 2


def test_two_users_are_averaged_and_k_cuts_the_list():
    topk = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    truth = [{0, 2}, {7}]
    m = ranking_metrics(topk, truth, n_items=8, k=[2, 4])
    # user 0: hits at ranks 1 and 3; user 1: hit at rank 4
    assert m["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["recall@4"] == pytest.approx((1 + 1) / 2)
    assert m["precision@4"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert m["hit@2"] == pytest.approx(1 / 2)
    ndcg_u0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_u1 = (1 / math.log2(5)) / 1
    assert m["ndcg@4"] == pytest.approx((ndcg_u0 + ndcg_u1) / 2)
    assert m["mrr@4"] == pytest.approx((1 + 1 / 4) / 2)
    map_u0 = (1 / 1 + 2 / 3) / 2
    map_u1 = (1 / 4) / 1
    assert m["map@4"] == pytest.approx((map_u0 + map_u1) / 2)


def test_hits_mark_relevant_ranks_whatever_the_lookup_block():
    topk = np.array([[3, 1, -1], [0, 2, 4], [4, 3, 2]])  # -1: an empty slot
    truth = as_truth_matrix([{1, 3}, {4}, {0}], n_items=5)
    expected = np.array([[True, True, False], [False, False, True], [False, False, False]])
    for block_bytes in (1, 5, 2**24):  # one user per block, one user of 5 items per block, all at once
        assert np.array_equal(hits(topk, truth, block_bytes=block_bytes), expected)


def test_no_hit_gives_zero_everywhere():
    m = ranking_metrics(np.array([[1, 2, 3]]), [{0}], n_items=5, k=3)
    for name in ("recall@3", "precision@3", "hit@3", "ndcg@3", "mrr@3", "map@3"):
        assert m[name] == 0.0


def test_fewer_relevant_items_than_k_normalises_by_the_ideal_list():
    # one relevant item, found at rank 1: perfect ndcg and map even though precision is 1/5
    m = ranking_metrics(np.array([[4, 0, 1, 2, 3]]), [{4}], n_items=5, k=5)
    assert m["ndcg@5"] == pytest.approx(1.0)
    assert m["map@5"] == pytest.approx(1.0)
    assert m["precision@5"] == pytest.approx(1 / 5)
    assert m["recall@5"] == pytest.approx(1.0)


def test_more_relevant_items_than_k_caps_the_ideal_at_k():
    # 4 relevant, K = 2, both slots hit: recall 2/4 but ndcg and map are perfect
    m = ranking_metrics(np.array([[0, 1]]), [{0, 1, 2, 3}], n_items=6, k=2)
    assert m["recall@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx(1.0)
    assert m["map@2"] == pytest.approx(1.0)


def test_empty_slots_never_count():
    # -1 is an empty slot (fewer recommendable items than K): no hit, no coverage
    topk = np.array([[2, -1, -1]])
    m = ranking_metrics(topk, [{2}], n_items=4, k=3)
    assert m["recall@3"] == 1.0
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["coverage@3"] == pytest.approx(1 / 4)


def test_coverage_is_over_the_union_of_all_lists():
    topk = np.array([[0, 1], [1, 2], [1, 0]])
    assert coverage(topk, n_items=10, k=2) == pytest.approx(3 / 10)
    assert coverage(topk, n_items=10, k=1) == pytest.approx(2 / 10)  # items 0 and 1


def test_gini_even_and_concentrated():
    even = np.array([[0], [1], [2], [3]])
    assert gini(even, n_items=4, k=1) == pytest.approx(0.0)
    one_item = np.array([[2], [2], [2], [2]])
    # counts sorted [0, 0, 0, 4]: sum (2j - n - 1) c_j / (n sum c) = (3 * 4) / (4 * 4)
    assert gini(one_item, n_items=4, k=1) == pytest.approx(3 / 4)


def test_novelty_arp_and_ild_hand_computed():
    popularity = np.array([8, 2, 1, 0])  # train counts; n_users = 8
    features = np.array([[1, 0], [0, 1], [1, 1], [1, 0]], dtype=float)
    m = ranking_metrics(
        np.array([[0, 1]]), [{1}], n_items=4, k=2, popularity=popularity, n_users=8, item_features=features
    )
    assert m["novelty@2"] == pytest.approx((-math.log2(8 / 8) - math.log2(2 / 8)) / 2)
    assert m["arp@2"] == pytest.approx((8 + 2) / 2)
    assert m["ild@2"] == pytest.approx(1.0)  # orthogonal genres: cosine 0
    m3 = ranking_metrics(
        np.array([[0, 2, 3]]), [{1}], n_items=4, k=3, popularity=popularity, n_users=8, item_features=features
    )
    c = 1 / math.sqrt(2)
    # pairs (0,2): 1 - c, (0,3): 0, (2,3): 1 - c
    assert m3["ild@3"] == pytest.approx((2 * (1 - c)) / 3)
    # item 3 never seen in train counts as popularity 1
    assert m3["novelty@3"] == pytest.approx((0 - math.log2(1 / 8) - math.log2(1 / 8)) / 3)


def test_ild_keeps_double_precision_with_float32_genre_flags():
    """Genre flags arrive as float32; norms like sqrt(3) must still be taken in float64 (found ~1e-8 off before)."""
    features = np.array([[1, 1, 0], [1, 1, 1]], dtype=np.float32)
    m = ranking_metrics(
        np.array([[0, 1]]), [{0}], n_items=2, k=2, popularity=np.array([1, 1]), n_users=2, item_features=features
    )
    assert m["ild@2"] == pytest.approx(1 - 2 / (math.sqrt(2) * math.sqrt(3)), rel=0, abs=1e-15)


def test_empty_ground_truth_is_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        ranking_metrics(np.array([[0]]), [set()], n_items=2, k=1)
