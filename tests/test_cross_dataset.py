"""The report across datasets: ranks, mean ranks, Friedman χ², Iman–Davenport F and the Nemenyi CD equal hand-computed
values (Demšar 2006); a sweep over two datasets gets one leaderboard per (dataset, split), a `data` column and
cross_dataset.md/.csv/.png; models missing somewhere are left out of the test by name; too little data gives a note."""

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from recarena.reporting.cross_dataset import (
    critical_difference,
    cross_dataset,
    friedman_test,
    markdown_lines,
    nemenyi_pvalues,
    rank_models,
)
from recarena.reporting.leaderboard import build_leaderboards
from recarena.reporting.sweep_report import make_report
from recarena.utils.wandb_records import offline_runs

# -- the statistics on a table built by hand ------------------------------------------------------------------------
MODELS = ["A", "B", "C", "D"]
VALUES = np.array(  # 5 datasets (rows) × 4 models (columns), test ndcg@10: higher is better
    [
        [0.40, 0.30, 0.20, 0.10],  # ranks 1    2    3 4
        [0.50, 0.45, 0.30, 0.20],  # ranks 1    2    3 4
        [0.35, 0.35, 0.25, 0.15],  # ranks 1.5  1.5  3 4   (A and B tie: they share (1 + 2) / 2)
        [0.55, 0.60, 0.30, 0.40],  # ranks 2    1    4 3
        [0.22, 0.20, 0.21, 0.05],  # ranks 1    3    2 4
    ]
)
RANKS = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [1.5, 1.5, 3, 4], [2, 1, 4, 3], [1, 3, 2, 4]])
R = np.array([6.5, 9.5, 15, 19]) / 5  # mean ranks: A 1.3, B 1.9, C 3.0, D 3.8 (they sum to k(k+1)/2 = 10)
N, K = 5, 4


def test_ranks_and_mean_ranks_by_hand():
    np.testing.assert_array_equal(rank_models(VALUES), RANKS)
    np.testing.assert_allclose(friedman_test(VALUES).mean_ranks, R)
    np.testing.assert_array_equal(rank_models(-VALUES, higher_is_better=False), RANKS)  # lower is better: same order


def test_friedman_iman_davenport_and_critical_difference_by_hand():
    fr = friedman_test(VALUES, alpha=0.05)
    chi2_demsar = 12 * 5 / (4 * 5) * (sum(R**2) - 4 * 25 / 4)  # 12N/(k(k+1)) [Σ R_j² − k(k+1)²/4] = 3 · 3.74 = 11.22
    tie_correction = 1 - (2**3 - 2) / (5 * 4 * (4**2 - 1))  # one pair tied on one dataset: 1 − 6/300 = 0.98
    chi2 = chi2_demsar / tie_correction  # 11.449
    assert chi2_demsar == pytest.approx(11.22)
    assert fr.chi2 == pytest.approx(chi2)
    assert fr.chi2 == pytest.approx(stats.friedmanchisquare(*VALUES.T).statistic)  # scipy: same data, same χ²
    assert fr.p == pytest.approx(stats.friedmanchisquare(*VALUES.T).pvalue)
    assert fr.p == pytest.approx(stats.chi2.sf(chi2, 4 - 1))
    f = (5 - 1) * chi2 / (5 * (4 - 1) - chi2)  # Iman–Davenport: (N−1)χ²/(N(k−1) − χ²) = 4 · 11.449 / 3.551 = 12.90
    assert fr.f == pytest.approx(f)
    assert fr.p_f == pytest.approx(stats.f.sf(f, 4 - 1, (4 - 1) * (5 - 1)))  # F(3, 12)
    assert fr.q_alpha == pytest.approx(2.569, abs=5e-4)  # Demšar's table for k = 4, α = 0.05
    cd = 2.569 * math.sqrt(4 * 5 / (6 * 5))  # q_α √(k(k+1)/(6N)) = 2.569 · 0.8165 = 2.098
    assert fr.cd == pytest.approx(cd, abs=1e-3)
    assert critical_difference(K, N, 0.05) == pytest.approx(fr.cd)


def test_ties_everywhere_and_perfect_agreement_do_not_crash():
    same = friedman_test(np.ones((3, 4)))  # nothing to tell apart
    assert (same.chi2, same.p, same.f, same.p_f) == (0.0, 1.0, 0.0, 1.0)
    agree = friedman_test(np.tile([0.4, 0.3, 0.2], (6, 1)))  # every dataset ranks the models alike
    assert agree.chi2 == pytest.approx(6 * 2) and agree.f == math.inf and agree.p_f == 0.0  # χ²_F = N(k − 1)


def test_nemenyi_pvalues_agree_with_the_critical_difference():
    """A pair differs (p < α) exactly when its mean ranks are further apart than the CD: only A (1.3) and D (3.8)."""
    p = nemenyi_pvalues(VALUES, MODELS)
    fr = friedman_test(VALUES)
    np.testing.assert_allclose(p, p.T)
    np.testing.assert_allclose(np.diag(p), 1.0)
    for i in range(K):
        for j in range(i + 1, K):
            assert (p[i, j] < 0.05) == (abs(R[i] - R[j]) > fr.cd), (MODELS[i], MODELS[j])
    assert p[0, 3] < 0.05 and p[0, 2] > 0.05 and p[1, 3] > 0.05  # |1.3 − 3.8| = 2.5 > 2.098; 1.7 and 1.9 are not
    q = abs(R[0] - R[3]) / math.sqrt(4 * 5 / (6 * 5))  # Nemenyi's statistic; the Studentized range is in units of √2
    assert p[0, 3] == pytest.approx(stats.studentized_range.sf(q * math.sqrt(2), 4, np.inf), rel=1e-6)


# -- sweeps on disk ---------------------------------------------------------------------------------------------------
def _job(
    sweep: Path, folder: str, data: str, split: str, model: str, seed: int, ndcg: float | None, sampled: bool = False
) -> None:
    """A job folder as Hydra and the train loop write it; `ndcg=None`: a job that failed before its test stage."""
    job = sweep / folder
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(f"seed: {seed}\ndata:\n  name: {data}\neval:\n  cold_threshold: 20\n")
    (job / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  runtime:\n    choices:\n      data: {data}\n      split: {split}\n      model: {model}\n"
    )
    (job / ".hydra" / "overrides.yaml").write_text(f"- data={data}\n- split={split}\n- model={model}\n- seed={seed}\n")
    if ndcg is None:
        (job / "train.log").write_text("ValueError: the model diverged\n")
        return
    spread = np.array([-0.02, 0.0, 0.02])  # three test users around the job's mean
    per_user = {"ndcg@10": ndcg + spread, "recall@10": 2 * ndcg + spread, "train_interactions": [5, 30, 50]}
    frame = pl.DataFrame({"user": [0, 1, 2], "stage": ["test"] * 3, **per_user})
    frame.write_parquet(job / "per_user_metrics.parquet")
    test = {"ndcg@10": ndcg, "recall@10": 2 * ndcg, "precision@10": ndcg / 5, "hit@10": 1.0, "coverage@10": 0.5}
    test |= {"recall@10/cold": 2 * ndcg, "recall@10/warm": 2 * ndcg}
    saved = {"test": test, "timing": {"fit_seconds": 1.0, "test_seconds": 0.5}}
    if sampled:  # scored on 3 of 10 test users, as eval.max_users=3 records it
        saved["sampling"] = {"eval_max_users": 3, "eval_users": {"test": 3}, "all_eval_users": {"test": 10}}
    (job / "metrics.json").write_text(json.dumps(saved))


# test ndcg@10 (mean over seeds) per dataset: ml100k itemcf 0.30 > mf 0.25 > pop 0.10, filmtrust mf 0.40 > itemcf
# 0.35 > pop 0.20 → mean ranks itemcf (1 + 2)/2 = 1.5, mf (2 + 1)/2 = 1.5, pop (3 + 3)/2 = 3
TWO_DATASETS = [
    ("ml100k", "pop", 0, 0.10), ("ml100k", "itemcf", 0, 0.28), ("ml100k", "itemcf", 1, 0.32), ("ml100k", "mf", 0, 0.25),
    ("filmtrust", "pop", 0, 0.20), ("filmtrust", "itemcf", 0, 0.35), ("filmtrust", "mf", 0, 0.40),
]  # fmt: skip


def _sweep(tmp: Path, jobs: list[tuple[str, str, int, float | None]], split: str = "leave_one_out") -> Path:
    sweep = tmp / "sweep"
    for i, (data, model, seed, ndcg) in enumerate(jobs):
        _job(sweep, f"{i}-{model}", data, split, model, seed, ndcg)
    return sweep


def test_two_datasets_give_a_leaderboard_each_and_the_report_across_datasets(tmp_path):
    sweep = _sweep(tmp_path, TWO_DATASETS)
    report = make_report(sweep, wandb="off")
    assert [b.title for b in report.boards] == ["ml100k · leave_one_out", "filmtrust · leave_one_out"]
    table = pl.read_csv(sweep / "leaderboard.csv")
    assert table.columns[:2] == ["data", "split"]
    assert sorted(zip(table["data"], table["model"], table["rank"], strict=True)) == [
        ("filmtrust", "itemcf", 2), ("filmtrust", "mf", 1), ("filmtrust", "pop", 3),
        ("ml100k", "itemcf", 1), ("ml100k", "mf", 2), ("ml100k", "pop", 3),
    ]  # fmt: skip
    itemcf = table.filter((pl.col("data") == "ml100k") & (pl.col("model") == "itemcf")).row(0, named=True)
    assert itemcf["n_seeds"] == 2 and itemcf["ndcg@10"] == pytest.approx((0.28 + 0.32) / 2)
    for name in ("pairwise_ml100k_leave_one_out.csv", "metrics_at_k_filmtrust_leave_one_out.png"):
        assert (sweep / name).stat().st_size > 0, name  # per-board files name the dataset
    for key, name in (("cross_dataset_md", "cross_dataset.md"), ("cross_dataset_csv", "cross_dataset.csv"),
                      ("cross_dataset_cd", "cross_dataset_cd.png")):  # fmt: skip
        assert report.files[key] == sweep / name and (sweep / name).stat().st_size > 0, name
    across = pl.read_csv(sweep / "cross_dataset.csv")
    mean_rank = dict(zip(across["model"], across["mean_rank"], strict=True))
    assert mean_rank == {"itemcf": 1.5, "mf": 1.5, "pop": 3.0}
    assert across.filter(pl.col("model") == "mf")["filmtrust_leave_one_out/rank"][0] == 1.0
    assert across.filter(pl.col("model") == "itemcf")["ml100k_leave_one_out/ndcg@10"][0] == pytest.approx(0.30)
    chi2 = 12 * 2 / (3 * 4) * ((1.5**2 + 1.5**2 + 3**2) - 3 * 16 / 4)  # N = 2, k = 3: 2 · (13.5 − 12) = 3
    assert report.across.friedman.chi2 == pytest.approx(chi2)
    assert report.across.friedman.cd == pytest.approx(critical_difference(3, 2))
    markdown = (sweep / "leaderboard.md").read_text()
    assert "## Dataset · split: ml100k · leave_one_out" in markdown and "## Dataset · split: filmtrust" in markdown
    assert "## Across datasets" in markdown and "![cross_dataset_cd](cross_dataset_cd.png)" in markdown
    assert f"χ²_F = {chi2:.3f}" in markdown and "Iman–Davenport" in markdown and "CD = q_α" in markdown
    assert "| itemcf | 1.50 | 0.3000 (1) | 0.3500 (2) |" in markdown
    assert "# Across datasets: sweep" in (sweep / "cross_dataset.md").read_text()


def test_a_sweep_of_one_dataset_keeps_its_files_and_adds_the_data_column(tmp_path):
    sweep = _sweep(tmp_path, [j for j in TWO_DATASETS if j[0] == "ml100k"])
    report = make_report(sweep, wandb="off")
    (board,) = report.boards
    assert board.title == "leave_one_out" and board.key == "leave_one_out" and report.across is None
    table = pl.read_csv(sweep / "leaderboard.csv")
    assert set(table["data"]) == {"ml100k"} and set(table["split"]) == {"leave_one_out"}
    assert (sweep / "pairwise_leave_one_out.csv").exists() and (sweep / "metrics_at_k_leave_one_out.png").exists()
    assert not list(sweep.glob("cross_dataset*"))
    markdown = (sweep / "leaderboard.md").read_text()
    assert "## Split: leave_one_out" in markdown and "## Across datasets" not in markdown


def test_data_falls_back_to_the_configs_data_name(tmp_path):
    sweep = _sweep(tmp_path, TWO_DATASETS)
    hydra_yaml = sweep / "0-pop" / ".hydra" / "hydra.yaml"
    hydra_yaml.write_text(hydra_yaml.read_text().replace("      data: ml100k\n", ""))  # no data choice recorded
    boards = build_leaderboards(sweep)
    assert "pop" in [r.label for r in boards[0].rows] and boards[0].data == "ml100k" and len(boards) == 2


def test_a_model_missing_on_one_dataset_is_left_out_of_the_test_by_name(tmp_path):
    sweep = _sweep(tmp_path, [*TWO_DATASETS, ("ml100k", "bpr", 0, 0.50), ("filmtrust", "ease", 0, None)])
    report = make_report(sweep, wandb="off")
    across = report.across
    assert across.tested == ["itemcf", "mf", "pop"] and set(across.left_out) == {"bpr"}
    assert [across.mean_rank(m) for m in ("itemcf", "mf", "pop")] == [1.5, 1.5, 3.0]  # ranked among the tested only
    assert math.isnan(across.mean_rank("bpr"))
    text = (sweep / "cross_dataset.md").read_text()
    assert "Left out of the test" in text
    assert "**bpr**: no finished job (or no ndcg@10) on filmtrust · leave_one_out" in text
    assert "| bpr | — | 0.5000 | — |" in text  # its value is shown, without a rank
    csv = pl.read_csv(sweep / "cross_dataset.csv").filter(pl.col("model") == "bpr").row(0, named=True)
    assert csv["in_test"] is False and csv["mean_rank"] is None and csv["ml100k_leave_one_out/ndcg@10"] == 0.5


def test_fewer_than_two_datasets_or_models_give_a_note_and_no_test(tmp_path):
    one = build_leaderboards(_sweep(tmp_path / "one", [j for j in TWO_DATASETS if j[0] == "filmtrust"]))
    result = cross_dataset(one)
    assert result.friedman is None and result.nemenyi is None and result.tested == ["mf", "itemcf", "pop"]
    assert "No Friedman test" in result.note and "1 dataset with results" in result.note
    assert result.note in markdown_lines(result)
    # two datasets in the sweep, but every job on one of them failed: a note, no diagram, no crash
    ml100k = [j for j in TWO_DATASETS if j[0] == "ml100k"]
    failed = _sweep(tmp_path / "failed", [*ml100k, ("filmtrust", "pop", 0, None)])
    report = make_report(failed, wandb="off")
    assert report.across.friedman is None and not (failed / "cross_dataset_cd.png").exists()
    text = (failed / "cross_dataset.md").read_text()
    assert "No Friedman test" in text and "Not counted as datasets (no finished job): filmtrust · leave_one_out" in text
    # two datasets, one model each
    lonely = make_report(_sweep(tmp_path / "lonely", [("a", "pop", 0, 0.1), ("b", "mf", 0, 0.2)]), wandb="off")
    assert lonely.across.friedman is None and lonely.across.tested == []
    assert set(lonely.across.left_out) == {"pop", "mf"} and "0 such models" in lonely.across.note


def test_two_datasets_and_two_splits_give_four_boards(tmp_path):
    sweep = _sweep(tmp_path / "a", TWO_DATASETS, split="leave_one_out")
    for i, (data, model, seed, ndcg) in enumerate(TWO_DATASETS):
        _job(sweep, f"{10 + i}-{model}", data, "temporal_ratio", model, seed, ndcg / 2)
    boards = build_leaderboards(sweep)
    assert [b.key for b in boards] == [
        "ml100k_leave_one_out", "filmtrust_leave_one_out", "ml100k_temporal_ratio", "filmtrust_temporal_ratio"
    ]  # fmt: skip
    result = cross_dataset(boards)
    assert result.friedman.n_datasets == 4 and result.friedman.n_models == 3
    assert [result.mean_rank(m) for m in ("itemcf", "mf", "pop")] == [1.5, 1.5, 3.0]


def test_the_wandb_report_run_carries_the_cross_dataset_table_diagram_and_statistics(tmp_path):
    sweep = _sweep(tmp_path, TWO_DATASETS)
    report = make_report(sweep, wandb="on")  # offline (conftest)
    assert report.wandb_dir is not None
    (run,) = [r for r in offline_runs(sweep) if r.job_type == "report"]
    fr = report.across.friedman
    assert run.summary["friedman/chi2"] == pytest.approx(fr.chi2) and run.summary["friedman/p"] == pytest.approx(fr.p)
    assert run.summary["nemenyi/cd"] == pytest.approx(fr.cd)
    assert run.summary["cross_dataset/_type"] == "table-file"
    table = json.loads((run.path.parent / "files" / run.summary["cross_dataset/path"]).read_text())
    rows = {row[0]: dict(zip(table["columns"], row, strict=True)) for row in table["data"]}
    assert rows["pop"]["mean_rank"] == 3.0
    assert run.summary["plots/cross_dataset_cd/_type"] == "image-file"
    assert run.summary["best/ml100k_leave_one_out/ndcg@10"] == "itemcf"


def test_a_model_scored_on_a_user_sample_is_labelled_and_not_ranked(tmp_path):
    """Its mean is over other users than the others': shown and labelled, never in the ranks or the Friedman test."""
    sweep = tmp_path / "sweep"
    for i, (data, model, seed, ndcg) in enumerate(TWO_DATASETS):
        _job(sweep, f"{i}-{model}", data, "leave_one_out", model, seed, ndcg)
    for i, data in enumerate(("ml100k", "filmtrust")):
        _job(sweep, f"{10 + i}-llm", data, "leave_one_out", "llm", 0, 0.90, sampled=True)
    across = make_report(sweep, wandb="off").across
    assert across.tested == ["itemcf", "mf", "pop"] and across.sampled == ["llm"]
    assert [across.mean_rank(m) for m in ("itemcf", "mf", "pop")] == [1.5, 1.5, 3.0]  # as without the llm rows
    text = (sweep / "cross_dataset.md").read_text()
    assert "| llm (sampled users) | — | 0.9000 | 0.9000 |" in text
    assert "**llm**: scored on a sample of users (eval.max_users) on ml100k · leave_one_out, filmtrust" in text
    row = pl.read_csv(sweep / "cross_dataset.csv").filter(pl.col("model") == "llm").row(0, named=True)
    assert row["sampled"] is True and row["in_test"] is False and row["mean_rank"] is None
