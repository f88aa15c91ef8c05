"""EASE: the closed form on a hand-made matrix, its zero diagonal, the λ → ∞ limit and bad λ."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recarena.data.interactions import Interactions
from recarena.data.splits import TRAIN
from recarena.errors import ConfigError
from recarena.models.recommenders.ease import EASE


def train_only(rows: list[tuple[int, int]], n_users: int, n_items: int) -> Interactions:
    frame = pl.DataFrame(
        {"u": [u for u, _ in rows], "i": [i for _, i in rows], "ts": list(range(len(rows))),
         "pos": list(range(len(rows))), "part": [TRAIN] * len(rows)},
        schema={"u": pl.Int64, "i": pl.Int64, "ts": pl.Int64, "pos": pl.Int64, "part": pl.Int8},
    )  # fmt: skip
    return Interactions.build(frame, np.arange(n_users), np.arange(n_items))


def test_closed_form_on_a_hand_made_matrix():
    # users {0,1}, {0}, {2,3}, {3}: XᵀX = [[2,1,0,0],[1,1,0,0],[0,0,1,1],[0,0,1,2]]; λ = 1 gives two 2×2 blocks
    # [[3,1],[1,2]]⁻¹ = [[2,-1],[-1,3]]/5 and [[2,1],[1,3]]⁻¹ = [[3,-1],[-1,2]]/5; B_ij = −P_ij / P_jj
    data = train_only([(0, 0), (0, 1), (1, 0), (2, 2), (2, 3), (3, 3)], 4, 4)
    model = EASE(lam=1.0).fit(data)
    expected = np.array([[0, 1 / 3, 0, 0], [1 / 2, 0, 0, 0], [0, 0, 0, 1 / 2], [0, 0, 1 / 3, 0]])
    np.testing.assert_allclose(model.weights, expected, atol=1e-6)
    # ridge check of B_01: regressing item 1's column [1,0,0,0] on item 0's [1,1,0,0] gives 1 / (2 + λ)
    assert model.weights[0, 1] == pytest.approx(1 / 3)
    np.testing.assert_allclose(model.score(np.array([1]), sp.csr_matrix([[1.0, 0, 0, 0]])), [[0, 1 / 3, 0, 0]])


def test_diagonal_is_zero_and_huge_lambda_ranks_by_co_occurrence():
    rng = np.random.default_rng(0)
    rows = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, 30, 200), rng.integers(0, 12, 200), strict=True)})
    data = train_only(rows, 30, 12)
    assert np.all(np.diag(EASE(lam=10.0).fit(data).weights) == 0)
    huge = EASE(lam=1e9).fit(data)  # B → XᵀX / λ off the diagonal: scores ∝ co-occurrence with the history
    gram = (data.train.T @ data.train).toarray()
    np.fill_diagonal(gram, 0)
    history = data.train[:5]
    np.testing.assert_allclose(huge.score(np.arange(5), history) * 1e9, history @ gram, rtol=1e-3)


@pytest.mark.parametrize("lam", [-1.0, float("nan"), "big"])
def test_bad_lambda_is_named(lam):
    with pytest.raises(ConfigError, match="model.recommender.lam="):
        EASE(lam=lam)
