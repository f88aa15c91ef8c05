"""One benchmark run in a fresh process (so peak RSS is this model's alone): recarena end to end through
train.py's road (RecDataModule → FitOnceModule → Trainer + RecEvalCallback), then the yardsticks on the same data.

`python -m benchmarks.worker --scale ml1m --model itemcf --threads 1 --out row.json` (run.py calls this)."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

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


def metric_overhead(row: dict[str, Any]) -> None:
    """(b) RecEvalCallback.compute vs the plain recall/ndcg@10 on the very same top-K arrays (val + test)."""
    data, evaluator, module = LAST["datamodule"].data, LAST["evaluator"], LAST["module"]
    ours = theirs = 0.0
    for stage in ("val", "test"):
        users, items, _, _ = evaluator._gathered(stage, module)
        start = time.perf_counter()
        evaluator.compute(data, stage, users, items)
        ours += time.perf_counter() - start
        theirs += plain.timed_metrics(items, data.truth(stage)[users])[1]
    row.update(metrics_s=ours, plain_metrics_s=theirs, metrics_x=ours / theirs)


def plain_stage(score: plain.ScoreFn, stage: str) -> tuple[plain.PlainResult, float]:
    """The plain evaluator on one stage of the run's data, and its seconds including building the known-item
    matrix (recarena's loader builds it before the callback's val/test clock starts, but within end-to-end)."""
    dm = LAST["datamodule"]
    start = time.perf_counter()
    known = dm.data.known(stage)  # train + valid for test: a CSR union
    result = plain.evaluate(score, dm.data.eval_users(stage), known, dm.data.truth(stage), dm.eval_batch_size)
    return result, time.perf_counter() - start


def eval_overhead(row: dict[str, Any]) -> None:
    """(b) recarena's whole evaluation (val + test) vs the plain evaluator driving the same fitted recommender."""
    seconds = sum(plain_stage(LAST["module"].recommender.score, stage)[0].seconds for stage in ("val", "test"))
    row.update(plain_eval_s=seconds, eval_x=row["eval_s"] / seconds)


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
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    row, cfg = run_recarena(args.scale, args.model, args.threads, args.run_dir)
    if not args.no_compare:
        metric_overhead(row)
        eval_overhead(row)
        if args.model in DIRECT:
            direct(row, cfg, args.threads)
    args.out.write_text(json.dumps(row, indent=1))
    print(json.dumps(row), file=sys.stderr)


if __name__ == "__main__":
    main()
