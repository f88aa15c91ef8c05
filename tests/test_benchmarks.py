"""The benchmark's plain evaluator (an independent, textbook implementation of docs/protocol.md §4) and RecEvalCallback
must report the same numbers on the same lists: the evaluation-overhead ratio compares equal work, and two
implementations agreeing is a check of both."""

import numpy as np
import pytest
from benchmarks import plain, worker
from benchmarks.probe import LAST


@pytest.mark.parametrize(
    ("model", "source"),
    [("pop", "synthetic"), ("mf", "synthetic"), ("itemcf", "ml100k")],  # ml100k: items of up to 6 genres
)
def test_plain_evaluator_reports_the_callbacks_numbers(run_train, model, source):
    results, _ = run_train(
        f"model={model}", f"data={source}", "logger=none", "+callbacks.probe._target_=benchmarks.probe.Probe"
    )
    data, evaluator, module = LAST["datamodule"].data, LAST["evaluator"], LAST["module"]
    assert data.item_genres() is not None  # both sources have genres: intra-list diversity is compared too
    for stage in ("val", "test"):
        users, items = evaluator._gathered(stage, module)[:2]
        expected = plain.all_metrics(items, data.truth(stage)[users], evaluator.ks, worker.catalogue(stage))
        assert results[stage].keys() == expected.keys()
        assert results[stage] == pytest.approx(expected, rel=0, abs=1e-12)
        minimal = plain.recall_ndcg(items, data.truth(stage)[users], 10)
        assert minimal == pytest.approx({n: results[stage][n] for n in minimal}, rel=0, abs=1e-12)
        ranked, _ = worker.plain_stage(module.recommender.score, stage, plain.recall_ndcg)
        assert np.array_equal(ranked.users, users) and np.array_equal(ranked.topk, items)  # the very same lists


def test_plain_top_k_breaks_ties_by_item_index():
    """Against a full sort by (score descending, index ascending), not against recarena's own top_k."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        scores = rng.integers(0, 3, size=(int(rng.integers(1, 20)), int(rng.integers(1, 40)))).astype(np.float32)
        scores[rng.random(scores.shape) < 0.3] = -np.inf  # known items, masked
        k = int(rng.integers(1, scores.shape[1] + 1))
        order = np.stack([np.lexsort((np.arange(len(row)), -row))[:k] for row in scores])
        expected = np.where(np.isneginf(np.take_along_axis(scores, order, axis=1)), -1, order)  # empty slots
        assert np.array_equal(plain.top_k(scores, k), expected), trial


def test_published_table_sets_our_seeds_beside_the_papers(tmp_path):
    """benchmarks.published: mean ± std over seeds of HR@10/NDCG@10 from the job folders, under the published rows."""
    import json

    from benchmarks import published
    from omegaconf import OmegaConf

    for n, (model, seed, hit, ndcg) in enumerate([("gpt_dgrs", 0, 0.30, 0.17), ("gpt_dgrs", 1, 0.32, 0.19),
                                                   ("pop", 0, 0.08, 0.04)]):  # fmt: skip
        job = tmp_path / f"{n}-{model}"
        (job / ".hydra").mkdir(parents=True)
        choices = {"data": "ml1m", "split": "leave_one_out", "model": model}
        OmegaConf.save({"hydra": {"runtime": {"choices": choices}}}, job / ".hydra" / "hydra.yaml")
        OmegaConf.save({"seed": seed}, job / ".hydra" / "config.yaml")
        timing = {"train_seconds": 600.0 * (seed + 1), "peak_rss_mib": 1024.0}
        (job / "metrics.json").write_text(json.dumps({"test": {"hit@10": hit, "ndcg@10": ndcg}, "timing": timing}))
    text = published.table(published.ml1m_jobs([tmp_path]))
    lines = text.splitlines()
    assert lines[2].startswith("| SASRec+ (full cross-entropy) | 0.3152 | 0.1821 |")
    # gpt_dgrs: HR 0.31 ± 0.0141 (sample std of 0.30, 0.32), NDCG 0.18 ± 0.0141, train (10 + 20) / 2 = 15 min
    assert "| **gpt_dgrs** (recarena) | 0.3100 ± 0.0141 | 0.1800 ± 0.0141 | 0 1 | 15.0 | 1.00 |" in text
    assert lines[-1].startswith("| **pop** (recarena) | 0.0800 | 0.0400 | 0 | 10.0 |")


def test_llm_table_labels_runs_by_name_or_by_path_when_names_repeat(tmp_path):
    from benchmarks.llm_table import labels

    a, b = tmp_path / "zeroshot" / "weights" / "test-w0", tmp_path / "finetuned" / "weights" / "test-w0"
    assert labels([tmp_path / "pop", tmp_path / "zeroshot"]) == ["pop", "zeroshot"]
    assert labels([tmp_path / "pop", a, b]) == ["pop", "zeroshot/weights/test-w0", "finetuned/weights/test-w0"]
