"""`python -m recarena.report <sweep folder>`: leaderboard.md/.csv, significance, plots, the comparison across
datasets (cross_dataset.md/.csv/_cd.png, for a sweep over several datasets) and a W&B report run (for an
experiment=replay sweep: replay.md/.csv/.png, ndcg per window, static vs updated)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from recarena.reporting.replay_report import is_replay_sweep, make_replay_report
from recarena.reporting.sweep_report import WANDB_CHOICES, make_report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recarena.report", description=__doc__)
    parser.add_argument("sweep_dir", help="a Hydra multirun folder (hydra.sweep.dir): one sub-folder per job")
    parser.add_argument("--k", type=int, default=10, help="main cut-off for the tables and plots (default 10)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level for the † marks")
    parser.add_argument(
        "--wandb", choices=WANDB_CHOICES, default="auto", help="log a report run (auto: when the jobs used W&B)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the report and print where it is, the main table and any failed jobs."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if is_replay_sweep(args.sweep_dir):
        files = make_replay_report(args.sweep_dir, k=args.k)
        print(files["md"].read_text())
        print("wrote: " + ", ".join(str(p) for p in files.values()))
        return 0
    try:
        report = make_report(args.sweep_dir, k=args.k, alpha=args.alpha, wandb=args.wandb)
    except (FileNotFoundError, ValueError) as error:
        print(f"report: {error}", file=sys.stderr)
        return 2
    markdown = report.files["md"].read_text()
    print(_main_sections(markdown))
    print("wrote: " + ", ".join(str(p) for p in report.files.values()))
    if report.wandb_dir is not None:
        print(f"W&B report run: {report.wandb_dir}")
    return 0


def _main_sections(markdown: str) -> str:
    """Each split's accuracy table and failed jobs, the ranks across splits and the comparison across datasets (the
    rest is in the file)."""
    keep, out = False, []
    for line in markdown.splitlines():
        if line.startswith("#"):
            keep = line.startswith(("### Accuracy @", "### Failed jobs", "## Ranks across", "## Across datasets"))
        if keep or line.startswith(("# ", "## Split:", "## Dataset · split:")):
            out.append(line)
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
