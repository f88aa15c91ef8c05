"""`python -m recarena.eval run_dir=<run>`: restore a finished run's data and model, re-evaluate it, print the metrics.

A run is restored from its own `.hydra/config.yaml` (the config as composed, not today's conf/ files):
- non-gradient (fit-once) models are fitted again from that config: fitting is deterministic given the config and
  seed and takes seconds, so nothing is pickled and no model file is needed;
- gradient models load the run's best Lightning checkpoint under `<run>/checkpoints/` (the ModelCheckpoint's
  best_model_path; else the only one; else last.ckpt) with `weights_only=True`.
Evaluation goes through the same RecEvalCallback as training, so the numbers equal the run's metrics.json.
`rerank=mmr rerank.lam=0.3` (or `rerank=none`) re-evaluates with another re-ranking stage than the run's own
(`recarena.models.mmr`), so one trained run is measured at several lambdas without retraining."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from recarena.runs import RUN_OWN, Rerank, evaluate
from recarena.topk import GENERATION_ERRORS
from recarena.utils import resolvers  # noqa: F401  (registers ${pid:})
from recarena.utils.compose import CONFIG_DIR
from recarena.utils.console import quiet_lightning

log = logging.getLogger(__name__)

TABLE_METRICS = ("recall", "precision", "ndcg", "hit", "map", "mrr", "coverage", "novelty", "arp", "gini", "ild")


def format_metrics(results: dict[str, float], ks: Sequence[int], title: str) -> str:
    """A metric × K table of the main metrics, plus invalid_rate, a title generator's error rates and the user
    counts when present."""
    ks = sorted(ks)
    lines = [f"{title:<14}" + "".join(f"{'@' + str(k):>10}" for k in ks)]
    for name in TABLE_METRICS:
        if any(f"{name}@{k}" in results for k in ks):
            cells = "".join(f"{results.get(f'{name}@{k}', math.nan):>10.4f}" for k in ks)
            lines.append(f"{name:<14}{cells}")
    for extra in ("invalid_rate", *(f"{e}_rate" for e in GENERATION_ERRORS), "users/cold", "users/warm"):
        if extra in results:
            lines.append(f"{extra:<14}{results[extra]:>10.4g}")
    return "\n".join(lines)


def compare_with_run(run_dir: str | Path, stage: str, results: dict[str, float]) -> tuple[int, float] | None:
    """(metrics compared, largest |difference|) against the run's metrics.json, or None without that file/stage."""
    path = Path(run_dir) / "metrics.json"
    saved = json.loads(path.read_text()).get(stage) if path.exists() else None
    if not saved:
        return None
    shared = [k for k in saved if k in results]
    diffs = [abs(float(saved[k]) - float(results[k])) for k in shared]
    return len(shared), max(diffs, default=0.0)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    """Print the re-evaluated metrics and whether they equal the run's metrics.json."""
    quiet_lightning()
    stages = [cfg.stages] if isinstance(cfg.stages, str) else list(cfg.stages)
    model = OmegaConf.to_container(cfg.model) if cfg.get("model") else None
    rerank: Rerank = RUN_OWN  # no `rerank=` given: the run's own
    if "rerank" in cfg:
        rerank = None if cfg.rerank is None else OmegaConf.to_container(cfg.rerank, resolve=True)
    results = evaluate(cfg.run_dir, stages, cfg.data_dir, cfg.output_dir, cfg.accelerator, model, rerank)
    if cfg.format == "json":
        print(json.dumps(results, indent=2, sort_keys=True))
    mismatch = False
    for stage in stages:
        summary = results.get(stage, {})
        if cfg.format != "json":
            users = int(summary.get("users/cold", 0) + summary.get("users/warm", 0))
            print(format_metrics(summary, list(cfg_ks(summary)), f"{stage} ({users} users)"))
        compared = compare_with_run(cfg.run_dir, stage, summary)
        if compared is None:
            print(f"{stage}: the run has no saved {stage} metrics to compare with", file=sys.stderr)
            continue
        count, worst = compared
        same = worst <= cfg.tolerance
        mismatch |= not same
        verdict = "equal" if same else "DIFFER from"
        stream = sys.stderr if cfg.format == "json" else sys.stdout
        print(f"{stage}: all {count} metrics {verdict} the run's metrics.json (max |Δ| = {worst:.3g})", file=stream)
        if not same and rerank != RUN_OWN:
            print(f"{stage}: (expected: re-ranked by the rerank= given here, not the run's own)", file=stream)
    if mismatch and cfg.strict:
        sys.exit(1)


def cfg_ks(results: dict[str, float]) -> list[int]:
    """The cut-offs present in a results dict (from its recall@K keys)."""
    return sorted({int(k.split("@")[1]) for k in results if k.startswith("recall@") and "/" not in k})


if __name__ == "__main__":
    main()
