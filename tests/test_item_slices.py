"""Item-side slices (docs/protocol.md §4): test interactions grouped by their item's train popularity — unseen,
tail, head — with recall, ndcg and the share of each slice's items that some list contains."""

import numpy as np
import polars as pl
import pytest

from recarena.data.splits import TEST
from recarena.errors import ConfigError
from recarena.evaluation.callback import RecEvalCallback
from recarena.evaluation.metrics import as_truth_matrix, item_slice_metrics, item_slices

POPULARITY = np.array([5, 3, 3, 1, 0, 0])  # train counts of items 0..5


def test_slices_by_train_popularity_with_ties_at_the_boundary_in_the_head():
    slices, threshold = item_slices(POPULARITY, head_share=0.25)  # ceil(0.25 * 4 seen items) = 1 head item
    assert slices.tolist() == [2, 1, 1, 1, 0, 0] and threshold == 5  # 2 head, 1 tail, 0 unseen
    slices, threshold = item_slices(POPULARITY, head_share=0.5)  # 2 head items: count >= 3, the tie joins
    assert slices.tolist() == [2, 2, 2, 1, 0, 0] and threshold == 3
    assert item_slices(POPULARITY, head_share=0.0)[0].tolist() == [1, 1, 1, 1, 0, 0]


def test_slice_recall_ndcg_and_listed_share_hand_computed():
    slices, _ = item_slices(POPULARITY, head_share=0.25)  # head {0}, tail {1, 2, 3}, unseen {4, 5}
    topk = np.array([[4, 1], [0, 2]])
    truth = as_truth_matrix([{0, 4}, {3, 5}], n_items=6)
    m = item_slice_metrics(topk, truth, [1, 2], slices)
    # unseen truth: user 0 {4} (hit at rank 1), user 1 {5} (missed) → recall 1/2, ndcg (1 + 0) / 2
    assert m["recall@2/unseen"] == pytest.approx(0.5) and m["ndcg@2/unseen"] == pytest.approx(0.5)
    assert m["recall@1/unseen"] == pytest.approx(0.5)
    # tail truth: only user 1 has some ({3}), not listed → 0, not an error; head truth: only user 0 ({0}), missed
    assert m["recall@2/tail"] == 0.0 and m["ndcg@2/tail"] == 0.0 and m["recall@2/head"] == 0.0
    # listed: the top-2 lists hold {4, 1, 0, 2}: 1 of 2 unseen items, 2 of 3 tail items, the 1 head item
    assert m["listed@2/unseen"] == pytest.approx(1 / 2)
    assert m["listed@2/tail"] == pytest.approx(2 / 3) and m["listed@2/head"] == 1.0
    assert m["listed@1/tail"] == 0.0  # the top-1 lists hold {4, 0}
    assert (m["interactions/unseen"], m["interactions/tail"], m["interactions/head"]) == (2, 1, 1)
    assert (m["items/unseen"], m["items/tail"], m["items/head"]) == (2, 3, 1)


def test_a_slice_without_ground_truth_has_counts_and_no_scores():
    slices, _ = item_slices(POPULARITY, head_share=0.25)
    m = item_slice_metrics(np.array([[0, 1]]), as_truth_matrix([{1}], n_items=6), [2], slices)
    assert m["interactions/unseen"] == 0 and "recall@2/unseen" not in m and m["recall@2/tail"] == 1.0


@pytest.mark.parametrize("share", [-0.1, 1.5, True, "a lot"])
def test_a_bad_head_share_is_named(share):
    with pytest.raises(ConfigError, match="eval.head_share="):
        RecEvalCallback(head_share=share)


def test_new_items_at_test_time_through_the_road(run_train):
    """Synthetic data whose newest items appear only at the end of users' histories: the unseen slice is measured
    on exactly the test interactions whose item has no train interaction, from the model's own saved lists."""
    results, out = run_train(
        "model=pop", "data=synthetic", "data.cold_items=0.1", "data.n_users=200", "data.n_items=120",
        "data.n_interactions=4000", "logger=none", "eval.ks=[10]",
    )  # fmt: skip
    from recarena.utils.instantiate import build
    from tests.conftest import compose_config

    cfg = compose_config(["data=synthetic", "data.cold_items=0.1", "data.n_users=200", "data.n_items=120",
                          "data.n_interactions=4000"], out)  # fmt: skip
    dm = build(cfg.data, "data")
    dm.setup()
    data = dm.data
    unseen = data.popularity() == 0
    test = data.frame.filter(pl.col("part") == TEST)
    new_rows = test.filter(pl.col("i").is_in(np.flatnonzero(unseen).tolist()))
    summary = results["test"]
    assert summary["interactions/unseen"] == new_rows.height > 0
    recs = pl.read_parquet(out / "recommendations.parquet").filter(pl.col("stage") == "test")
    index = {raw: i for i, raw in enumerate(data.item_ids.tolist())}
    users = {raw: u for u, raw in enumerate(data.user_ids.tolist())}
    listed: dict[int, set[int]] = {}
    for row in recs.iter_rows(named=True):
        listed.setdefault(users[row["user"]], set()).add(index[row["item"]])
    per_user = [
        len(set(group["i"]) & listed.get(u, set())) / group.height
        for (u,), group in new_rows.group_by("u")
    ]  # fmt: skip
    assert summary["recall@10/unseen"] == pytest.approx(np.mean(per_user))
    assert summary["recall@10/unseen"] == 0.0  # popularity never ranks an item nobody has had above one they have


@pytest.mark.parametrize("cold_items", [0.0, 0.1])
def test_the_report_counts_each_item_slice_and_notes_a_split_without_new_items(run_train, cold_items):
    from recarena.reporting.sweep_report import make_report

    results, out = run_train(
        "model=pop", "data=synthetic", f"data.cold_items={cold_items}", "data.n_users=200", "data.n_items=120",
        "data.n_interactions=4000", "logger=none", "eval.ks=[10]",
    )  # fmt: skip
    markdown = make_report(out.parent, k=10, wandb="off").files["md"].read_text()  # the folder of the run
    unseen = int(results["test"]["interactions/unseen"])
    tail, head = int(results["test"]["interactions/tail"]), int(results["test"]["interactions/head"])
    assert f"Test interactions per slice: unseen {unseen}, tail {tail}, head {head}." in markdown
    assert ("No test interaction of this split is with an item unseen in train" in markdown) == (unseen == 0)
    assert (unseen == 0) == (cold_items == 0.0)
