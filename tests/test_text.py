"""Text encoders and item/user text: MiniLM equals sentence-transformers' pooling, the cache is hit, bad input named."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch

from recarena.data.datamodule import RecDataModule
from recarena.data.splits import temporal_ratio
from recarena.errors import ConfigError
from recarena.text.encoders import HFEncoder, MiniLMEncoder, TfidfEncoder, minilm_path
from recarena.text.item_text import default_item_template, item_texts, render, user_texts

TITLES = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller",
    "Heat",
    "",
    "A much longer description of a film about robots, friendship and a long journey home across the stars",
]


@pytest.fixture(scope="module")
def synthetic():
    dm = RecDataModule(source="synthetic", split=temporal_ratio, n_users=60, n_items=40, n_interactions=900, seed=1)
    dm.setup()
    return dm.data


def reference_vectors(texts: list[str]) -> np.ndarray:
    """sentence-transformers' recipe, computed independently: one text at a time (no padding), mean over the
    attention mask of AutoModel's last_hidden_state, then L2 normalisation."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = AutoModel.from_pretrained(minilm_path()).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            batch = tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
            states = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (states * mask).sum(1) / mask.sum(1)
            rows.append((pooled / pooled.norm(dim=1, keepdim=True)).numpy()[0])
    return np.stack(rows)


def test_minilm_reproduces_sentence_transformers_pooling_and_reads_its_cache(tmp_path):
    encoder = MiniLMEncoder(cache_dir=tmp_path, batch_size=2, show_progress=False)
    vectors = encoder.encode(TITLES)
    assert vectors.shape == (len(TITLES), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors - reference_vectors(TITLES)).max() < 1e-5
    (cached,) = tmp_path.glob("*.npy")
    assert np.array_equal(np.load(cached, allow_pickle=False), vectors)

    # the same instance: a second call does not run the model again
    calls = []
    forward = encoder._model.forward
    encoder._model.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    assert np.array_equal(encoder.encode(TITLES), vectors)
    assert calls == []
    # a fresh instance (a new sweep job) returns the cached array without even loading the model
    fresh = HFEncoder(path=minilm_path(), cache_dir=tmp_path, show_progress=False)
    assert np.array_equal(fresh.encode(TITLES), vectors)
    assert fresh._model is None
    # another text set, or another identity (max_length), is another cache entry
    assert fresh.cache_file(TITLES[:2]) != fresh.cache_file(TITLES)
    assert HFEncoder(max_length=32, cache_dir=tmp_path).cache_file(TITLES) != fresh.cache_file(TITLES)


def test_tfidf_rows_are_unit_norm_and_share_the_item_vocabulary():
    encoder = TfidfEncoder().fit(["space robots journey", "space robots", "romantic comedy paris"])
    vectors = encoder.encode(["space robots journey", "romantic comedy paris", "robots", "unseen words only"])
    assert sp.issparse(vectors) and vectors.dtype == np.float32
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    assert np.allclose(norms, [1, 1, 1, 0], atol=1e-6)  # a text with no known term is an all-zero row
    sims = (vectors @ vectors.T).toarray()
    assert sims[0, 2] > 0 and sims[0, 1] == 0


def test_encoder_path_that_is_not_a_model_is_named(tmp_path):
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(ConfigError, match=rf"encoder.path='{missing}'.*no such"):
        HFEncoder(path=missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"encoder.path=.*empty.*not a Hugging Face model directory"):
        HFEncoder(path=tmp_path / "empty")


def test_bad_encoder_path_through_train_is_named(run_train, tmp_path):
    missing = tmp_path / "nowhere" / "minilm"
    with pytest.raises(ConfigError, match=r"encoder.path=.*nowhere"):
        run_train(
            "model=content",
            "encoder@model.recommender.encoder=hf",
            f"model.recommender.encoder.path={missing}",
            "data=synthetic",
            "logger=none",
        )
    assert not list(tmp_path.rglob("metrics.json"))


def test_movielens_style_text_skips_missing_fields():
    items = pl.DataFrame(
        {
            "item": [1, 2, 3, 4],
            "title": ["Toy Story", "Heat", "Unknown Film", None],
            "year": [1995, None, 1996, 1997],
            "genres": [["Animation", "Children's", "Comedy"], ["Action"], [], None],
        }
    )
    texts = render(items, ("{title}", " ({year})", ". Genres: {genres}"), "item_template")
    assert texts == [
        "Toy Story (1995). Genres: Animation, Children's, Comedy",
        "Heat. Genres: Action",
        "Unknown Film (1996)",
        "(1997)",
    ]
    users = pl.DataFrame(
        {
            "user": [1, 2, 3],
            "age": [24, None, 53],
            "gender": ["M", "F", None],
            "occupation": ["technician", "writer", ""],
        }
    )
    assert render(users, ("{age}-year-old", " {gender}", " {occupation}"), "user_template", "user") == [
        "24-year-old male technician",
        "female writer",
        "53-year-old",
    ]


def test_book_tables_get_the_book_template():
    books = pl.DataFrame(
        {"item": ["0195153448", "080652121X"], "title": ["Classical Mythology", "Rites"],
         "author": ["Mark P. O. Morford", None], "year": [2002, None], "publisher": ["Oxford University Press", None]}
    )  # fmt: skip
    template = default_item_template(books.columns)
    assert render(books, template, "item_template") == [
        "Classical Mythology by Mark P. O. Morford (2002). Publisher: Oxford University Press",
        "Rites",
    ]


def test_synthetic_items_use_their_text_column(synthetic):
    texts = item_texts(synthetic)
    assert texts == synthetic.items["text"].to_list()
    assert all(texts) and len(texts) == synthetic.n_items
    assert all("None" not in t for t in user_texts(synthetic))


def test_template_that_yields_no_text_is_named(synthetic, run_train):
    with pytest.raises(ConfigError, match=r"model.recommender.item_template='\{plot\}'.*empty text for every item"):
        item_texts(synthetic, "{plot}")
    with pytest.raises(ConfigError, match=r"model.recommender.item_template=.*empty text for every item"):
        run_train("model=content", "data=synthetic", "logger=none", "model.recommender.item_template=['{plot}']")
    with pytest.raises(ConfigError, match=r"user_template.*every field must be a column name"):
        user_texts(synthetic, "{}", key="model.recommender.user_template")
