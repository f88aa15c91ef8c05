"""Title generators' outputs: embedding grounding to the nearest catalogue titles, the error rates of raw outputs, and
title-list training windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recarena.models.generative.llm_prompts import PromptBuilder, TitleWindows
from recarena.models.generative.title_grounding import EmbeddingGrounding, output_errors
from recarena.text.encoders import MiniLMEncoder

CATALOGUE = ["Toy Story (1995)", "Star Wars (1977)", "The Godfather (1972)", "Pulp Fiction (1994)", "Titanic (1997)"]
POPULARITY = np.array([0, 1, 3, 7, 15])  # log1p / log1p(15) = 0, 1/4, 1/2, 3/4, 1


def history(rows: list[list[int]]) -> sp.csr_matrix:
    matrix = sp.lil_matrix((len(rows), len(CATALOGUE)))
    for user, items in enumerate(rows):
        matrix[user, items] = 1
    return matrix.tocsr()


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder(show_progress=False)


def test_a_generated_string_maps_to_its_nearest_catalogue_titles_known_items_excluded(minilm):
    grounding = EmbeddingGrounding(minilm, CATALOGUE, POPULARITY)
    star_wars = "Star Wars: Episode IV - A New Hope"
    outputs = [[star_wars], [star_wars], ["The Godfather Part II"]]
    top = grounding.rank(outputs, history([[], [1], []]), k=2)
    assert top.items[0, 0] == 1  # the nearest title
    everything = grounding.rank(outputs[:1], history([[]]), k=5).items[0].tolist()
    assert top.items[1].tolist() == [i for i in everything if i != 1][:2]  # the same order, the known item left out
    assert top.items[2, 0] == 2
    assert top.invalid.tolist() == [0.0, 0.0, 0.0]  # grounding always names real unknown items
    # each item's score is its best cosine similarity to one of the user's outputs
    two = grounding.scores([["Titanic", "Toy Story"]])[0]
    vectors = minilm.encode(["Titanic", "Toy Story", *CATALOGUE], cache=False)
    expected = np.maximum(vectors[2:] @ vectors[0], vectors[2:] @ vectors[1])
    np.testing.assert_allclose(two.numpy(), expected, atol=1e-6)


def test_popularity_fusion_adds_the_scaled_log_popularity(minilm):
    grounding = EmbeddingGrounding(minilm, CATALOGUE, POPULARITY, popularity_weight=2.0)
    prior_only = grounding.scores([[]])[0]  # no outputs: the prior alone
    np.testing.assert_allclose(prior_only.numpy(), [0.0, 0.5, 1.0, 1.5, 2.0], atol=1e-6)
    plain = EmbeddingGrounding(minilm, CATALOGUE, POPULARITY).scores([["Toy Story"]])[0]
    fused = grounding.scores([["Toy Story"]])[0]
    np.testing.assert_allclose((fused - plain).numpy(), [0.0, 0.5, 1.0, 1.5, 2.0], atol=1e-6)


def test_error_rates_of_constructed_outputs_equal_hand_counts():
    index = {"A": [0], "B": [1], "C": [2, 3]}  # two items share title C
    known = {1, 2}
    outputs = ["A", "A", "Zulu", "B", "C", " A  "]
    # A: valid; A: repeat; Zulu: no title; B: only known items; C: item 3 is new (valid); " A  " = "A": repeat
    rates = output_errors(outputs, index, known)
    np.testing.assert_allclose(rates, [2 / 6, 1 / 6, 1 / 6])  # output_repeat, not_in_catalogue, history_repeat
    assert output_errors([], index, known).tolist() == [0.0, 0.0, 0.0]
    assert output_errors(["C"], index, {2, 3}).tolist() == [0.0, 0.0, 1.0]


def test_title_windows_put_a_loss_on_every_title_after_the_windows_first():
    prompts = PromptBuilder(
        instruction=[1], answer=[7], bullet=[5], titles=[[10], [11, 12], [13], [14]], end=9, vocab=100
    )  # fmt: skip
    view = TitleWindows([np.array([0, 1, 2, 3])], prompts, max_len=2, batch_size=4)
    assert [w.tolist() for w in view.windows] == [[1, 2, 3]]  # windows of max_len + 1 from the end; [0] alone: none
    ids, labels = view[0]
    assert ids == [1, 5, 11, 12, 9, 5, 13, 9, 5, 14, 9]
    assert labels == [-100, -100, -100, -100, -100, -100, 13, 9, -100, 14, 9]
    batch = view.collate([view[0]])
    assert batch["labels"].tolist()[0] == labels and math.isclose(float(batch["attention_mask"].sum()), len(ids))
