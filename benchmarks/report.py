"""Benchmark rows → markdown tables (stages, overheads, threads) and a CSV file."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = dict[str, Any]

STAGES = [
    ("model", "model"), ("threads", "thr"), ("status", "status"), ("load_s", "load s"), ("split_s", "split s"),
    ("fit_s", "fit s"), ("val_s", "val s"), ("test_s", "test s"), ("e2e_s", "end-to-end s"),
    ("peak_rss_gib", "peak RSS GiB"), ("users_per_s", "eval users/s"), ("eval_batch", "eval batch"),
    ("test_ndcg@10", "test ndcg@10"),
]  # fmt: skip
FRAMEWORK = [
    ("model", "model"), ("threads", "thr"), ("fit_s", "recarena fit s"), ("eval_s", "recarena eval s"),
    ("e2e_s", "recarena e2e s"), ("direct_fit_s", "implicit fit s"), ("direct_eval_s", "plain eval s (+known)"),
    ("direct_e2e_s", "direct e2e s"), ("overhead_e2e_x", "e2e ×"), ("overhead_model_x", "fit+eval ×"),
    ("test_ndcg@10", "recarena ndcg@10"), ("direct_test_ndcg10", "implicit ndcg@10"),
]  # fmt: skip
EVALUATION = [
    ("model", "model"), ("threads", "thr"), ("repeats", "runs"), ("eval_median_s", "recarena val+test s"),
    ("plain_eval_s", "plain s (same metrics)"), ("eval_x", "eval ×"),
    ("plain_minimal_eval_s", "plain s (recall/ndcg@10)"), ("eval_minimal_x", "eval × (recall/ndcg@10)"),
    ("metrics_s", "callback metrics s"), ("plain_metrics_s", "plain metrics s (same)"), ("metrics_x", "metrics ×"),
    ("same_lists", "same top-K lists"), ("metrics_max_abs_diff", "max |Δ| metrics"),
]  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def table(rows: Sequence[Row], columns: Sequence[tuple[str, str]]) -> str:
    """A markdown table of the given (key, header) columns; missing values show as –."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines)


def threads_table(rows: Sequence[Row]) -> str:
    """(c) end-to-end, fit and evaluation seconds at each thread count, and the ratio to the fewest threads."""
    by_model: dict[str, dict[int, Row]] = {}
    for r in rows:
        if r.get("status") == "ok":
            by_model.setdefault(r["model"], {})[r["threads"]] = r
    out = []
    for model, runs in by_model.items():
        base = runs[min(runs)]
        for threads, r in sorted(runs.items()):
            out.append({
                "model": model, "threads": threads, "fit_s": r["fit_s"], "eval_s": r["eval_s"], "e2e_s": r["e2e_s"],
                "ratio": r["e2e_s"] / base["e2e_s"],
            })  # fmt: skip
    cols = [("model", "model"), ("threads", "thr"), ("fit_s", "fit s"), ("eval_s", "val+test s"),
            ("e2e_s", "end-to-end s"), ("ratio", "× vs fewest threads")]  # fmt: skip
    return table(out, cols)


def markdown(rows: Sequence[Row], header: str) -> str:
    """The whole report: stage timings, framework overhead, evaluation overhead, threads."""
    parts = [header, "", "### Stages (load → test metrics)", table(rows, STAGES)]
    framework = [r for r in rows if "direct_e2e_s" in r]
    if framework:
        parts += ["", "### (a) Framework overhead: recarena vs implicit called directly + plain evaluator",
                  table(framework, FRAMEWORK)]  # fmt: skip
    evaluation = [r for r in rows if "eval_x" in r]
    if evaluation:
        title = "### (b) Evaluation overhead: same fitted model / same top-K arrays, plain numpy evaluator (medians)"
        parts += ["", title, table(evaluation, EVALUATION)]
    if len({r.get("threads") for r in rows}) > 1:
        parts += ["", "### (c) Threads (torch/BLAS/implicit)", threads_table(rows)]
    return "\n".join(parts) + "\n"


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """All fields of all rows (union of keys, first-seen order)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
