"""The one contract every family meets, run for every `conf/model` entry (and a few variants by override), in the
style of implicit's recommender test mixin: each family is composed from its own config, trained (briefly) by a
Lightning Trainer on small synthetic data, then asked for lists through `RecModule.recommend`.

The contract: lists of shape users × K with scores that never rise down a list and no repeated item; no known item
ever recommended; the same lists from a second seeded training; a user's list independent of who else is scored
with it (batches of one, of seven, reversed); an explanation for every listed item; and where a family claims it
can score a session (`sessions`), a known user's history given as a session gets that user's list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recarena.models.fit_once import FitOnceModule
from recarena.models.recommenders.recommender import SESSION
from recarena.utils.instantiate import build
from tests.conftest import compose_config
from tests.llm_fixtures import save_tiny_llama

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml"))
K = 10
DATA = ["data=synthetic", "data.n_users=60", "data.n_items=50", "data.n_interactions=1500", "data.trust_links=200",
        "logger=none", "trainer.enable_progress_bar=false"]  # fmt: skip
SEQUENCE = ["model.n_embd=16", "model.n_layer=1", "model.n_head=1", "model.max_len=12", "trainer.max_epochs=1"]
LLM = ["model.max_len=8", "model.eval_chunk=16", "trainer.max_epochs=1", "+trainer.limit_train_batches=4"]
SIZES = {"gpt_dgrs": SEQUENCE, "bert_dgrs": SEQUENCE, "llm_dgrs": LLM, "llm_dgrs_budget": LLM}
VARIANTS = {  # configurations beyond conf/model whose code paths differ: name -> (model, overrides)
    "hybrid_rrf": ("hybrid", ["model.recommender.strategy=rrf"]),
    "hybrid_switching": ("hybrid", ["model.recommender.strategy=switching"]),
    "hybrid_zscore": ("hybrid", ["model.recommender.normalization=zscore"]),
    "content_profile_both": ("content", ["model.recommender.profile=both"]),
    "gpt_dgrs_beam": ("gpt_dgrs", [*SEQUENCE, "model.decode=beam"]),
}
CASES = {**{name: (name, SIZES.get(name, [])) for name in MODELS}, **VARIANTS}


def test_every_model_config_is_a_case():
    assert set(MODELS) <= set(CASES) and len(MODELS) >= 17


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama"), [f" Item {n}" for n in range(50)])


def trained(name: str, folder: Path, tiny_llama: Path):
    """The family composed and trained as `python -m recarena.train` builds it; returns (model, data)."""
    model_name, overrides = CASES[name]
    extra = [f"model.backbone={tiny_llama}"] if model_name.startswith("llm_dgrs") else []
    cfg = compose_config([f"model={model_name}", *DATA, *overrides, *extra], folder)
    torch.manual_seed(int(cfg.seed))
    datamodule = build(cfg.data, "data")
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build(cfg.model, "model")
    trainer = build(cfg.trainer, "trainer", callbacks=[], logger=False, enable_checkpointing=False,
                    enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                    default_root_dir=str(folder))  # fmt: skip
    if model.trains:
        trainer.fit(model, datamodule=datamodule)
    elif hasattr(model, "build") and not model.built:
        model.build(datamodule.data)
    if isinstance(model, FitOnceModule):
        assert model.fitted
    model.eval()
    return model, datamodule.data


def lists(model, data, users: np.ndarray, stage: str = "test"):
    users = np.array(users, dtype=np.int64)  # a copy: reversed views have negative strides
    with torch.inference_mode():
        return model.recommend(torch.as_tensor(users), data.known(stage)[users], K, data.sequences(stage).rows(users))


@pytest.fixture(scope="module")
def cases(tmp_path_factory, tiny_llama):
    """Each case trained twice with the same seed (for determinism), once per module."""
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = [trained(name, tmp_path_factory.mktemp(f"{name}-{n}"), tiny_llama) for n in range(2)]
        return built[name]

    return get


@pytest.mark.parametrize("name", CASES)
def test_the_family_contract(name, cases):
    (model, data), (again, _) = cases(name)
    users = data.eval_users("test")
    top = lists(model, data, users)
    items, scores = top.items.cpu().numpy(), top.scores.float().cpu().numpy()
    assert items.shape == scores.shape == (len(users), K)
    listed = items >= 0
    assert listed.any(axis=1).all() and ((items >= -1) & (items < data.n_items)).all()
    for row, mask in zip(items, listed, strict=True):  # no item twice in a list
        assert len(set(row[mask].tolist())) == int(mask.sum())
    filled = np.where(listed, scores, -np.inf)
    assert (np.diff(filled[:, : listed.sum(axis=1).min()], axis=1) <= 1e-6).all()  # scores never rise down a list
    known = data.known("test")[users].toarray().astype(bool)
    assert not known[np.arange(len(users))[:, None], np.where(listed, items, 0)][listed].any()

    # determinism: a second training with the same seed gives the same lists
    repeat = lists(again, data, users)
    assert np.array_equal(repeat.items.cpu().numpy(), items)
    assert np.allclose(repeat.scores.float().cpu().numpy()[listed], scores[listed], atol=1e-5)

    # batch and chunk invariance: one user at a time, seven at a time, and reversed
    for chunk in (1, 7):
        parts = [lists(model, data, users[start : start + chunk]) for start in range(0, len(users), chunk)]
        assert np.array_equal(np.concatenate([p.items.cpu().numpy() for p in parts]), items), chunk
        chunked = np.concatenate([p.scores.float().cpu().numpy() for p in parts])
        assert np.allclose(chunked[listed], scores[listed], atol=1e-5), chunk
    assert np.array_equal(lists(model, data, users[::-1]).items.cpu().numpy(), items[::-1])

    # an explanation for every listed item
    user = int(users[0])
    row = items[0][listed[0]]
    why = model.explain_items(user, row, data.known("test")[[user]], data.sequences("test")[user])
    assert len(why) == len(row) and all(isinstance(line, str) and line.strip() for line in why)

    # the session claim: a known user's own history, given as a session, gets that user's list
    if model.sessions:
        history = data.known("test")[[user]]
        order = data.sequences("test")[user]
        history.indices = np.asarray(order, dtype=history.indices.dtype)  # the session's items in the order seen
        with torch.inference_mode():
            session = model.recommend(torch.tensor([SESSION]), history, K, [order])
        assert session.items[0].cpu().numpy().tolist() == items[0].tolist()
