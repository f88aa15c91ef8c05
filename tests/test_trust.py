"""The social family: trust propagation and the trust/rating-similarity blend, hand-computed on a 4-user graph."""

import json

import numpy as np
import polars as pl
import pytest

from recarena.data.interactions import Interactions
from recarena.data.splits import TRAIN
from recarena.errors import ConfigError
from recarena.models.recommenders.knn import UserKNN
from recarena.models.recommenders.trust import TrustKNN, propagate_trust

# users 0..3 each liked one item (user 3 two); 0 trusts 1, 1 trusts 2, 2 trusts 3, 3 trusts nobody
LIKED = [(0, 0), (1, 1), (2, 2), (3, 3), (3, 0)]
CHAIN = pl.DataFrame({"user": [10, 11, 12], "trustee": [11, 12, 13], "weight": [1.0, 1.0, 1.0]})


def four_users(trust: pl.DataFrame | None = CHAIN) -> Interactions:
    frame = pl.DataFrame(
        {"u": [u for u, _ in LIKED], "i": [i for _, i in LIKED], "ts": list(range(len(LIKED))),
         "pos": list(range(len(LIKED))), "part": [TRAIN] * len(LIKED)},
        schema={"u": pl.Int64, "i": pl.Int64, "ts": pl.Int64, "pos": pl.Int64, "part": pl.Int8},
    )  # fmt: skip
    return Interactions.build(frame, np.array([10, 11, 12, 13]), np.arange(4), name="four", trust=trust)


def test_trust_links_are_mapped_from_raw_ids_to_user_indices():
    data = four_users(pl.concat([CHAIN, pl.DataFrame({"user": [10, 99], "trustee": [99, 10], "weight": [1.0, 1.0]})]))
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 2] = expected[2, 3] = 1.0  # links to or from unknown user 99 are left out
    assert np.array_equal(data.trust_matrix().toarray(), expected)


def test_propagation_to_depth_two_weights_the_second_hop_by_decay():
    trust = four_users().trust_matrix()
    expected = np.array([[0, 1, 0.5, 0], [0, 0, 1, 0.5], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert np.allclose(propagate_trust(trust, depth=2, decay=0.5).toarray(), expected)
    assert np.allclose(propagate_trust(trust, depth=1, decay=0.5).toarray(), trust.toarray())


def test_trust_alone_scores_what_the_trusted_users_liked():
    data = four_users()
    model = TrustKNN(k=10, beta=1.0, depth=2, decay=0.5).fit(data)
    # user 0 trusts user 1 (weight 1) and, two hops away, user 2 (weight 0.5): normalised 2/3 and 1/3
    scores = model.score(np.array([0]), data.train[[0]])
    assert np.allclose(scores, [[0, 2 / 3, 1 / 3, 0]])


def test_blend_adds_the_rating_neighbours_and_falls_back_to_user_cf_without_trust():
    data = four_users()
    model = TrustKNN(k=10, beta=0.5, depth=2, decay=0.5).fit(data)
    # user 0's only rating neighbour is user 3 (both liked item 0; cosine 1/√2, normalised to 1):
    # W(0) = 0.5·{1: 2/3, 2: 1/3} + 0.5·{3: 1} → items 0..3 score 0.5, 1/3, 1/6, 0.5
    assert np.allclose(model.score(np.array([0]), data.train[[0]]), [[0.5, 1 / 3, 1 / 6, 0.5]])
    # user 3 trusts nobody: half of user-CF's normalised scores, so the same ranking as UserKNN
    alone = model.score(np.array([3]), data.train[[3]])
    plain = UserKNN(k=10).fit(data).score(np.array([3]), data.train[[3]])
    assert np.allclose(alone, 0.5 * plain / plain.sum())
    # a session (user -1) liking item 0 has no trust row: rating similarity alone, with users 0 (cosine 1) and 3
    # (cosine 1/√2) as neighbours, normalised to a = 1 / (1 + 1/√2) and 1 − a
    a = 1 / (1 + 1 / np.sqrt(2))
    assert np.allclose(model.score(np.array([-1]), data.train[[0]]), [[0.5, 0, 0, 0.5 * (1 - a)]])
    assert model.explain_items(0, np.array([1, 3]), data.train[[0]]) == [
        "1 of the 2 users you trust (directly or through others) and 0 of your 1 most similar users liked it",
        "0 of the 2 users you trust (directly or through others) and 1 of your 1 most similar users liked it",
    ]


def test_trust_model_is_refused_by_name_on_data_without_a_trust_table():
    with pytest.raises(ConfigError, match="model=trust needs a trust table.*data=four has none"):
        TrustKNN().fit(four_users(trust=None))


@pytest.mark.parametrize(
    "kwargs, key", [({"beta": 1.5}, "beta"), ({"depth": 0}, "depth"), ({"decay": 0.0}, "decay"), ({"k": 0}, "k")]
)
def test_bad_trust_settings_are_named(kwargs, key):
    with pytest.raises(ConfigError, match=f"model.recommender.{key}="):
        TrustKNN(**kwargs)


def test_trust_family_runs_the_road_on_a_synthetic_social_graph(run_train):
    results, out = run_train(
        "model=trust", "data=synthetic", "data.n_users=150", "data.n_items=90", "data.n_interactions=3000",
        "data.trust_links=400", "logger=none",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["recall@10"] == pytest.approx(results["test"]["recall@10"])
    assert metrics["test"]["recall@10"] > 0


def test_trust_family_on_data_without_trust_is_refused_by_name(run_train):
    with pytest.raises(ConfigError, match="model=trust needs a trust table.*data=synthetic has none"):
        run_train("model=trust", "data=synthetic", "data.n_users=60", "data.n_items=40", "data.n_interactions=900",
                  "logger=none")
