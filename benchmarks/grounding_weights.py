"""Embedding grounding's popularity weight, chosen on validation for one finished title-mode LLM-DGRS run.

Usage: python -m benchmarks.grounding_weights RUN_DIR [--weights 0,0.1,0.3,1] [--num-beams 5] [--out DIR]
The run is restored with `grounding=embedding` (free beams), each stage's titles are generated once (the model keeps
its beams while its weights are unchanged) and grounded at every weight through the evaluation callback; the table
gives val and test recall/ndcg at 10 (or the run's largest K without 10) per weight and marks the weight with the best
validation ndcg."""

from __future__ import annotations

import argparse
from pathlib import Path

from recarena.runs import eval_trainer, evaluator_for, restore_run, run_stage
from recarena.utils.io import atomic_write, write_json


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grounding_weights", description=__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--weights", default="0,0.1,0.3,1", help="comma-separated popularity weights")
    parser.add_argument("--num-beams", type=int, default=5)
    parser.add_argument("--out", default=None, help="folder for each (stage, weight) evaluation's files and table")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    out = Path(args.out or Path(args.run_dir) / "grounding_weights")
    decoding = {"constrained": False, "grounding": "embedding", "num_beams": args.num_beams}
    run = restore_run(args.run_dir, model=decoding)
    results: dict[tuple[str, float], dict[str, float]] = {}
    for stage in ("val", "test"):
        for weight in weights:
            run.model.hparams.popularity_weight = weight  # read when the model is built (first stage)
            if getattr(run.model, "grounding", None) is not None:
                run.model.grounding.popularity_weight = weight
            folder = out / f"{stage}-w{weight:g}"
            evaluator = evaluator_for(run.cfg, folder)
            run_stage(eval_trainer(run.cfg, [evaluator], folder), stage, run, run.datamodule)
            run.checkpoint = None  # loaded once: loading again would drop the kept generations
            results[(stage, weight)] = evaluator.results[stage]
    ks = list(run.cfg.eval.ks)
    k = 10 if 10 in ks else max(ks)
    metrics = (f"recall@{k}", f"ndcg@{k}")
    best = max(weights, key=lambda w: results[("val", w)][metrics[1]])
    lines = ["| popularity_weight | " + " | ".join(f"{s} {m}" for s in ("val", "test") for m in metrics) + " |",
             "|---|" + "---|" * (2 * len(metrics))]  # fmt: skip
    for weight in weights:
        cells = [f"{results[(s, weight)][m]:.4f}" for s in ("val", "test") for m in metrics]
        lines.append(f"| {weight:g}{' (chosen on val)' if weight == best else ''} | " + " | ".join(cells) + " |")
    data = run.datamodule.data
    users = {stage: data.eval_users(stage).size for stage in ("val", "test")}
    every = {stage: data.all_eval_users(stage) for stage in ("val", "test")}
    label = {stage: " (SAMPLED, eval.max_users)" if users[stage] < every[stage] else "" for stage in users}
    sampled = ", ".join(f"{stage} {users[stage]} of {every[stage]}{label[stage]}" for stage in users)
    table = f"Evaluated users: {sampled}.\n\n" + "\n".join(lines)
    atomic_write(out / "table.md", lambda tmp: tmp.write_text(table + "\n"))
    write_json(out / "results.json", {f"{s}/{w:g}": r for (s, w), r in results.items()})
    print(table)


if __name__ == "__main__":
    main()
