"""The markdown report of a sweep: a section per split, or per dataset and split (tables, significance against the
best model, the all-pairs matrix, plots), the models' ranks across splits, the comparison across datasets (Friedman,
Nemenyi) when the sweep holds several, and the failed jobs."""

from __future__ import annotations

import math
from pathlib import Path

from recarena.reporting import cross_dataset
from recarena.reporting.cross_dataset import CrossDataset
from recarena.reporting.leaderboard import SORT_METRIC, Column, Leaderboard, Row, slice_interactions, slice_users
from recarena.reporting.pairwise import markdown_matrix


def _fmt(key: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    name = key.split("@")[0]
    if name in ("fit_s", "eval_s"):
        return f"{value:.3g}"
    if name == "peak_mib":
        return f"{value:.0f}"
    if name in ("arp", "novelty"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def _cell(board: Leaderboard, row: Row, column: Column) -> str:
    summary = row.stats[column.key]
    text = _fmt(column.key, summary.mean)
    if not math.isnan(summary.std):
        text += f" ± {_fmt(column.key, summary.std)}"
    if row.label in board.best(column.key):
        text = f"**{text}**"
    comparison = board.comparison(column.key, row.label)
    if comparison is not None and comparison.p_wilcoxon < board.alpha and comparison.mean_diff < 0:
        text += " †"
    return text


def _table(board: Leaderboard, columns: list[Column], with_seeds: bool = False) -> list[str]:
    head = ["model", *(["seeds"] if with_seeds else []), *(c.title for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for row in board.rows:
        cells = [row.label, *([str(len(row.jobs))] if with_seeds else []), *(_cell(board, row, c) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else (f"{value:.2e}" if value < 1e-3 else f"{value:.3f}")


def to_markdown(
    boards: list[Leaderboard], plots: dict[str, Path] | None = None, across: CrossDataset | None = None
) -> str:
    """The human-readable report: the legend, ranks across splits, the comparison across datasets (`across`, when the
    sweep holds several), then one section per split (per dataset and split)."""
    plots = plots or {}
    first = boards[0]
    n_jobs = sum(len(r.jobs) for b in boards for r in b.rows)
    splits = ", ".join(f"{b.title} ({_count(len(b.rows), 'model')})" for b in boards)
    noun = "dataset · split leaderboard" if first.multi_data else "split"
    lines = [
        f"# Leaderboard: {first.sweep_dir.name}",
        "",
        f"{_count(n_jobs, 'finished job')} on {_count(len(boards), noun)}: {splits}; "
        f"{sum(len(b.failed) for b in boards)} failed. Test stage; each cell is the mean ± std over seeds (sample "
        "std; one seed shows the mean only). Best per column in **bold** (highest; lowest for ARP, Gini and times). "
        f"Rows sorted by {SORT_METRIC}@{first.k}.",
        f"† = below the best model of that column with Holm-adjusted Wilcoxon p < {first.alpha} (paired on per-user "
        "test values, each user's values averaged over seeds first).",
        *[line for b in boards for line in _sampled_lines(b)],
        "",
        *_rank_lines(boards, plots),
        *_across_lines(across, plots),
    ]
    for board in boards:
        prefix = f"{board.key}/"
        lines += _split_lines(board, {n[len(prefix) :]: p for n, p in plots.items() if n.startswith(prefix)})
    return "\n".join(lines).rstrip() + "\n"


def _split_lines(board: Leaderboard, plots: dict[str, Path]) -> list[str]:
    k, sections = board.k, {}
    for column in board.columns:
        sections.setdefault(column.section, []).append(column)
    cold = f"≤ {board.cold_threshold}" if board.cold_threshold is not None else "few"
    users = slice_users(board)
    counts = ", ".join(f"{name} {n} users" for name, n in users.items())
    lines = [
        f"## {'Dataset · split' if board.multi_data else 'Split'}: {board.title}",
        "",
        f"{_count(sum(len(r.jobs) for r in board.rows), 'finished job')}, {_count(len(board.rows), 'model')}, "
        f"{len(board.failed)} failed.",
        "",
        f"### Accuracy @{k}",
        *_table(board, sections.get("main", []), with_seeds=True),
        "",
        "### Accuracy at every cut-off",
        *_table(board, sections.get("cutoffs", [])),
        "",
        f"### Beyond accuracy @{k}",
        "novelty: mean −log2(popularity share); ARP: mean train popularity; Gini: 0 = every item recommended "
        "equally often; ILD: mean pairwise dissimilarity within a list.",
        "",
        *_table(board, sections.get("beyond", [])),
        "",
        f"### Cold ({cold} train interactions) vs warm users",
        f"Test users per slice: {counts}. Compare models within a slice (down a column): cold users have few test "
        "items too, so a slice's recall is not comparable with the other slice's.",
        "",
        *_table(board, sections.get("slices", [])),
        "",
        "### New, tail and head items",
        "Test interactions grouped by their item's train popularity: unseen (no train interaction: only a model that "
        "can score a new item finds these), tail, head (the most popular share of the seen items, `eval.head_share`). "
        "recall: over each slice's ground truth; listed: the share of the slice's items that some list contains. "
        "n/a: the split has no test interaction in that slice.",
        "",
        *_new_item_lines(board),
        *_table(board, sections.get("items", [])),
        "",
        "### Time",
        "fit: fitting (non-gradient models) or training time; test eval: scoring and evaluating the test users.",
        "",
        *_table(board, sections.get("time", [])),
        "",
        *_significance_lines(board),
        *_pairwise_lines(board),
        *_failed_lines(board),
    ]
    if plots:
        lines += ["### Plots", ""] + [f"![{name}]({path.name})" for name, path in plots.items()] + [""]
    return lines


def _new_item_lines(board: Leaderboard) -> list[str]:
    """The test interactions per item slice, and a note when none is with a new item (nothing to measure there)."""
    counts = slice_interactions(board)
    lines = ["Test interactions per slice: " + ", ".join(f"{name} {n}" for name, n in counts.items()) + "."]
    if counts.get("unseen") in ("0", "n/a"):
        lines.append(
            "No test interaction of this split is with an item unseen in train, so the unseen columns are n/a: "
            "`split=global_temporal` (one time cut for everyone) is the protocol where new items appear at test time."
        )
    return [*lines, ""]


def _rank_lines(boards: list[Leaderboard], plots: dict[str, Path]) -> list[str]:
    """A model × split table of ranks (by SORT_METRIC@k) when the sweep has more than one split."""
    if len(boards) < 2:
        return []
    k = boards[0].k
    labels = list(dict.fromkeys(r.label for b in boards for r in b.rows))
    ranks = {b.key: {r.label: i for i, r in enumerate(b.rows, start=1)} for b in boards}
    head = ["model", *(f"rank on {b.title} ({SORT_METRIC}@{k})" for b in boards)]
    what = "dataset and split" if boards[0].multi_data else "split"
    lines = [
        "## Ranks across datasets and splits" if boards[0].multi_data else "## Ranks across splits",
        f"Rank 1 = highest test {SORT_METRIC}@{k} on that {what}; the value in brackets.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(head)) + "|",
    ]
    for label in labels:
        cells = []
        for b in boards:
            rank = ranks[b.key].get(label)
            value = b.value(label, f"{SORT_METRIC}@{k}")
            cells.append(f"{rank} ({value.mean:.4f})" if rank is not None and value is not None else "—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "ranks_across_splits" in plots:
        lines += ["", f"![ranks_across_splits]({plots['ranks_across_splits'].name})"]
    return [*lines, ""]


def _across_lines(across: CrossDataset | None, plots: dict[str, Path]) -> list[str]:
    """The "Across datasets" section (models × datasets ranks, Friedman, Iman–Davenport, Nemenyi CD, the diagram)."""
    if across is None:
        return []
    files = "cross_dataset.md, cross_dataset.csv" + (", cross_dataset_cd.png" if cross_dataset.CD_PLOT in plots else "")
    return [
        "## Across datasets",
        f"The models compared over the sweep's datasets (also in {files}).",
        "",
        *cross_dataset.markdown_lines(across, plots.get(cross_dataset.CD_PLOT)),
    ]


def _pairwise_lines(board: Leaderboard) -> list[str]:
    lines = []
    for pairwise, users in ((board.pairwise, "all users"), (board.pairwise_cold, "cold users")):
        if pairwise is None or len(pairwise.labels) < 2 or not (pairwise.n_users > 0).any():
            continue
        n_pairs = len(pairwise.labels) * (len(pairwise.labels) - 1) // 2
        lines += [
            f"### All pairs: {pairwise.metric}, {users} ({int(pairwise.n_users.max())})",
            *(
                [f"A user is cold when their train interactions (averaged over seeds) are ≤ {board.cold_threshold}."]
                if users == "cold users"
                else []
            ),  # fmt: skip
            f"Δ = row − column (mean per-user test {pairwise.metric}), p = paired Wilcoxon, Holm-adjusted over all "
            f"{n_pairs} pairs (the t-test's are in pairwise_{board.key or 'all'}.csv); ▲ / ▼ = the row model is "
            f"significantly above / below the column model (p < {board.alpha}).",
            "",
            *markdown_matrix(pairwise, board.alpha),
            "",
        ]
        wins = [
            f"{label} > {', '.join(pairwise.wins(label, board.alpha))}"
            for label in pairwise.labels
            if pairwise.wins(label, board.alpha)
        ]
        if wins:
            lines += ["Significantly above: " + "; ".join(wins) + ".", ""]
    return lines


def _sampled_lines(board: Leaderboard) -> list[str]:
    """A warning naming every row scored on a sample of users (eval.max_users), so it is never read as a full run."""
    sampled = sorted({(r.label, j.sampled) for r in board.rows for j in r.jobs if j.sampled is not None})
    if not sampled:
        return []
    rows = "; ".join(f"**{label}** on {n} of {total} test users" for label, (n, total) in sampled)
    return [
        f"⚠ SAMPLED EVALUATION (eval.max_users): {rows}. Their coverage and Gini are over the sample's lists only, "
        "and significance tests pair them with other models on the users both scored."
    ]


def _significance_lines(board: Leaderboard) -> list[str]:
    lines = [
        "### Significance against the best model",
        "Paired two-sided tests on per-user test values (users joined across models); p-values Holm-adjusted "
        "across the models compared for each metric and test. Δ = model − best (mean over users).",
        "",
    ]
    if not board.comparisons:
        return [*lines, "No comparison (fewer than two models with per-user metrics).", ""]
    lines += ["| metric | best | model | Δ mean | p t-test (Holm) | p Wilcoxon (Holm) | users |", "|---" * 7 + "|"]
    for c in board.comparisons:
        lines.append(
            f"| {c.metric} | {c.best} | {c.label} | {c.mean_diff:+.4f} | {_p(c.p_ttest)} | {_p(c.p_wilcoxon)} "
            f"| {c.n_users} |"
        )
    return [*lines, ""]


def _failed_lines(board: Leaderboard) -> list[str]:
    if not board.failed:
        return []
    lines = ["### Failed jobs", "", "| job | model | overrides | error |", "|---|---|---|---|"]
    for job in board.failed:
        error = (job.error or "").replace("|", "\\|")
        overrides = " ".join(job.overrides).replace("|", "\\|")
        lines.append(f"| {job.path.name} | {job.model} | {overrides} | {error} |")
    return [*lines, ""]
