"""The Recommender contract every non-gradient family passes: shapes, masking, determinism, explanations."""

import implicit
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recarena.data.datamodule import RecDataModule
from recarena.data.splits import temporal_ratio
from recarena.errors import ConfigError
from recarena.models.ranking import rank_scores
from recarena.models.recommenders.ease import EASE
from recarena.models.recommenders.knn import ItemKNN, UserKNN
from recarena.models.recommenders.mf import MatrixFactorization
from recarena.models.recommenders.pop import Popularity
from recarena.models.recommenders.trust import TrustKNN

FACTORIES = {
    "pop": Popularity,
    "itemcf": lambda: ItemKNN(k=20),
    "ease": lambda: EASE(lam=50.0),
    "usercf": lambda: UserKNN(k=20),
    "trust": lambda: TrustKNN(k=20, beta=0.5, depth=2),
    "als": lambda: MatrixFactorization(
        implicit.als.AlternatingLeastSquares(factors=8, iterations=3, random_state=0, use_gpu=False)
    ),
    "bpr": lambda: MatrixFactorization(
        implicit.bpr.BayesianPersonalizedRanking(factors=8, iterations=5, random_state=0, num_threads=1, use_gpu=False)
    ),
}


@pytest.fixture(scope="module")
def data():
    dm = RecDataModule(source="synthetic", split=temporal_ratio, n_users=120, n_items=80, n_interactions=2400, seed=3,
                       trust_links=300)
    dm.setup()
    return dm.data


@pytest.mark.parametrize("name", FACTORIES)
def test_recommender_contract(name, data):
    model = FACTORIES[name]().fit(data)
    users = data.eval_users("test")
    history = data.known("test")[users]
    scores = model.score(users, history)
    assert scores.shape == (len(users), data.n_items)
    assert np.isfinite(scores).all()
    # a user's scores do not depend on who else is in the batch
    assert np.allclose(model.score(users[:5], history[:5]), scores[:5], atol=1e-5)
    # deterministic: a second fit gives the same scores
    again = FACTORIES[name]().fit(data).score(users, history)
    assert np.allclose(again, scores, atol=1e-5)
    top = rank_scores(torch.from_numpy(scores), history, 10).items.numpy()
    known = history.toarray().astype(bool)
    assert not known[np.arange(len(users))[:, None], np.where(top >= 0, top, 0)][top >= 0].any()
    line = model.explain(int(users[0]), int(top[0, 0]), history[0])
    assert isinstance(line, str) and line


def test_itemcf_hand_computed():
    # 3 users × 3 items; item 0 and 1 co-occur twice, item 2 once with item 1
    train = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float32))
    from recarena.models.recommenders.similarity import cosine_topk

    sim = cosine_topk(train.T.tocsr(), train.T.tocsr(), k=1, exclude=np.arange(3)).toarray()
    # cos(0,1) = 2 / (sqrt2 * sqrt3); cos(1,2) = 1 / (sqrt3 * 1); cos(0,2) = 0
    assert sim[0, 1] == pytest.approx(2 / np.sqrt(6))
    assert sim[2, 1] == pytest.approx(1 / np.sqrt(3))
    assert sim[1, 0] == pytest.approx(2 / np.sqrt(6)) and sim[1, 2] == 0.0  # k=1 keeps item 1's best only
    shrunk = cosine_topk(train.T.tocsr(), train.T.tocsr(), k=2, shrink=1.0, exclude=np.arange(3)).toarray()
    assert shrunk[0, 1] == pytest.approx(2 / (np.sqrt(6) + 1))


def test_knn_rejects_bad_hyper_parameters():
    with pytest.raises(ConfigError, match="model.recommender.k="):
        ItemKNN(k=0)
    with pytest.raises(ConfigError, match="model.recommender.shrink="):
        UserKNN(shrink=-1)
