"""The benchmark suite's sweep: the filtered sweeper's job list, and every (dataset, split, model) the suite claims
composes, with no time split on data without timestamps and the trust family only where there is a trust graph."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_config

SUITE = ROOT / "conf" / "experiment" / "benchmark_suite.yaml"
UNTIMED = {"bookcrossing", "filmtrust"}  # sources whose files record no time
WITH_TRUST = {"filmtrust"}
TEXTLESS = {"instacart", "filmtrust"}  # items are ids only
TEXT_FAMILIES = {"content", "content_minilm", "itemcf_text", "hybrid", "hybrid_llm", "llm_dgrs", "llm_dgrs_budget"}


def filtered_sweeper():
    """The sweeper class as Hydra finds it (its plugin scan loads plugin modules afresh, so not a plain import)."""
    return next(c for c in Plugins.instance().discover(Sweeper) if c.__name__ == "FilteredSweeper")


def expand(params: dict[str, str], exclude: list, arguments: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The jobs the filtered sweeper launches for `params` (+ command-line `arguments`), as key → value dicts."""
    sweeper = filtered_sweeper()(params=params, exclude=exclude)
    overrides = OverridesParser.create().parse_overrides([*sweeper._parse_config(), *arguments])
    batches = sweeper.split_arguments(overrides, None)
    return [dict(o.split("=", 1) for o in job) for batch in batches for job in batch]


def test_filtered_sweeper_drops_the_combinations_a_rule_matches():
    params = {"data": "a,b", "split": "x,y", "model": "m,n"}
    rules = [{"data": "b", "split": "y"}, {"model": ["n"], "data": ["a"]}]
    jobs = [(j["data"], j["split"], j["model"]) for j in expand(params, rules)]
    # 8 combinations; rule 1 drops (b, y, m) and (b, y, n); rule 2 drops (a, x, n) and (a, y, n)
    assert jobs == [("a", "x", "m"), ("a", "y", "m"), ("b", "x", "m"), ("b", "x", "n")]
    # a command-line override replaces the swept values, and the rules still apply
    assert [(j["data"], j["model"]) for j in expand(params, rules, ("data=b", "split=y"))] == []


def test_a_malformed_exclude_rule_is_named():
    with pytest.raises(ValueError, match="hydra.sweeper.exclude="):
        filtered_sweeper()(params={}, exclude=[{}])


def suite_jobs() -> list[dict[str, str]]:
    sweeper = OmegaConf.load(SUITE).hydra.sweeper
    return expand(dict(sweeper.params), OmegaConf.to_container(sweeper.exclude))


def test_suite_never_gives_untimed_data_a_time_split_nor_trust_without_a_graph():
    jobs = suite_jobs()
    cells = {(j["data"], j["split"]) for j in jobs}
    assert {d for d, _ in cells} == {"ml1m", "bookcrossing", "instacart", "ml100k", "filmtrust"}
    assert all(split == "random_ratio" for data, split in cells if data in UNTIMED)
    assert all(j["data"] in WITH_TRUST for j in jobs if j["model"] == "trust")
    assert not [j for j in jobs if j["data"] in TEXTLESS and j["model"] in TEXT_FAMILIES]
    # every family runs somewhere, and the families without special needs run on every cell
    models = {j["model"] for j in jobs}
    for model in models - TEXT_FAMILIES - {"trust"}:
        assert {(j["data"], j["split"]) for j in jobs if j["model"] == model} == cells, model


def test_every_suite_job_composes(tmp_path: Path):
    for job in suite_jobs():
        overrides = [f"{k}={v}" for k, v in job.items()]
        cfg = compose_config(overrides, tmp_path)
        assert cfg.data.name == job["data"] and cfg.hydra.runtime.choices.split == job["split"], overrides
        assert cfg.model._target_, overrides


def test_tuned_settings_apply_per_dataset_and_yield_to_the_command_line(tmp_path: Path):
    tuned = OmegaConf.load(ROOT / "conf" / "tuned" / "ml1m_ease.yaml").model.recommender.lam
    assert compose_config(["model=ease", "data=ml1m"], tmp_path).model.recommender.lam == tuned
    assert compose_config(["model=ease", "data=ml100k"], tmp_path).model.recommender.lam != tuned
    assert compose_config(["model=ease", "data=ml1m", "model.recommender.lam=7"], tmp_path).model.recommender.lam == 7


def test_every_tuned_file_names_a_dataset_and_a_model():
    conf = ROOT / "conf"
    pairs = {f"{d.stem}_{m.stem}" for d in (conf / "data").glob("*.yaml") for m in (conf / "model").glob("*.yaml")}
    assert {p.stem for p in (conf / "tuned").glob("*.yaml")} <= pairs


def test_a_two_dataset_suite_run_ends_in_a_cross_dataset_report(tmp_path: Path):
    """The suite's road end to end on a subset: the filtered sweep, per-dataset leaderboards and the rank test."""
    sweep = tmp_path / "suite"
    env = {**os.environ, "WANDB_MODE": "offline", "RECARENA_ROOT": str(tmp_path), "OPENBLAS_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "recarena.train", "-m", "experiment=benchmark_suite", "data=ml100k,synthetic",
        "split=leave_one_out", "model=pop,itemcf,trust", "++data.trust_links=600", "hydra.launcher.n_jobs=1",
        f"paths.data_dir={ROOT / 'data'}", "logger=none", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # trust is left out on ml100k (no trust graph) by the suite's rule; it runs on the synthetic social graph
    jobs = sorted(p.parent.name.split("-", 1)[1] for p in sweep.glob("*/metrics.json"))
    assert jobs == sorted(["ml100k-leave_one_out-pop", "ml100k-leave_one_out-itemcf", "synthetic-leave_one_out-pop",
                           "synthetic-leave_one_out-itemcf", "synthetic-leave_one_out-trust"])  # fmt: skip
    board = pl.read_csv(sweep / "leaderboard.csv")
    assert sorted(set(zip(board["data"], board["model"], strict=True))) == sorted(
        [("ml100k", "itemcf"), ("ml100k", "pop"), ("synthetic", "itemcf"), ("synthetic", "pop"), ("synthetic", "trust")]
    )
    across = (sweep / "cross_dataset.md").read_text()
    assert "Friedman" in across and "trust" in across  # trust is named as left out of the test (one dataset only)
    assert (sweep / "cross_dataset_cd.png").is_file()


def test_the_published_comparison_runs_both_generative_families_on_three_seeds(tmp_path: Path):
    params = OmegaConf.load(ROOT / "conf" / "experiment" / "ml1m_published.yaml").hydra.sweeper.params
    assert params.model.split(",") == ["gpt_dgrs", "bert_dgrs"] and params.seed.split(",") == ["0", "1", "2"]
    for model in ("gpt_dgrs", "bert_dgrs"):
        cfg = compose_config(["experiment=ml1m_published", f"model={model}", "seed=1"], tmp_path)
        assert (cfg.data.name, cfg.hydra.runtime.choices.split) == ("ml1m", "leave_one_out")
        assert cfg.model.max_len == 200  # the papers' maximum sequence length, from conf/tuned/ml1m_<model>.yaml
