"""The sweep report: leaderboard numbers equal the jobs' metrics.json, failures are listed, significance has known
answers, and the W&B report run (and every job's sample table) can be read back from the offline files."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from matplotlib.text import Text
from scipy import stats as scipy_stats

from recarena.evaluation.stats import Summary, holm, paired_tests, summarize
from recarena.reporting.jobs import collect_jobs
from recarena.reporting.leaderboard import build_leaderboards
from recarena.reporting.pairwise import pairwise_tests
from recarena.reporting.plots import MARKER, recall_vs_coverage_figure
from recarena.reporting.sweep_report import make_report
from recarena.utils.wandb_records import offline_runs

ROOT = Path(__file__).resolve().parents[1]
SECRET = "fake-secret-key-789"  # an API key in the environment must reach no file of the sweep or the report run


def _cli(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_API_KEY": SECRET,
        "WANDB_DIR": str(home),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_DATA_DIR": str(home / "data"),
        "RECARENA_ROOT": str(cwd),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _sweep(tmp: Path, *overrides: str) -> tuple[Path, subprocess.CompletedProcess]:
    sweep = tmp / "sweep"
    done = _cli(
        "recarena.train", "-m", "data=synthetic", f"paths.data_dir={ROOT / 'data'}", f"hydra.sweep.dir={sweep}",
        *overrides, cwd=tmp, home=tmp / "wandb_home",
    )  # fmt: skip
    return sweep, done


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """2 models × 2 seeds with W&B offline; the report is written by the Hydra callback at the end."""
    folder, done = _sweep(tmp_path_factory.mktemp("report"), "model=pop,itemcf", "seed=0,1", "logger=wandb")
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def _overrides(job: Path) -> str:
    path = job / ".hydra" / "overrides.yaml"
    return path.read_text() if path.exists() else ""


def _metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


# -- the leaderboard -----------------------------------------------------------------------------------------------
def test_multirun_end_writes_the_report_and_its_numbers_are_the_means_of_the_jobs(sweep):
    for name in ("leaderboard.md", "leaderboard.csv", "pairwise_temporal_ratio.csv", *(f"{plot}_temporal_ratio.png" for
                 plot in ("recall_vs_coverage", "metrics_at_k", "cold_vs_warm", "pairwise"))):  # fmt: skip
        assert (sweep / name).stat().st_size > 0, name
    table = pl.read_csv(sweep / "leaderboard.csv")
    assert sorted(table["model"]) == ["itemcf", "pop"] and set(table["data"]) == {"synthetic"}  # the dataset's name
    jobs = {"pop": ["0-pop", "1-pop"], "itemcf": ["2-itemcf", "3-itemcf"]}
    for model, folders in jobs.items():
        row = table.filter(pl.col("model") == model).row(0, named=True)
        assert row["n_seeds"] == 2 and row["seeds"] == "0 1"
        for key in ("recall@10", "precision@5", "ndcg@20", "hit@10", "coverage@10", "novelty@10", "arp@10", "gini@10",
                    "ild@10", "recall@10/cold", "ndcg@10/warm"):  # fmt: skip
            values = [_metrics(sweep / f)["test"][key] for f in folders]
            assert row[key] == pytest.approx(np.mean(values), rel=1e-9), key
            assert row[f"{key}_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-6, abs=1e-12), key
        seconds = [_metrics(sweep / f)["timing"]["fit_seconds"] for f in folders]
        assert row["fit_s"] == pytest.approx(np.mean(seconds))
        peaks = [_metrics(sweep / f)["timing"]["peak_rss_mib"] for f in folders]
        assert row["peak_mib"] == pytest.approx(np.mean(peaks))
    itemcf = table.filter(pl.col("model") == "itemcf").row(0, named=True)
    assert itemcf["recall@10_p_wilcoxon_holm"] is None  # the best model is not tested against itself
    markdown = (sweep / "leaderboard.md").read_text()
    best = itemcf["recall@10"]
    assert f"**{best:.4f} ± {itemcf['recall@10_std']:.4f}**" in markdown  # the best value is bold
    assert "### Significance against the best model" in markdown and "![recall_vs_coverage]" in markdown
    assert "## Split: temporal_ratio" in markdown and "## Ranks across splits" not in markdown  # one split


def test_a_failed_job_is_listed_with_its_error_line(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("wandb"))
    failed = copy / "4-usercf"
    failed.mkdir()
    (failed / "train.log").write_text(
        "[2026-01-01 10:00:00,000][recarena.data][INFO] - loading\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "recarena.errors.ConfigError: model.recommender.k=-3: usercf needs at least one neighbour (k >= 1)\n"
    )
    done = _cli("recarena.report", str(copy), "--wandb", "off", cwd=tmp_path, home=tmp_path / "wandb_home")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Failed jobs" in done.stdout
    markdown = (copy / "leaderboard.md").read_text()
    line = next(s for s in markdown.splitlines() if s.startswith("| 4-usercf"))
    assert "usercf" in line and "ConfigError: model.recommender.k=-3: usercf needs at least one neighbour" in line
    assert "2 models, 1 failed" in markdown and "## Split: temporal_ratio" in markdown
    assert pl.read_csv(copy / "leaderboard.csv").height == 2  # the failed job is no leaderboard row


def test_a_sweep_stopped_by_a_failing_job_still_reports_it(tmp_path):
    """Hydra's basic sweeper raises after a failed job (no on_multirun_end): the callback reports at exit."""
    sweep, done = _sweep(tmp_path, "model=pop", "eval.ks=[5,10,20],[5,10,500]", "logger=wandb")
    assert done.returncode != 0
    assert "larger than the catalogue" in (sweep / "1-pop" / "train.log").read_text()  # put there by the callback
    markdown = (sweep / "leaderboard.md").read_text()
    line = next(s for s in markdown.splitlines() if s.startswith("| 1-pop"))
    assert "ConfigError: eval.ks contains 500: larger than the catalogue (200 items)" in line
    assert "| pop (eval.ks=[5,10,20]) | 1 |" in markdown
    (report,) = [r for r in offline_runs(sweep) if r.job_type == "report"]  # W&B still works at process exit
    failed = _table(report, "failed_jobs")
    row = dict(zip(failed["columns"], failed["data"][0], strict=True))
    assert row["job"] == "1-pop" and row["split"] == "temporal_ratio" and "larger than the catalogue" in row["error"]


def test_two_splits_give_one_section_each_whose_numbers_are_the_means_of_that_splits_jobs(tmp_path):
    """`split=a,b` in one sweep: a leaderboard per split (csv `split` column), ranks across splits, the all-pairs
    matrix per split, and a W&B report run with the same per-split tables and plots."""
    sweep, done = _sweep(tmp_path, "model=pop,itemcf", "split=temporal_ratio,leave_one_out", "seed=0,1", "logger=wandb")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pl.read_csv(sweep / "leaderboard.csv")
    assert sorted(zip(table["split"], table["model"], strict=True)) == [
        ("leave_one_out", "itemcf"), ("leave_one_out", "pop"), ("temporal_ratio", "itemcf"), ("temporal_ratio", "pop")
    ]  # fmt: skip
    for job in sorted(p for p in sweep.iterdir() if (p / "metrics.json").exists()):
        choices = (job / ".hydra" / "overrides.yaml").read_text()
        split = "leave_one_out" if "split=leave_one_out" in choices else "temporal_ratio"
        model = "itemcf" if "model=itemcf" in choices else "pop"
        same = [
            _metrics(other)["test"]["ndcg@10"]
            for other in sweep.iterdir()
            if (other / "metrics.json").exists()
            and f"split={split}" in (other / ".hydra" / "overrides.yaml").read_text()
            and f"model={model}" in (other / ".hydra" / "overrides.yaml").read_text()
        ]
        row = table.filter((pl.col("split") == split) & (pl.col("model") == model)).row(0, named=True)
        assert len(same) == 2 and row["ndcg@10"] == pytest.approx(np.mean(same), rel=1e-9)
        assert row["rank"] == (1 if model == "itemcf" else 2)
    markdown = (sweep / "leaderboard.md").read_text()
    assert markdown.count("## Split: ") == 2 and "## Ranks across splits" in markdown
    assert "| itemcf | 1 (" in markdown and "### All pairs: ndcg@10" in markdown
    for name in ("ranks_across_splits.png", "pairwise_leave_one_out.png", "cold_vs_warm_leave_one_out.png"):
        assert (sweep / name).stat().st_size > 0, name
    pairs = pl.read_csv(sweep / "pairwise_leave_one_out.csv")
    assert pairs.height == 4 and set(pairs["model_a"]) == {"pop", "itemcf"} and set(pairs["users"]) == {"all", "cold"}
    cold = pairs.filter(pl.col("users") == "cold")["n_users"][0]
    assert f"### All pairs: ndcg@10, cold users ({cold})" in markdown
    loo = [j for j in sweep.iterdir() if "split=leave_one_out" in _overrides(j)]
    counts = sorted({int(_metrics(j)["test"]["users/cold"]) for j in loo})
    assert cold <= counts[0] and f"cold {counts[0]}–{counts[-1]} users" in markdown  # synthetic data is seeded
    (report,) = [r for r in offline_runs(sweep) if r.job_type == "report"]
    for split in ("temporal_ratio", "leave_one_out"):
        rows = _table(report, f"leaderboard/{split}")
        column = rows["columns"].index("split")  # after `data`
        assert len(rows["data"]) == 2 and set(rows["data"][i][column] for i in range(2)) == {split}
        assert len(_table(report, f"pairwise/{split}")["data"]) == 4
        assert report.summary[f"plots/{split}/pairwise/_type"] == "image-file"
        assert report.summary[f"best/{split}/ndcg@10"] == "itemcf"
    assert report.summary["plots/ranks_across_splits/_type"] == "image-file"


# -- W&B offline ---------------------------------------------------------------------------------------------------
def _table(run, key: str) -> dict:
    assert run.summary[f"{key}/_type"] == "table-file"
    return json.loads((run.path.parent / "files" / run.summary[f"{key}/path"]).read_text())


def test_wandb_report_run_and_job_runs_read_back_offline(sweep):
    runs = offline_runs(sweep)
    (report,) = [r for r in runs if r.job_type == "report"]
    jobs = [r for r in runs if r.job_type != "report"]
    assert report.group == sweep.name and {r.group for r in jobs} == {sweep.name}
    leaderboard = _table(report, "leaderboard")
    rows = {row[leaderboard["columns"].index("model")]: row for row in leaderboard["data"]}
    csv = pl.read_csv(sweep / "leaderboard.csv")
    column = leaderboard["columns"].index("ndcg@10")
    for model in ("pop", "itemcf"):
        assert rows[model][column] == pytest.approx(csv.filter(pl.col("model") == model)["ndcg@10"][0])
    for name in ("recall_vs_coverage", "metrics_at_k", "cold_vs_warm", "pairwise"):
        assert report.summary[f"plots/temporal_ratio/{name}/_type"] == "image-file"
    assert report.summary["best/ndcg@10"] == "itemcf"
    assert sorted(r.job_type for r in jobs) == ["itemcf", "itemcf", "pop", "pop"]
    for run in jobs:
        samples = _table(run, "recommendation_samples")
        assert samples["columns"] == ["user", "rank", "item", "title", "score", "explanation"]
        assert len(samples["data"]) == 5 * 10 and all(row[5] for row in samples["data"])
        job = next(p for p in sweep.glob(f"*-{run.job_type}") if _seed_of(p) == run.config["seed"])
        assert run.summary["test/ndcg@10"] == pytest.approx(_metrics(job)["test"]["ndcg@10"], abs=1e-7)
    written = [p for p in sweep.parent.rglob("*") if p.is_file()]  # the sweep, its report and W&B's own folders
    assert any(p.name == "leaderboard.md" for p in written) and any(p.suffix == ".wandb" for p in written)
    assert not [p for p in written if SECRET.encode() in p.read_bytes()]


def _seed_of(job: Path) -> int:
    return int(next(o for o in (job / ".hydra" / "overrides.yaml").read_text().split() if o.startswith("seed="))[5:])


# -- statistics with known answers -------------------------------------------------------------------------------
def test_summary_mean_std_and_t_interval():
    s = summarize([1.0, 2.0, 3.0])
    half = scipy_stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # t(0.975, 2 dof) = 4.3027
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert (s.ci_low, s.ci_high) == pytest.approx((2.0 - half, 2.0 + half))
    one = summarize([0.5])
    assert one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.ci_low)


def test_paired_tests_known_answers():
    base = np.linspace(0.1, 0.8, 20)
    constant = paired_tests(base + 0.05, base)  # better on every user by the same amount
    assert constant.mean_diff == pytest.approx(0.05) and constant.t_p == 0.0 and constant.wilcoxon_p < 1e-4
    distinct = paired_tests(base + 0.05 + 0.001 * np.arange(20), base)  # all 20 differences positive and distinct
    assert distinct.wilcoxon_p == pytest.approx(2 / 2**20)  # exact two-sided signed-rank p: 2 · (1/2)^20
    same = paired_tests(base, base.copy())
    assert (same.mean_diff, same.t_p, same.wilcoxon_p) == (0.0, 1.0, 1.0)


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.02, math.nan])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])


def _fake_job(folder: Path, model: str, seed: int, recall: np.ndarray) -> None:
    """A finished job's files with constructed per-user test recall@10 (other metrics derived from it)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(f"seed: {seed}\neval:\n  cold_threshold: 20\n")
    (folder / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    choices:\n      model: {model}\n")
    (folder / ".hydra" / "overrides.yaml").write_text(f"- model={model}\n- seed={seed}\n")
    users = np.arange(len(recall))
    per_user = {"recall@10": recall, "ndcg@10": recall / 2, "precision@10": recall / 10}
    pl.DataFrame({"user": users, "stage": ["test"] * len(users), **per_user}).write_parquet(
        folder / "per_user_metrics.parquet"
    )
    test = {name: float(v.mean()) for name, v in per_user.items()}
    test.update({"coverage@10": 0.5, "hit@10": 1.0, "recall@10/cold": test["recall@10"]})
    (folder / "metrics.json").write_text(json.dumps({"test": test, "timing": {"fit_seconds": 1.0}}))


def test_labels_name_only_the_settings_the_jobs_ran_with_differently(tmp_path):
    """Two sweeps into one folder: the first set `model.k` through its experiment and showed progress bars, the second
    set the same k on its command line. Only `arm` (a config group) and a real change of k tell jobs apart."""
    ran = {  # folder: (config k, overrides)
        "0-a": (20, ["+arm=one", "trainer.enable_progress_bar=False"]),
        "1-b": (20, ["+arm=two", "trainer.enable_progress_bar=False"]),
        "0-c": (20, ["+arm=three", "model.k=20"]),
        "1-d": (50, ["+arm=three", "model.k=50"]),
    }
    for name, (k, overrides) in ran.items():
        _fake_job(tmp_path / name, "itemcf", 0, np.linspace(0.1, 0.8, 5))
        (tmp_path / name / ".hydra" / "config.yaml").write_text(f"seed: 0\nmodel:\n  k: {k}\n")
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    labels = {job.path.name: job.label for job in collect_jobs(tmp_path)}
    assert labels == {
        "0-a": "itemcf (arm=one)",
        "1-b": "itemcf (arm=two)",
        "0-c": "itemcf (arm=three, k=20)",
        "1-d": "itemcf (arm=three, k=50)",
    }


def test_leaderboard_significance_on_constructed_per_user_values(tmp_path):
    base = np.linspace(0.1, 0.8, 30)
    _fake_job(tmp_path / "0-better", "better", 0, base + 0.1)  # best: +0.1 on every user
    _fake_job(tmp_path / "1-base", "base", 0, base)
    _fake_job(tmp_path / "2-twin", "twin", 0, base + 0.2)  # two seeds whose per-user mean equals the best model
    _fake_job(tmp_path / "3-twin", "twin", 1, base)
    (board,) = build_leaderboards(tmp_path, k=10)
    assert board.best_by_metric["recall@10"] in ("better", "twin")
    base_vs_best = board.comparison("recall@10", "base")
    assert base_vs_best.mean_diff == pytest.approx(-0.1) and base_vs_best.p_ttest == 0.0
    assert base_vs_best.p_wilcoxon < 1e-4
    other = "twin" if board.best_by_metric["recall@10"] == "better" else "better"
    same = board.comparison("recall@10", other)  # per-user means over seeds first: no difference at all
    assert same.mean_diff == pytest.approx(0.0, abs=1e-12) and same.p_ttest == 1.0 and same.p_wilcoxon == 1.0
    report = make_report(tmp_path, wandb="off")
    markdown = report.files["md"].read_text()
    assert "| base | 1 | 0.4500 † |" in markdown and "| twin | 2 |" in markdown


def test_pairwise_matrix_is_symmetric_and_holm_adjusted_over_all_pairs():
    """Four models on 10 users. A, C and D = B are ordered so that every pair but (B, D) has 10 distinct positive
    differences: exact two-sided Wilcoxon p = 2 / 2**10 each; (B, D) are identical: p = 1. Holm over the 6 pairs:
    the five equal p's become 6·p (running max of 6p, 5p, ..., 2p), the last min(1, 1·1) = 1."""
    users = np.arange(10)
    base = np.linspace(0.1, 0.5, 10)
    values = {
        "A": base + 0.01 * np.arange(1, 11),
        "B": base,
        "C": base + 0.2 + 0.001 * np.arange(1, 11),
        "D": base.copy(),
    }
    frames = {label: pl.DataFrame({"user": users, "ndcg@10": v}) for label, v in values.items()}
    pw = pairwise_tests(frames, "ndcg@10")
    p = 2 / 2**10
    expected = np.array([[np.nan, 6 * p, 6 * p, 6 * p], [6 * p, np.nan, 6 * p, 1.0],
                         [6 * p, 6 * p, np.nan, 6 * p], [6 * p, 1.0, 6 * p, np.nan]])  # fmt: skip
    np.testing.assert_allclose(pw.p_wilcoxon, expected)
    np.testing.assert_allclose(pw.p_ttest, pw.p_ttest.T)  # symmetric
    np.testing.assert_allclose(pw.mean_diff, -pw.mean_diff.T)  # row − column
    assert pw.mean_diff[0, 1] == pytest.approx(0.055) and pw.n_users[0, 1] == 10
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    labels = list(values)
    raw_t = [paired_tests(values[labels[i]], values[labels[j]]).t_p for i, j in pairs]
    np.testing.assert_allclose([pw.p_ttest[i, j] for i, j in pairs], holm(raw_t))  # the t-test: Holm over all pairs
    assert pw.wins("C", 0.05) == ["A", "B", "D"] and pw.wins("A", 0.05) == ["B", "D"] and pw.wins("B", 0.05) == []


# -- plots ---------------------------------------------------------------------------------------------------------
def _scatter_board(points: dict[str, tuple[float, float]]) -> SimpleNamespace:
    """The leaderboard fields the scatter reads: label → (coverage@10, recall@10), small std over seeds."""
    rows = [
        SimpleNamespace(
            label=label, stats={"coverage@10": Summary(c, 0.002, c, c, 3), "recall@10": Summary(r, 0.001, r, r, 3)}
        )
        for label, (c, r) in points.items()
    ]
    return SimpleNamespace(k=10, rows=rows)


SWEEP_POINTS = {  # a real sweep: itemcf, usercf and hybrid nearly coincide
    "gpt_dgrs": (0.395, 0.165), "bert_dgrs": (0.295, 0.137), "usercf": (0.142, 0.118), "hybrid": (0.130, 0.118),
    "itemcf": (0.124, 0.117), "mf": (0.361, 0.113), "pop": (0.045, 0.070), "content": (0.116, 0.029),
}  # fmt: skip
CLUSTER = {f"model_{i}": (0.2 + 0.001 * (i % 3), 0.1 + 0.001 * (i // 3)) for i in range(9)} | {"far": (0.6, 0.4)}


@pytest.mark.parametrize("points", [SWEEP_POINTS, CLUSTER], ids=["sweep", "cluster"])
def test_scatter_labels_overlap_neither_each_other_nor_the_points(points):
    fig = recall_vs_coverage_figure(_scatter_board(points))
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    (ax,) = fig.axes
    labels = {t.get_text(): Text.get_window_extent(t, renderer) for t in ax.texts}  # the text, not its leader
    assert sorted(labels) == sorted(points)
    r = MARKER / 2 * fig.dpi / 72
    markers = [ax.transData.transform(p) for p in points.values()]
    markers = [np.array([x - r, y - r, x + r, y + r]) for x, y in markers]
    boxes = [np.array(b.extents) for b in labels.values()]

    def area(a, b):
        return max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)

    for i, a in enumerate(boxes):
        assert all(area(a, b) == 0 for b in boxes[i + 1 :] + markers), list(labels)[i]
        assert area(a, np.array(ax.bbox.extents)) == pytest.approx((a[2] - a[0]) * (a[3] - a[1]))  # inside the axes
