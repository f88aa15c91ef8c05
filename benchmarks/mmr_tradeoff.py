"""The accuracy/diversity trade-off of MMR re-ranking on finished runs, without retraining: each run is re-evaluated
through `recarena.eval.evaluate` (test stage) once without re-ranking and once per lambda; rows → CSV, markdown and
a plot (`recarena.reporting.tradeoff`); the table is printed.

Usage: python -m benchmarks.mmr_tradeoff --runs itemcf=<run_dir> gpt_dgrs=<run_dir> --lams 1,0.9,0.7,0.5,0.3,0.1
       [--out outputs/mmr_tradeoff] [--candidates 50] [--similarity text] [--dedup title] [--k 10]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from recarena.reporting.tradeoff import tradeoff_markdown, write_tradeoff
from recarena.runs import evaluate
from recarena.utils.console import quiet_lightning

METRICS = ("ndcg", "ild", "coverage")


def tradeoff_rows(
    runs: dict[str, Path], lams: list[float], rerank: dict[str, Any], k: int = 10, stage: str = "test"
) -> list[dict[str, Any]]:
    """One row per run and lambda (lam None: the run re-evaluated with no re-ranking), `rerank` holding the other
    Reranker arguments."""
    rows = []
    for name, run_dir in runs.items():
        for lam in [None, *lams]:
            setting = None if lam is None else {"_target_": "recarena.models.mmr.Reranker", **rerank, "lam": lam}
            results = evaluate(run_dir, [stage], rerank=setting)[stage]
            rows.append({"model": name, "lam": lam, **{f"{m}@{k}": results[f"{m}@{k}"] for m in METRICS}})
            print(f"{name} lam={lam}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def _runs(pairs: list[str]) -> dict[str, Path]:
    runs = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"--runs {pair!r}: expected name=<run folder>")
        runs[name] = Path(folder)
    return runs


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="name=<finished run folder> ...")
    parser.add_argument("--lams", default="1,0.9,0.7,0.5,0.3,0.1", help="comma-separated MMR lambdas")
    parser.add_argument("--out", default="outputs/mmr_tradeoff")
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--similarity", default="text", choices=["text", "cooccurrence"])
    parser.add_argument("--dedup", default="title", help="title | an item-table column | none")
    parser.add_argument("--k", type=int, default=10, help="the cut-off of the reported metrics (in the runs' eval.ks)")
    args = parser.parse_args(argv)
    quiet_lightning()
    lams = [float(x) for x in args.lams.split(",") if x.strip()]
    dedup = None if args.dedup.lower() in ("none", "null", "") else args.dedup
    rerank = {"candidates": args.candidates, "similarity": args.similarity, "dedup": dedup}
    rows = tradeoff_rows(_runs(args.runs), lams, rerank, args.k)
    files = write_tradeoff(rows, args.out, args.k)
    print(tradeoff_markdown(rows, args.k), end="")
    print("written: " + ", ".join(str(p) for p in files.values()))
    return rows


if __name__ == "__main__":
    main()
