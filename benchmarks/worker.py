"""One benchmark run in a fresh process (so peak RSS is this model's alone): recarena end to end through
train.py's road (RecDataModule → FitOnceModule → Trainer + RecEvalCallback), then the yardsticks on the same data.

`python -m benchmarks.worker --scale ml1m --model itemcf --threads 1 --out row.json` (run.py calls this)."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import recarena  # noqa: F401  (before torch, as in `python -m recarena.train`: it sets OpenMP's wait policy)

# isort: split
import numpy as np
import torch

from benchmarks import plain
from benchmarks.probe import LAST
from benchmarks.scales import DIRECT, overrides

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def compose(extra: list[str], output_dir: Path):
    """conf/train.yaml composed as the CLI would, writing into `output_dir`."""
    from recarena.utils.compose import compose_train_config

    return compose_train_config(extra, output_dir, ROOT / "data")


def run_recarena(scale: str, model: str, threads: int, run_dir: Path) -> tuple[dict[str, Any], Any]:
    """recarena.train.train on the scale's config; returns the measured row and the composed config."""
    from recarena.train import train

    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = compose([*overrides(scale, model, threads), "+callbacks.probe._target_=benchmarks.probe.Probe"], run_dir)
    start = time.perf_counter()
    results = train(cfg)
    total = time.perf_counter() - start
    data, evaluator, module = LAST["datamodule"].data, LAST["evaluator"], LAST["module"]
    timing = {**LAST["datamodule"].timing, **evaluator.timing, "fit_seconds": float(module.fit_seconds)}
    n_eval = len(data.eval_users("val")) + len(data.eval_users("test"))
    eval_seconds = timing["val_seconds"] + timing["test_seconds"]
    row = {
        "scale": scale, "model": model, "threads": threads, "status": "ok",
        "users": data.n_users, "items": data.n_items, "train_nnz": int(data.train.nnz),
        "eval_batch": LAST["datamodule"].eval_batch_size,
        "load_s": timing["load_seconds"], "split_s": timing["split_seconds"], "fit_s": timing["fit_seconds"],
        "val_s": timing["val_seconds"], "test_s": timing["test_seconds"], "eval_s": eval_seconds,
        "e2e_s": total, "peak_rss_gib": peak_rss_gib(), "eval_users": n_eval, "users_per_s": n_eval / eval_seconds,
        "val_ndcg@10": results["val"]["ndcg@10"], "test_ndcg@10": results["test"]["ndcg@10"],
        "test_recall@10": results["test"]["recall@10"],
    }  # fmt: skip
    return row, cfg


def median_seconds(repeats: int, function: Callable[..., Any], *args: Any) -> float:
    """Median seconds of `repeats` calls of function(*args): one ~0.1 s measurement on a shared machine is mostly
    noise."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def catalogue(stage: str) -> plain.Catalogue:
    """Popularity, genres and the cold slice of the stage's evaluated users, as the callback defines them."""
    data, evaluator = LAST["datamodule"].data, LAST["evaluator"]
    cold = data.train_counts()[data.eval_users(stage)] <= evaluator.cold_threshold
    return plain.Catalogue(data.popularity(), data.n_users, data.item_genres(), cold, evaluator.head_share)


def metric_overhead(row: dict[str, Any], repeats: int) -> None:
    """(b) RecEvalCallback.compute vs the plain evaluator's metrics on the very same top-K arrays (val + test),
    at equal work (every reported number) and at recall/ndcg@10 alone; the two equal-work summaries must agree."""
    data, evaluator, module = LAST["datamodule"].data, LAST["evaluator"], LAST["module"]
    ours = same = minimal = 0.0
    worst = 0.0
    for stage in ("val", "test"):
        users, items = evaluator._gathered(stage, module)[:2]
        truth, shop = data.truth(stage)[users], catalogue(stage)
        ours += median_seconds(repeats, evaluator.compute, data, stage, users, items)
        same += median_seconds(repeats, plain.all_metrics, items, truth, evaluator.ks, shop)
        minimal += median_seconds(repeats, plain.recall_ndcg, items, truth, 10)
        summary = evaluator.compute(data, stage, users, items)[1]
        expected = plain.all_metrics(items, truth, evaluator.ks, shop)
        if summary.keys() != expected.keys():
            raise AssertionError(f"{stage}: plain metrics differ in names: {sorted(summary.keys() ^ expected.keys())}")
        worst = max(worst, max(abs(summary[n] - expected[n]) for n in summary))
    row.update(metrics_s=ours, plain_metrics_s=same, metrics_x=ours / same, minimal_metrics_s=minimal,
               metrics_minimal_x=ours / minimal, metrics_max_abs_diff=worst)  # fmt: skip


def recarena_eval_seconds() -> float:
    """val + test seconds of one more evaluation of the fitted model (trainer.validate, then trainer.test)."""
    trainer, dm, module, evaluator = LAST["trainer"], LAST["datamodule"], LAST["module"], LAST["evaluator"]
    trainer.validate(module, datamodule=dm, verbose=False)
    trainer.test(module, datamodule=dm, verbose=False)
    return evaluator.timing["val_seconds"] + evaluator.timing["test_seconds"]


def plain_stage(
    score: plain.ScoreFn, stage: str, measure: plain.Measure | None = None
) -> tuple[plain.PlainResult, float]:
    """The plain evaluator on one stage of the run's data, and its seconds including building the known-item
    matrix (recarena's loader builds it before the callback's val/test clock starts, but within end-to-end).
    `measure` defaults to every metric the callback reports (equal work)."""
    dm, evaluator = LAST["datamodule"], LAST["evaluator"]
    shop = catalogue(stage)
    if measure is None:
        measure = lambda topk, truth: plain.all_metrics(topk, truth, evaluator.ks, shop)  # noqa: E731
    start = time.perf_counter()
    known = dm.data.known(stage)  # train + valid for test: a CSR union
    users, truth = dm.data.eval_users(stage), dm.data.truth(stage)
    result = plain.evaluate(score, users, known, truth, dm.eval_batch_size, max(evaluator.ks), measure)
    return result, time.perf_counter() - start


def plain_seconds(score: plain.ScoreFn, measure: plain.Measure | None) -> float:
    """The plain evaluator's own val + test seconds (score, mask, top-K, metrics; not the known-item build)."""
    return sum(plain_stage(score, stage, measure)[0].seconds for stage in ("val", "test"))


def eval_overhead(row: dict[str, Any], repeats: int) -> None:
    """(b) recarena's whole evaluation (val + test; the run's own and repeats - 1 more, median) vs the plain
    evaluator driving the same fitted recommender (median of `repeats`), at equal work and at recall/ndcg@10 alone."""
    score = LAST["module"].recommender.score
    first = row["eval_s"]
    ours = statistics.median([first, *(recarena_eval_seconds() for _ in range(repeats - 1))])
    same = statistics.median(plain_seconds(score, None) for _ in range(repeats))
    minimal = statistics.median(plain_seconds(score, plain.recall_ndcg) for _ in range(repeats))
    row.update(eval_median_s=ours, plain_eval_s=same, eval_x=ours / same, plain_minimal_eval_s=minimal,
               eval_minimal_x=ours / minimal, repeats=repeats, same_lists=same_lists(score))  # fmt: skip


def same_lists(score: plain.ScoreFn) -> bool:
    """Whether the plain evaluator ranked every evaluated user exactly as recarena did (val and test)."""
    evaluator, module = LAST["evaluator"], LAST["module"]
    for stage in ("val", "test"):
        result = plain_stage(score, stage, plain.recall_ndcg)[0]
        users, items = evaluator._gathered(stage, module)[:2]
        if not (np.array_equal(result.users, users) and np.array_equal(result.topk, items)):
            return False
    return True


def direct(row: dict[str, Any], cfg, threads: int) -> None:
    """(a) `implicit` called directly on the same train CSR with the same hyper-parameters, plain evaluation."""
    import hydra
    from implicit.nearest_neighbours import CosineRecommender

    data = LAST["datamodule"].data
    start = time.perf_counter()
    if row["model"] == "itemcf":
        model = CosineRecommender(K=int(cfg.model.recommender.k), num_threads=threads)
        model.fit(data.train, show_progress=False)
        similarity = model.similarity

        def score(users: np.ndarray, history):
            return (history @ similarity).toarray()
    else:
        model = hydra.utils.instantiate(cfg.model.recommender.model)
        model.fit(data.train, show_progress=False)
        users_f, items_f = np.asarray(model.user_factors), np.asarray(model.item_factors)

        def score(users: np.ndarray, history):
            return users_f[users] @ items_f.T

    fit_s = time.perf_counter() - start
    results = {stage: plain_stage(score, stage) for stage in ("val", "test")}
    eval_s = sum(seconds for _, seconds in results.values())
    model_part = row["fit_s"] + row["eval_s"]
    row.update(
        direct_fit_s=fit_s,
        direct_eval_s=eval_s,
        direct_e2e_s=row["load_s"] + row["split_s"] + fit_s + eval_s,  # same data road, then implicit + plain
        direct_test_ndcg10=results["test"][0].metrics["ndcg@10"],
        overhead_e2e_x=row["e2e_s"] / (row["load_s"] + row["split_s"] + fit_s + eval_s),
        overhead_model_x=model_part / (fit_s + eval_s),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--no-compare", action="store_true", help="skip the plain/implicit yardsticks")
    parser.add_argument("--repeats", type=int, default=5, help="timings of the evaluation comparison (median)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: time at least one evaluation")
    torch.set_num_threads(args.threads)
    row, cfg = run_recarena(args.scale, args.model, args.threads, args.run_dir)
    if not args.no_compare:
        metric_overhead(row, args.repeats)
        eval_overhead(row, args.repeats)
        if args.model in DIRECT:
            direct(row, cfg, args.threads)
    args.out.write_text(json.dumps(row, indent=1))
    print(json.dumps(row), file=sys.stderr)


if __name__ == "__main__":
    main()
