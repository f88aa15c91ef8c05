"""Our ML-1M rows beside the published ones: `python -m benchmarks.published SWEEP_DIR [SWEEP_DIR ...]`.

Reads the jobs of the given sweep folders that ran on data=ml1m with split=leave_one_out (experiment=ml1m_published,
or the benchmark suite) and prints a markdown table: HR@10 and NDCG@10 (mean ± std over seeds), seeds, training
time and peak RSS, under the published full-ranking leave-one-out numbers on the same 5-core ML-1M. Under
leave-one-out every user has one test item, so HR@10 = hit@10 = recall@10."""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

# (model, HR@10, NDCG@10, source): full ranking, leave-one-out, ML-1M 5-core (6,040 users, 3,416 items)
PUBLISHED = (
    ("SASRec+ (full cross-entropy)", 0.3152, 0.1821, "Klenitskiy & Vasilev, RecSys 2023"),
    ("BERT4Rec", 0.2843, 0.1537, "Klenitskiy & Vasilev, RecSys 2023"),
    ("gSASRec", 0.3003, 0.1726, "Petrov & Macdonald, RecSys 2023"),
    ("HSTU-large", 0.3294, 0.1893, "Zhai et al., ICML 2024"),
    ("SASRec (RecBole)", 0.2468, 0.1286, "RecBole"),
)


def ml1m_jobs(sweeps: list[Path]) -> dict[str, list[dict]]:
    """model → the metrics.json of its finished ML-1M leave-one-out jobs."""
    found: dict[str, list[dict]] = defaultdict(list)
    for sweep in sweeps:
        for metrics in sorted(Path(sweep).glob("*/metrics.json")):
            hydra = OmegaConf.load(metrics.parent / ".hydra" / "hydra.yaml").hydra.runtime.choices
            if hydra.get("data") == "ml1m" and hydra.get("split") == "leave_one_out":
                saved = json.loads(metrics.read_text())
                saved["seed"] = OmegaConf.load(metrics.parent / ".hydra" / "config.yaml").get("seed")
                found[str(hydra.get("model"))].append(saved)
    return found


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(found: dict[str, list[dict]]) -> str:
    """The markdown table: published rows first, then ours sorted by mean NDCG@10."""
    lines = [
        "| model | HR@10 | NDCG@10 | seeds | train (min) | peak RSS (GiB) | source |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {hr:.4f} | {ndcg:.4f} | | | | {src} |" for m, hr, ndcg, src in PUBLISHED]
    ours = sorted(found.items(), key=lambda kv: -statistics.mean(j["test"]["ndcg@10"] for j in kv[1]))
    for model, jobs in ours:
        hit = [j["test"]["hit@10"] for j in jobs]
        ndcg = [j["test"]["ndcg@10"] for j in jobs]
        train = [j["timing"].get("train_seconds", j["timing"].get("fit_seconds", float("nan"))) / 60 for j in jobs]
        peak = [j["timing"].get("peak_rss_mib", float("nan")) / 1024 for j in jobs]
        seeds = " ".join(str(j["seed"]) for j in jobs)
        lines.append(
            f"| **{model}** (recarena) | {_mean_std(hit)} | {_mean_std(ndcg)} | {seeds} | "
            f"{statistics.mean(train):.1f} | {max(peak):.2f} | this machine |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (experiment=ml1m_published or the suite)")
    args = parser.parse_args(argv)
    found = ml1m_jobs(args.sweeps)
    if not found:
        parser.error(f"no finished data=ml1m split=leave_one_out jobs in {[str(s) for s in args.sweeps]}")
    text = table(found)
    print(text)
    return text


if __name__ == "__main__":
    main()
