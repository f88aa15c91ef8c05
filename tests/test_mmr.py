"""MMR re-ranking (recarena.models.mmr): hand-computed orders, de-duplication, named config errors, and the stage on
the real road — itemcf and gpt_dgrs runs through `recarena.train`, re-ranked again at eval time by `recarena.eval`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from benchmarks import mmr_tradeoff

from recarena.data.datamodule import RecDataModule
from recarena.data.splits import temporal_ratio
from recarena.errors import ConfigError
from recarena.models.mmr import Reranker
from recarena.runs import evaluate
from recarena.topk import TopK

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ("data=synthetic", "logger=none")
MMR = {"_target_": "recarena.models.mmr.Reranker", "candidates": 50, "similarity": "text", "dedup": "title"}


def _cli(folder: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "RECARENA_ROOT": str(folder)}
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _train(out: Path, *overrides: str) -> dict:
    """`python -m recarena.train <overrides>` into `out`; its metrics.json."""
    data_dir = f"paths.data_dir={ROOT / 'data'}"
    _cli(out.parent, "recarena.train", *SYNTHETIC, data_dir, f"hydra.run.dir={out}", *overrides)
    return json.loads((out / "metrics.json").read_text())


def _top(items: list[list[int]], scores: list[list[float]]) -> TopK:
    return TopK(torch.tensor(items), torch.tensor(scores, dtype=torch.float32), torch.tensor([0.25] * len(items)))


# -- the greedy MMR, by hand ----------------------------------------------------------------------------------------
# Four candidates in the model's order 0, 1, 2, 3 with scores 1, 0.75, 0.5, 0 → relevance (min-max) 1, 0.75, 0.5, 0.
# Unit vectors: v0 = v1 = (1, 0) (item 1 repeats item 0), v2 = (0.6, 0.8), v3 = (0, 1); so sim(0, 1) = 1,
# sim(0, 2) = 0.6, sim(0, 3) = 0, sim(2, 3) = 0.8, sim(1, 3) = 0. With lam = 0.5, value = 0.5 rel − 0.5 max-sim:
#   step 1 (nothing listed): 0.5, 0.375, 0.25, 0            → item 0
#   step 2: item 1: 0.375 − 0.5 = −0.125, item 2: 0.25 − 0.3 = −0.05, item 3: 0 − 0 = 0   → item 3
#   step 3: item 1: 0.375 − 0.5·max(1, 0) = −0.125, item 2: 0.25 − 0.5·max(0.6, 0.8) = −0.15 → item 1
#   step 4: item 2.
VECTORS = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
HAND = _top([[0, 1, 2, 3]], [[1.0, 0.75, 0.5, 0.0]])


def test_hand_computed_mmr_order_at_lambda_half():
    out = Reranker(lam=0.5, candidates=4, dedup=None).set_items(VECTORS).rerank(HAND, 4)
    assert out.items.tolist() == [[0, 3, 1, 2]]
    assert out.scores.tolist() == [[1.0, 0.0, 0.75, 0.5]]  # the model's own scores of the chosen items
    assert out.invalid.tolist() == [0.25]  # passed through


def test_lambda_one_keeps_the_model_order_and_lambda_zero_takes_the_top_item_then_the_most_distant():
    assert Reranker(lam=1.0, candidates=4, dedup=None).set_items(VECTORS).rerank(HAND, 4).items.tolist() == [
        [0, 1, 2, 3]
    ]
    # lam = 0: step 1 is a tie (all 0) → the model's first; then 3 (sim 0 to item 0); then 2 (max-sim 0.8 < 1)
    assert Reranker(lam=0.0, candidates=4, dedup=None).set_items(VECTORS).rerank(HAND, 4).items.tolist() == [
        [0, 3, 2, 1]
    ]


def test_a_duplicate_group_is_listed_once_and_empty_slots_come_last():
    # items 0 and 1 share group 0: once 0 is listed, 1 is skipped; three groups fill three of the four slots
    out = Reranker(lam=0.5, candidates=4, dedup="title").set_items(VECTORS, groups=[0, 0, 1, 2]).rerank(HAND, 4)
    assert out.items.tolist() == [[0, 3, 2, -1]]
    assert out.scores.tolist() == [[1.0, 0.0, 0.5, -np.inf]]


def test_empty_input_slots_stay_empty_and_move_to_the_end():
    top = _top([[2, -1, 0, 3], [-1, -1, -1, -1]], [[2.0, -np.inf, 1.0, 0.5]] + [[-np.inf] * 4])
    out = Reranker(lam=1.0, candidates=4, dedup=None).set_items(VECTORS).rerank(top, 3)
    assert out.items.tolist() == [[2, 0, 3], [-1, -1, -1]]
    assert out.scores.tolist() == [[2.0, 1.0, 0.5], [-np.inf] * 3]


def test_only_the_first_candidates_are_re_ranked():
    top = _top([[0, 1, 2, 3]], [[1.0, 0.75, 0.5, 0.0]])
    out = Reranker(lam=0.0, candidates=2, dedup=None).set_items(VECTORS).rerank(top, 4)
    assert out.items.tolist() == [[0, 1]]  # item 3, the most distant, is beyond the top-2 candidates


# -- configuration errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"lam": 1.5}, r"rerank\.lam=1\.5: must be in \[0, 1\]"),
        ({"lam": -0.1}, r"rerank\.lam=-0\.1: must be in \[0, 1\]"),
        ({"candidates": 0}, r"rerank\.candidates=0: must be an integer >= 1"),
        ({"similarity": "genres"}, r"rerank\.similarity='genres': expected one of \['text', 'cooccurrence'\]"),
        ({"dedup": ""}, r"rerank\.dedup='': expected null, title or an item-table column name"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(ConfigError, match=message):
        Reranker(**arguments)


def test_a_missing_dedup_column_is_named(tmp_path):
    dm = RecDataModule(source="synthetic", split=temporal_ratio, n_users=40, n_items=30, n_interactions=400)
    dm.setup()
    with pytest.raises(ConfigError, match=r"rerank\.dedup='studio': the item table has no such column \(it has \["):
        Reranker(dedup="studio").fit(dm.data)
    genres = {tuple(g) for g in dm.data.items["genres"].to_list()}
    assert len(set(Reranker(dedup="genres").fit(dm.data).groups)) == len(genres)  # a real column: its values group


def test_bad_rerank_config_stops_train(run_train):
    with pytest.raises(ConfigError, match=r"rerank\.lam=1\.5"):
        run_train("model=pop", *SYNTHETIC, "rerank=mmr", "rerank.lam=1.5")


# -- on the real road -----------------------------------------------------------------------------------------------
def test_lambda_one_reproduces_the_itemcf_lists_and_metrics(run_train):
    """Synthetic titles are all distinct: lam = 1 with title de-duplication is the model's own ranking."""
    plain, plain_out = run_train("model=itemcf", *SYNTHETIC)
    same, same_out = run_train("model=itemcf", *SYNTHETIC, "rerank=mmr", "rerank.lam=1.0")
    assert same == plain
    expected = pl.read_parquet(plain_out / "recommendations.parquet")
    assert pl.read_parquet(same_out / "recommendations.parquet").equals(expected)


def test_title_dedup_never_lists_one_title_twice(run_train, tmp_path):
    """A table whose 40 items come in pairs with one title (as remakes or re-releases): itemcf alone lists both of
    a pair for some users; through the re-ranker (lam = 1, so only de-duplication acts) no list holds a title twice."""
    rng = np.random.default_rng(0)
    rows = [(u, i, t) for u in range(80) for t, i in enumerate(rng.choice(40, size=15, replace=False))]
    (tmp_path / "log.csv").write_text("user_id,item_id,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    titles = {i: f"Film {i // 2}" for i in range(40)}
    (tmp_path / "items.csv").write_text("item_id,title\n" + "".join(f"{i},{t}\n" for i, t in titles.items()))
    table = ("data=table", f"data.path={tmp_path / 'log.csv'}", f"data.items_path={tmp_path / 'items.csv'}",
             "data.time_col=ts", "data.cache=false", "logger=none", "eval.ks=[10]", "model=itemcf")  # fmt: skip

    def most_repeated_title(out: Path) -> int:
        frame = pl.read_parquet(out / "recommendations.parquet").drop_nulls("item")
        frame = frame.with_columns(pl.col("item").cast(pl.Int64).replace_strict(titles).alias("title"))
        return int(frame.group_by("stage", "user", "title").len()["len"].max())

    _, plain = run_train(*table)
    _, deduped = run_train(*table, "rerank=mmr", "rerank.lam=1.0", "rerank.similarity=cooccurrence")
    assert most_repeated_title(plain) == 2
    assert most_repeated_title(deduped) == 1


@pytest.fixture(scope="module")
def itemcf_runs(tmp_path_factory) -> dict[str, Path]:
    """`python -m recarena.train model=itemcf rerank=mmr` at lam = 1 and lam = 0.3 on the synthetic data."""
    folder = tmp_path_factory.mktemp("mmr")
    runs = {"lam1": folder / "lam1", "lam03": folder / "lam03"}
    _train(runs["lam1"], "model=itemcf", "rerank=mmr", "rerank.lam=1.0")
    _train(runs["lam03"], "model=itemcf", "rerank=mmr", "rerank.lam=0.3")
    return runs


def test_cli_mmr_raises_intra_list_diversity_and_eval_re_ranks_a_finished_run(itemcf_runs):
    one = json.loads((itemcf_runs["lam1"] / "metrics.json").read_text())
    diverse = json.loads((itemcf_runs["lam03"] / "metrics.json").read_text())
    for stage in ("val", "test"):
        assert diverse[stage]["ild@10"] > one[stage]["ild@10"] + 0.1
        assert diverse[stage]["ndcg@10"] < one[stage]["ndcg@10"]  # the price of diversity
    # the lam = 1 run re-ranked at lam = 0.3 by `recarena.eval` (no retraining) gives the lam = 0.3 run's metrics
    args = (f"run_dir={itemcf_runs['lam1']}", "format=json", "stages=[val,test]")
    done = _cli(itemcf_runs["lam1"].parent, "recarena.eval", *args, "rerank=mmr", "rerank.lam=0.3")
    assert json.loads(done.stdout) == {s: diverse[s] for s in ("val", "test")}
    # by default eval keeps the run's own re-ranking, and rerank=none turns it off
    assert evaluate(itemcf_runs["lam03"])["test"] == diverse["test"]
    assert evaluate(itemcf_runs["lam03"], rerank=None)["test"] == evaluate(itemcf_runs["lam1"], rerank=None)["test"]


def test_the_tradeoff_benchmark_writes_its_table_and_plot(itemcf_runs, tmp_path, capsys):
    rows = mmr_tradeoff.main(["--runs", f"itemcf={itemcf_runs['lam1']}", "--lams", "1,0.3", "--out", str(tmp_path)])
    assert [(r["model"], r["lam"]) for r in rows] == [("itemcf", None), ("itemcf", 1.0), ("itemcf", 0.3)]
    diverse = json.loads((itemcf_runs["lam03"] / "metrics.json").read_text())["test"]
    assert rows[2]["ild@10"] == diverse["ild@10"] and rows[2]["ndcg@10"] == diverse["ndcg@10"]
    assert rows[0]["ndcg@10"] == rows[1]["ndcg@10"]  # distinct synthetic titles: lam = 1 is no re-ranking
    frame = pl.read_csv(tmp_path / "tradeoff.csv")
    assert frame.columns == ["model", "lam", "ndcg@10", "ild@10", "coverage@10"] and frame.height == 3
    assert (tmp_path / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "tradeoff.md").read_text()
    assert "| itemcf | off |" in table and "| itemcf | 0.3 |" in table and table in capsys.readouterr().out


def test_gpt_dgrs_lists_go_through_the_reranker_at_eval_time(tmp_path):
    """A generative family, re-ranked after training from its checkpoint: lam = 1 (no dedup) is its own ranking."""
    out = tmp_path / "gpt"
    saved = _train(out, "model=gpt_dgrs", "trainer.max_epochs=1", "model.n_embd=16", "model.n_layer=1",
                   "model.n_head=1", "model.max_len=20", "callbacks.early_stopping=null")  # fmt: skip
    same = evaluate(out, rerank={**MMR, "lam": 1.0, "dedup": None})["test"]
    assert same == pytest.approx(saved["test"], rel=1e-6)
    diverse = evaluate(out, rerank={**MMR, "lam": 0.3})["test"]
    assert diverse["ild@10"] > saved["test"]["ild@10"]


def test_ddp_workers_fit_their_reranker_and_give_one_process_metrics(tmp_path):
    """Under DDP rank 1 builds the reranker before it has data and fits it at its first evaluation step."""
    common = ("model=itemcf", "data.n_users=301", "rerank=mmr", "rerank.lam=0.3")
    one = _train(tmp_path / "one", *common)
    two = _train(tmp_path / "two", *common, "trainer=ddp")
    assert (tmp_path / "two" / "train_ddp_process_1.log").exists()
    for stage in ("val", "test"):
        assert two[stage] == one[stage]
        assert one[stage]["users/cold"] + one[stage]["users/warm"] == 301
