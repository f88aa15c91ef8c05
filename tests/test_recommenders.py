"""The Recommender contract every non-gradient family passes: shapes, masking, determinism, explanations."""

import numpy as np
import pytest
import scipy.sparse as sp

from recarena.errors import ConfigError
from recarena.models.recommenders.knn import ItemKNN, UserKNN


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
