"""Content-based, LLM-feature CF and hybrid families: the Recommender contract, fusion arithmetic by hand,
cold items, and runs through train.py on synthetic data."""

import json

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch

from recarena.data.datamodule import RecDataModule
from recarena.data.interactions import Interactions
from recarena.data.splits import temporal_ratio
from recarena.errors import ConfigError
from recarena.models.masked_topk import rank_scores
from recarena.models.recommenders.content import ContentBased
from recarena.models.recommenders.hybrid import Hybrid
from recarena.models.recommenders.knn import ItemKNN, UserKNN
from recarena.models.recommenders.pop import Popularity
from recarena.models.recommenders.recommender import Recommender
from recarena.models.recommenders.similarity import cosine_topk
from recarena.text.encoders import TfidfEncoder
from tests.conftest import saved_list_metrics


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def data():
    dm = RecDataModule(
        source="synthetic", split=temporal_ratio, n_users=120, n_items=80, n_interactions=2400, seed=3, cold_items=0.1
    )
    dm.setup()
    return dm.data


def test_content_scores_cold_items_and_explains_with_genres(data):
    cold = np.flatnonzero(data.popularity() == 0)
    assert cold.size > 0  # data.cold_items=0.1: items with no train interaction at all
    model = ContentBased(TfidfEncoder()).fit(data)
    users = data.eval_users("test")
    history = data.known("test")[users]
    top = rank_scores(torch.from_numpy(model.score(users, history)), history, 10).items.numpy()
    assert np.isin(top, cold).any()  # cold items reach top-10 lists
    itemcf = ItemKNN(k=20).fit(data).score(users, history)
    assert (itemcf[:, cold] == 0).all()  # which CF cannot do
    user, item = int(users[0]), int(top[0, 0])
    line = model.explain(user, item, history[0])
    assert line.startswith("similar to Item ") and "shared genres: cluster" in line


def test_recency_weighting_follows_the_time_order(data):
    model = ContentBased(TfidfEncoder(), half_life=1.0).fit(data)
    user = int(data.eval_users("test")[0])
    history = data.known("test")[[user]]
    order = data.sequences("test")[user]  # the user's known items, oldest first
    weights = model.history_weights(np.array([user]), history)
    by_item = dict(zip(weights.indices, weights.data, strict=True))
    assert [by_item[i] for i in order[::-1][:3]] == pytest.approx([1.0, 0.5, 0.25])


def test_text_blended_similarity_hand_computed():
    # the 3 × 3 example of test_recommenders: cf cos(0,1) = 2/sqrt6, cos(1,2) = 1/sqrt3, cos(0,2) = 0
    items = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float32)).T.tocsr()
    text = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # items 0 and 2 have the same text, item 1 another
    plain = cosine_topk(items, items, k=2, exclude=np.arange(3)).toarray()
    off = cosine_topk(items, items, k=2, exclude=np.arange(3), text_left=text, text_right=text, text_weight=0.0)
    assert np.array_equal(off.toarray(), plain)  # alpha = 0 is plain CF
    half = cosine_topk(items, items, k=1, exclude=np.arange(3), text_left=text, text_right=text, text_weight=0.5)
    half = half.toarray()
    assert half[0, 2] == pytest.approx(0.5 * 0 + 0.5 * 1)  # 0.5 > 0.5·2/sqrt6 = 0.41: item 2 is item 0's neighbour
    assert half[0, 1] == 0.0
    assert half[1, 0] == pytest.approx(0.5 * 2 / np.sqrt(6))
    pure = cosine_topk(items, items, k=2, exclude=np.arange(3), text_left=text, text_right=text, text_weight=1.0)
    assert np.array_equal(pure.toarray(), [[0, 0, 1], [0, 0, 0], [1, 0, 0]])  # alpha = 1: text neighbours only


def test_itemcf_with_text_weight_zero_is_itemcf(data):
    plain = ItemKNN(k=20).fit(data).similarity
    blended = ItemKNN(k=20, text_weight=0.0, encoder=TfidfEncoder()).fit(data).similarity
    assert (plain != blended).nnz == 0


class Fixed(Recommender):
    """A member with given scores per user (the same for every user), for hand-computed fusion."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = np.asarray(scores, dtype=np.float32)

    def _fit(self, data: Interactions) -> None:
        pass

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.scores, (len(users), 1))

    def explain(self, user: int, item: int, history: sp.csr_matrix) -> str:
        return f"fixed score {self.scores[item]}"


@pytest.fixture(scope="module")
def toy():
    """2 users × 5 items; user 1 already has item 0."""
    frame = pl.DataFrame({"u": [0, 1, 1], "i": [3, 0, 2], "ts": [1, 1, 2], "pos": [0, 1, 2], "part": [0, 0, 1]})
    frame = frame.with_columns(pl.col("part").cast(pl.Int8))
    return Interactions.build(frame, np.arange(2), np.arange(5))


def test_reciprocal_rank_fusion_hand_computed(toy):
    a, b = [5, 4, 3, 2, 1], [1, 5, 2, 4, 3]  # ranks: a = 1..5; b: item 1→1, 3→2, 4→3, 2→4, 0→5
    model = Hybrid({"a": Fixed(a), "b": Fixed(b)}, strategy="rrf", weights=[1.0, 0.5], rrf_k=1).fit(toy)
    empty = sp.csr_matrix((1, 5), dtype=np.float32)
    expected = [1 / 2 + 0.5 / 6, 1 / 3 + 0.5 / 2, 1 / 4 + 0.5 / 5, 1 / 5 + 0.5 / 3, 1 / 6 + 0.5 / 4]
    assert model.score(np.array([0]), empty)[0] == pytest.approx(expected)
    # a known item is ranked after the others, so it does not push them down: user 1 knows item 0, and among
    # items 1..4 the ranks are a: 1, 2, 3, 4 and b: item 1 → 1, 3 → 2, 4 → 3, 2 → 4
    known = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], dtype=np.float32))
    fused = model.score(np.array([1]), known)[0]
    assert fused[1:] == pytest.approx([1 / 2 + 0.5 / 2, 1 / 3 + 0.5 / 5, 1 / 4 + 0.5 / 3, 1 / 5 + 0.5 / 4])
    assert rank_scores(torch.from_numpy(fused[None]), known, 4).items.tolist() == [[1, 2, 3, 4]]


def test_weighted_fusion_min_max_hand_computed(toy):
    model = Hybrid({"a": Fixed([5, 4, 3, 2, 1]), "b": Fixed([0, 10, 0, 5, 0])}, weights=[0.25, 0.75]).fit(toy)
    fused = model.score(np.array([0]), sp.csr_matrix((1, 5), dtype=np.float32))[0]
    # min-max: a → [1, .75, .5, .25, 0], b → [0, 1, 0, .5, 0]
    assert fused == pytest.approx([0.25, 0.25 * 0.75 + 0.75, 0.125, 0.0625 + 0.375, 0.0])


def test_switching_gives_short_histories_the_second_member(toy):
    model = Hybrid({"cf": Fixed([5, 4, 3, 2, 1]), "cold": Fixed([1, 2, 3, 4, 5])}, strategy="switching")
    model.switch_threshold = 1
    model.fit(toy)
    history = sp.csr_matrix(np.array([[0, 0, 0, 1, 0], [1, 0, 1, 0, 0]], dtype=np.float32))
    scores = model.score(np.array([0, 1]), history)
    assert scores[0].tolist() == [1, 2, 3, 4, 5] and scores[1].tolist() == [5, 4, 3, 2, 1]
    assert model.explain(0, 4, history[0]).startswith("cold (you have <= 1 items)")


@pytest.mark.parametrize("normalization", ["minmax", "zscore"])
def test_weight_one_reproduces_the_member_top_k(data, normalization):
    users = data.eval_users("test")
    history = data.known("test")[users]
    members = {"itemcf": lambda: ItemKNN(k=20), "content": lambda: ContentBased(TfidfEncoder())}
    for name, make in members.items():
        alone = rank_scores(torch.from_numpy(make().fit(data).score(users, history)), history, 20).items
        weights = [1.0 if other == name else 0.0 for other in members]
        hybrid = Hybrid({n: m() for n, m in members.items()}, weights=weights, normalization=normalization)
        fused = hybrid.fit(data).score(users, history)
        assert torch.equal(rank_scores(torch.from_numpy(fused), history, 20).items, alone)


def test_hybrid_bad_input_is_named():
    with pytest.raises(ConfigError, match="model.recommender.members is empty"):
        Hybrid({})
    with pytest.raises(ConfigError, match=r"model.recommender.weights=\[1.0\]: 1 weights for 2 members"):
        Hybrid({"a": Popularity(), "b": Popularity()}, weights=[1.0])
    with pytest.raises(ConfigError, match="model.recommender.strategy='vote': unknown strategy"):
        Hybrid({"a": Popularity()}, strategy="vote")
    with pytest.raises(ConfigError, match="switching needs exactly 2 members"):
        Hybrid({"a": Popularity()}, strategy="switching")
    with pytest.raises(ConfigError, match=r"model.recommender.members.a: expected a Recommender"):
        Hybrid({"a": "itemcf"})


def test_hybrid_bad_config_through_train_is_named(run_train):
    with pytest.raises(ConfigError, match=r"model.recommender.weights=\[0.5, 0.2, 0.3\]"):
        run_train("model=hybrid", "data=synthetic", "logger=none", "model.recommender.weights=[0.5,0.2,0.3]")
    with pytest.raises(ConfigError, match="model.recommender.members is empty"):
        run_train("model=hybrid", "data=synthetic", "logger=none", "model.recommender.members=null")


def test_content_beats_popularity_on_clustered_text(run_train):
    content, out = run_train("model=content", "data=synthetic", "logger=none")
    pop, _ = run_train("model=pop", "data=synthetic", "logger=none")
    assert content["test"]["recall@10"] > pop["test"]["recall@10"] + 0.15
    assert content["test"]["coverage@10"] > pop["test"]["coverage@10"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"]["recall@10"] == pytest.approx(content["test"]["recall@10"])


def test_hybrid_with_all_weight_on_itemcf_equals_itemcf_through_train(run_train):
    hybrid, _ = run_train("model=hybrid", "data=synthetic", "logger=none", "model.recommender.weights=[1.0,0.0]")
    itemcf, _ = run_train("model=itemcf", "data=synthetic", "logger=none")
    for stage in ("val", "test"):
        assert hybrid[stage] == itemcf[stage]


@pytest.mark.parametrize("model", ["content", "itemcf_text", "usercf_text", "hybrid"])
def test_runs_through_train_with_cold_item_slices(run_train, tmp_path, model):
    cache = tmp_path / "embeddings"
    where = [f"model.recommender.encoder.cache_dir={cache}"] if model.endswith("_text") else []
    results, out = run_train(f"model={model}", "data=synthetic", "data.cold_items=0.1", "logger=csv", *where)
    saved = json.loads((out / "metrics.json").read_text())
    for stage in ("val", "test"):
        assert saved[stage]["recall@10"] == pytest.approx(saved_list_metrics(out, stage, 10)["recall@10"], abs=1e-9)
        assert {"recall@10/cold", "recall@10/warm"} <= set(saved[stage])
    recs = pl.read_parquet(out / "recommendations.parquet")
    assert recs.group_by(["user", "stage"]).len()["len"].unique().to_list() == [20]
    if model.endswith("_text"):
        assert list(cache.glob("*.npy"))  # MiniLM embeddings cached for the next run of a sweep


def test_text_options_bad_input_is_named():
    with pytest.raises(
        ConfigError, match="model.recommender.encoder: itemcf with text_weight=0.5 needs a text encoder"
    ):
        ItemKNN(text_weight=0.5)
    with pytest.raises(ConfigError, match=r"model.recommender.text_weight=1.5: must be in \[0, 1\]"):
        UserKNN(text_weight=1.5, encoder=TfidfEncoder())
    with pytest.raises(ConfigError, match="model.recommender.profile='items'"):
        ContentBased(TfidfEncoder(), profile="items")
    with pytest.raises(ConfigError, match="model.recommender.half_life=0"):
        ContentBased(TfidfEncoder(), half_life=0)
