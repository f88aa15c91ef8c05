"""The main job (`make run` = experiment=compare_families): every family on both protocols, none silently missing."""

from __future__ import annotations

import itertools

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException

from recarena.utils.compose import CONFIG_DIR

FAMILIES = {  # the design's families and the strongest baselines: one leaderboard row each
    "pop", "itemcf", "usercf", "mf", "ease", "content", "content_minilm", "itemcf_text", "hybrid", "hybrid_llm",
    "gpt_dgrs", "bert_dgrs", "llm_dgrs_budget",
}  # fmt: skip
SPLITS = ["temporal_ratio", "leave_one_out"]


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=["experiment=compare_families", *overrides], return_hydra_config=True)


def test_the_main_job_sweeps_every_family_on_both_splits_and_each_job_composes():
    params = _compose().hydra.sweeper.params
    models, splits = params.model.split(","), params.split.split(",")
    assert set(models) == FAMILIES and len(models) == len(FAMILIES)
    assert splits == SPLITS
    for model, split in itertools.product(models, splits):
        cfg = _compose(f"model={model}", f"split={split}")
        choices = cfg.hydra.runtime.choices
        assert (choices.model, choices.split, choices.data) == (model, split, "ml100k")
        assert cfg.model._target_.startswith("recarena.models.")
        assert cfg.split._target_ == f"recarena.data.splits.{split}"


def test_the_llm_rows_use_minilm_and_keep_distinct_names():
    """content_minilm and hybrid_llm are the TF-IDF configs with the MiniLM encoder: own names, same other settings."""
    tfidf, minilm = _compose("model=content").model, _compose("model=content_minilm").model
    assert tfidf.recommender.encoder._target_.endswith("TfidfEncoder")
    assert minilm.recommender.encoder._target_.endswith("MiniLMEncoder")
    hybrid, hybrid_llm = _compose("model=hybrid").model, _compose("model=hybrid_llm").model
    assert hybrid.recommender.members.content.encoder._target_.endswith("TfidfEncoder")
    assert hybrid_llm.recommender.members.content.encoder._target_.endswith("MiniLMEncoder")
    assert list(hybrid_llm.recommender.members) == ["itemcf", "content"]


def test_an_empty_split_or_an_unknown_model_is_a_named_hydra_error():
    with pytest.raises(MissingConfigException, match=r"Could not find 'split/'"):
        _compose("split=")  # `make run RUN_ARGS="split="`: the options are listed with the error
    with pytest.raises(MissingConfigException, match=r"Could not find 'model/nosuchmodel'"):
        _compose("hydra.sweeper.params.model=pop", "model=nosuchmodel")
