"""Report plots (PNG, Agg canvas, no pyplot state): accuracy vs coverage, metrics @K, cold/warm slices, the all-pairs
heatmap and ranks across splits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recarena.reporting.leaderboard import SORT_METRIC, Leaderboard, slice_users
from recarena.utils.io import atomic_write

LABEL_SIZE = 9  # point-label font size
MARKER = 6.0  # scatter marker diameter, points
CAPSIZE = 4.0  # error-bar cap half-length, points
PAD = 1.5  # clearance kept around labels, markers and error bars, points
# Label offsets tried around each point, nearest ring first: the distance (points) and the angle, right of the point
# preferred. The first ring just clears the point's marker and caps; beyond it a leader line joins label and point.
RINGS = (CAPSIZE + 2 * PAD + 0.5, 14.0, 24.0, 36.0, 50.0, 66.0, 86.0, 110.0)
ANGLES = (0, 45, -45, 180, 135, -135, 90, -90, 22.5, -22.5, 157.5, -157.5, 67.5, -67.5, 112.5, -112.5)  # degrees


def _mean_std(board: Leaderboard, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and std of a column (std 0 where there is one seed, so error bars are simply absent)."""
    means = np.array([r.stats[key].mean for r in board.rows], dtype=float)
    stds = np.nan_to_num(np.array([r.stats[key].std for r in board.rows], dtype=float))
    return means, stds


def _save(fig: Figure, path: Path, layout: bool = True) -> Path:
    if layout:
        fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _new_figure(n_models: int, height: float = 4.8, extra_width: float = 0.0) -> Figure:
    fig = Figure(figsize=(max(6.4, 1.2 * n_models + 3) + extra_width, height))
    FigureCanvasAgg(fig)
    return fig


def _titles(fig: Figure, ax, takeaway: str, what: str) -> None:
    """The finding as the figure title, what is plotted as the axes title."""
    fig.suptitle(takeaway, fontsize=11, fontweight="bold")
    ax.set_title(what, fontsize=9)


def _label_ticks(ax, labels: list[str]) -> None:
    long = len(labels) > 4 or max((len(s) for s in labels), default=0) > 10
    ax.set_xticks(
        np.arange(len(labels)),
        labels,
        rotation=30 if long else 0,
        ha="right" if long else "center",
        rotation_mode="anchor" if long else "default",  # the end of a slanted label sits under its tick
    )


def _legend_outside(ax) -> None:
    """Legend to the right of the axes, so it can never cover a bar (tight_layout makes room for it)."""
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _best(labels: list[str], values: np.ndarray, highest: bool = True) -> tuple[str, float]:
    finite = np.where(np.isfinite(values), values, -np.inf if highest else np.inf)
    i = int(np.argmax(finite) if highest else np.argmin(finite))
    return labels[i], float(values[i])


# -- point labels that never overlap ----------------------------------------------------------------------------
def _box(x0: float, y0: float, x1: float, y1: float, pad: float = 0.0) -> np.ndarray:
    return np.array([min(x0, x1) - pad, min(y0, y1) - pad, max(x0, x1) + pad, max(y0, y1) + pad])


def _overlap(a: np.ndarray, boxes: np.ndarray) -> float:
    """Total area of box `a` (x0, y0, x1, y1) inside the rows of `boxes`."""
    w = np.clip(np.minimum(a[2], boxes[:, 2]) - np.maximum(a[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], boxes[:, 3]) - np.maximum(a[1], boxes[:, 1]), 0, None)
    return float((w * h).sum())


def _hits(points: np.ndarray, boxes: np.ndarray) -> int:
    """How many of `points` (n, 2) lie in any of `boxes` (m, 4)."""
    p, b = points[:, None, :], boxes[None, :, :]
    inside = (p[..., 0] > b[..., 0]) & (p[..., 0] < b[..., 2]) & (p[..., 1] > b[..., 1]) & (p[..., 1] < b[..., 3])
    return int(inside.any(axis=1).sum())


def place_labels(ax, x: np.ndarray, y: np.ndarray, xerr: np.ndarray, yerr: np.ndarray, labels, colors) -> list:
    """Annotate each finite point with its label where it overlaps no other label, marker, error bar or leader line.

    Deterministic and greedy: for each point in order, the first free spot on rings of growing distance around it
    (right of the point first), inside the axes; a leader line when the spot is not next to the point. The axes
    limits and the figure layout must be final (the search is in display pixels). When no spot is free, the one
    with the least overlap with labels, markers and error bars is taken, then the one with the fewest crossings.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0  # pixels per point
    pad = PAD * px
    finite = np.isfinite(x) & np.isfinite(y)
    xy = np.full((len(x), 2), np.nan)
    if finite.any():
        xy[finite] = ax.transData.transform(np.column_stack([x[finite], y[finite]]))
    blocked = []  # markers, error bars and placed labels, in pixels
    for i in np.flatnonzero(finite):
        (cx, cy), r, cap = xy[i], MARKER / 2 * px, CAPSIZE * px
        (x0, _), (x1, _) = ax.transData.transform([(x[i] - xerr[i], y[i]), (x[i] + xerr[i], y[i])])
        (_, y0), (_, y1) = ax.transData.transform([(x[i], y[i] - yerr[i]), (x[i], y[i] + yerr[i])])
        blocked += [_box(cx - r, cy - r, cx + r, cy + r, pad), _box(x0, cy - cap, x1, cy + cap, pad / 2)]
        blocked += [_box(cx - cap, y0, cx + cap, y1, pad / 2)]
    blocked = np.array(blocked).reshape(-1, 4)
    placed, leaders = np.empty((0, 4)), np.empty((0, 2))  # label boxes; points along the leader lines
    frame = ax.bbox
    texts = []
    for i in np.flatnonzero(finite):
        probe = ax.text(0, 0, labels[i], fontsize=LABEL_SIZE)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h = extent.width, extent.height
        best = None
        for ring, distance in enumerate(RINGS):
            for angle in ANGLES:
                ux, uy = np.cos(np.radians(angle)) * distance, np.sin(np.radians(angle)) * distance  # points
                dx, dy = (int(np.sign(u)) if abs(u) > 0.2 * distance else 0 for u in (ux, uy))  # the label's side
                left = xy[i, 0] + ux * px - (w if dx < 0 else w / 2 if dx == 0 else 0)
                bottom = xy[i, 1] + uy * px - (h if dy < 0 else h / 2 if dy == 0 else 0)
                box = _box(left, bottom, left + w, bottom + h, pad)
                inside_w = max(min(box[2], frame.x1) - max(box[0], frame.x0), 0.0)
                inside_h = max(min(box[3], frame.y1) - max(box[1], frame.y0), 0.0)
                # the cost: first overlap with labels, markers, error bars and outside the axes (px²), then how far
                # the label and its leader line cross the other leader lines and labels
                area = _overlap(box, blocked) + (box[2] - box[0]) * (box[3] - box[1]) - inside_w * inside_h
                crossings = _hits(leaders, box[None])
                line = np.empty((0, 2))
                if ring > 0:  # the leader runs from the label's centre to the point (drawn outside the label only)
                    t = np.linspace(0.0, 1.0, 32)[:, None]
                    line = (1 - t) * np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]) + t * xy[i]
                    line = line[[not _hits(p[None], box[None]) for p in line]]
                    crossings += _hits(line, placed)
                cost = (area, crossings)
                if best is None or cost < best[0]:
                    best = (cost, ring, (ux, uy), dx, dy, box, line)
                if cost == (0, 0):
                    break
            if best[0] == (0, 0):
                break
        _, ring, offset, dx, dy, box, line = best
        blocked, placed, leaders = np.vstack([blocked, box]), np.vstack([placed, box]), np.vstack([leaders, line])
        leader = {"arrowstyle": "-", "color": colors[i], "lw": 0.7, "shrinkA": 1, "shrinkB": MARKER / 2 + 1}
        texts.append(
            ax.annotate(
                labels[i],
                (x[i], y[i]),
                xytext=offset,
                textcoords="offset points",
                ha={1: "left", 0: "center", -1: "right"}[dx],
                va={1: "bottom", 0: "center", -1: "top"}[dy],
                fontsize=LABEL_SIZE,
                color=colors[i],
                arrowprops=leader if ring > 0 else None,
            )
        )
    return texts


# -- the plots -----------------------------------------------------------------------------------------------------
def recall_vs_coverage_figure(board: Leaderboard) -> Figure:
    """Scatter of recall@K against coverage@K with std-over-seeds error bars: the accuracy/diversity trade-off."""
    k, labels = board.k, [r.label for r in board.rows]
    recall, recall_std = _mean_std(board, f"recall@{k}")
    coverage, coverage_std = _mean_std(board, f"coverage@{k}")
    fig = _new_figure(0, 5.2)
    ax = fig.add_subplot()
    colors = []
    for i in range(len(labels)):
        bars = ax.errorbar(
            coverage[i], recall[i], xerr=coverage_std[i], yerr=recall_std[i], fmt="o", ms=MARKER, capsize=CAPSIZE
        )
        colors.append(bars.lines[0].get_color())
    best, best_recall = _best(labels, recall)
    widest, widest_coverage = _best(labels, coverage)
    if best == widest:
        takeaway = f"{best} is both the most accurate and the most diverse"
    else:
        takeaway = f"{best} is the most accurate, {widest} covers the most items"
    _titles(fig, ax, takeaway, f"Recall vs catalogue coverage @{k} (test): up and to the right is better")
    ax.set_xlabel(f"catalogue coverage@{k} (share of items recommended to anyone)")
    ax.set_ylabel(f"recall@{k} (test, mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.1)  # room for the labels of the outermost points
    ax.set_xlim(ax.get_xlim())  # freeze the limits and the layout before placing labels in pixels
    ax.set_ylim(ax.get_ylim())
    fig.tight_layout()
    place_labels(ax, coverage, recall, coverage_std, recall_std, labels, colors)
    return fig


def recall_vs_coverage(board: Leaderboard, path: Path) -> Path:
    return _save(recall_vs_coverage_figure(board), path, layout=False)  # labels were placed for the final layout


def metrics_bars(board: Leaderboard, path: Path) -> Path:
    """Grouped bars of recall, precision and coverage @K per model, with std-over-seeds error bars."""
    k, labels = board.k, [r.label for r in board.rows]
    names = [f"recall@{k}", f"precision@{k}", f"coverage@{k}"]
    fig = _new_figure(len(labels), extra_width=1.4)
    ax = fig.add_subplot()
    x, width = np.arange(len(labels)), 0.8 / len(names)
    for j, name in enumerate(names):
        mean, std = _mean_std(board, name)
        ax.bar(x + (j - 1) * width, mean, width, yerr=std, capsize=3, label=name)
    best, value = _best(labels, _mean_std(board, f"recall@{k}")[0])
    takeaway = f"{best} leads recall@{k} ({value:.3f})"
    ties = [c.label for c in board.comparisons if c.metric == f"recall@{k}" and c.p_wilcoxon >= board.alpha]
    if ties:
        takeaway += f", not significantly above {', '.join(ties)}"
    _titles(fig, ax, takeaway, f"Test metrics @{k} per model (mean ± std over seeds)")
    ax.set_ylabel("value (0–1, higher is better)")
    ax.set_xlabel("model")
    _label_ticks(ax, labels)
    _legend_outside(ax)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def cold_warm(board: Leaderboard, path: Path) -> Path:
    """Recall@K per model within the cold slice and within the warm slice (two panels, user counts in the titles).

    The slices are not compared with each other: a cold user's recall has a different scale (fewer test items)."""
    k, labels = board.k, [r.label for r in board.rows]
    users = slice_users(board)
    threshold = f"≤ {board.cold_threshold}" if board.cold_threshold is not None else "few"
    fig = _new_figure(2 * len(labels) // 3, height=5.2, extra_width=max(0.0, 9.6 - max(6.4, 0.8 * len(labels) + 3)))
    findings = []
    for i, (name, rule) in enumerate((("cold", f"{threshold} train interactions"), ("warm", "the rest"))):
        ax = fig.add_subplot(1, 2, i + 1)
        mean, std = _mean_std(board, f"recall@{k}/{name}")
        x = np.arange(len(labels))
        bars = ax.bar(x, mean, 0.7, yerr=std, capsize=3, color=f"C{i}")
        best, value = _best(labels, mean)
        bars[labels.index(best)].set_edgecolor("black")
        bars[labels.index(best)].set_linewidth(1.5)
        findings.append(f"{name}: {best} ({value:.3f})")
        n = users[name]
        ax.set_title(f"{name} users ({rule}; n = {n})", fontsize=9)
        ax.set_ylabel(f"recall@{k} (test, mean ± std over seeds)")
        _label_ticks(ax, labels)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        f"Best per slice, recall@{k}: " + "; ".join(findings) + "\nCompare models within a panel: cold users have "
        "fewer test items, so the panels' scales differ",
        fontsize=10,
        fontweight="bold",
    )
    return _save(fig, path)


def ranks_across_splits_figure(boards: list[Leaderboard]) -> Figure:
    """Each model's rank (by test ndcg@K) on every split, joined by a line: which rankings hold across protocols."""
    k = boards[0].k
    labels = list(dict.fromkeys(r.label for b in boards for r in b.rows))
    ranks = np.full((len(labels), len(boards)), np.nan)
    for j, board in enumerate(boards):
        for rank, row in enumerate(board.rows, start=1):
            ranks[labels.index(row.label), j] = rank
    fig = _new_figure(0, height=max(4.8, 0.42 * len(labels) + 1.8), extra_width=2.0)
    ax = fig.add_subplot()
    x = np.arange(len(boards))
    for i, label in enumerate(labels):
        color = f"C{i % 10}"
        ax.plot(x, ranks[i], "o-", color=color, ms=MARKER, lw=1.5)
        for j in (0, len(boards) - 1):
            if np.isfinite(ranks[i, j]):
                side = -1 if j == 0 else 1
                ax.annotate(
                    label, (x[j], ranks[i, j]), xytext=(8 * side, 0), textcoords="offset points",
                    ha="right" if side < 0 else "left", va="center", fontsize=LABEL_SIZE, color=color,
                )  # fmt: skip
    ax.set_xticks(x, [b.title for b in boards])
    ax.set_xlim(-0.9, len(boards) - 0.1)
    ax.set_ylim(len(labels) + 0.5, 0.5)
    ax.set_yticks(np.arange(1, len(labels) + 1))
    ax.set_ylabel(f"rank by test {SORT_METRIC}@{k} (1 = best)")
    ax.grid(axis="y", alpha=0.3)
    finite = np.isfinite(ranks).all(axis=1)
    moved = np.abs(ranks[:, 0] - ranks[:, -1])
    if finite.any() and len(boards) > 1:
        top = [labels[i] for i in np.flatnonzero(finite & (ranks[:, 0] == 1) & (ranks[:, -1] == 1))]
        takeaway = f"{top[0]} ranks first on every split" if top else "The best model differs between splits"
        if np.nanmax(np.where(finite, moved, np.nan)) > 0:
            i = int(np.nanargmax(np.where(finite, moved, np.nan)))
            takeaway += f"; {labels[i]} moves most ({int(ranks[i, 0])} → {int(ranks[i, -1])})"
    else:
        takeaway = "Model ranks per split"
    _titles(fig, ax, takeaway, f"Rank of every model on each split (test {SORT_METRIC}@{k}, mean over seeds)")
    return fig


def ranks_across_splits(boards: list[Leaderboard], path: Path) -> Path:
    return _save(ranks_across_splits_figure(boards), path)


def pairwise_heatmap(board: Leaderboard, path: Path) -> Path:
    """The all-pairs matrix: colour = mean per-user difference (row − column); ▲/▼ = significant after Holm."""
    pw = board.pairwise
    n = len(pw.labels)
    fig = Figure(figsize=(max(6.0, 0.75 * n + 3.0), max(5.0, 0.6 * n + 2.4)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = pw.mean_diff[np.isfinite(pw.mean_diff)]
    limit = float(np.abs(finite).max()) if finite.size else 1.0
    image = ax.imshow(np.nan_to_num(pw.mean_diff), cmap="RdBu", vmin=-limit or -1, vmax=limit or 1)
    for i in range(n):
        for j in range(n):
            if i == j or not np.isfinite(pw.mean_diff[i, j]):
                continue
            mark = ("▲" if pw.mean_diff[i, j] > 0 else "▼") if pw.p_wilcoxon[i, j] < board.alpha else ""
            strong = abs(pw.mean_diff[i, j]) > 0.6 * limit
            ax.text(j, i, f"{pw.mean_diff[i, j]:+.3f}{mark}", ha="center", va="center", fontsize=7,
                    color="white" if strong else "black")  # fmt: skip
    ax.set_xticks(np.arange(n), pw.labels, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(np.arange(n), pw.labels)
    fig.colorbar(image, ax=ax, label=f"mean per-user {pw.metric}, row − column")
    wins = {label: len(pw.wins(label, board.alpha)) for label in pw.labels}
    leader = max(wins, key=wins.get)
    takeaway = f"{leader} is significantly above {wins[leader]} of the other {n - 1} models"
    _titles(fig, ax, takeaway, f"{board.title}: all pairs on test {pw.metric}; ▲/▼ = Holm-adjusted Wilcoxon "
            f"p < {board.alpha}")  # fmt: skip
    return _save(fig, path)


def plot_report(board: Leaderboard) -> dict[str, Path]:
    """Write one board's report plots into the sweep folder (`<plot>_<split>.png`, `<plot>_<data>_<split>.png` when
    the sweep holds several datasets); none when no job finished."""
    if not board.rows or math.isnan(board.rows[0].stats[f"recall@{board.k}"].mean):
        return {}
    out, suffix = board.sweep_dir, f"_{board.key}" if board.key else ""
    plots = {
        "recall_vs_coverage": recall_vs_coverage(board, out / f"recall_vs_coverage{suffix}.png"),
        "metrics_at_k": metrics_bars(board, out / f"metrics_at_k{suffix}.png"),
        "cold_vs_warm": cold_warm(board, out / f"cold_vs_warm{suffix}.png"),
    }
    if board.pairwise is not None and (board.pairwise.n_users > 0).any():
        plots["pairwise"] = pairwise_heatmap(board, out / f"pairwise{suffix}.png")
    return plots
