"""The accuracy/diversity trade-off of re-ranking (`recarena.models.mmr`): one row per (model, lambda) → CSV, a
markdown table and a two-panel plot (ndcg vs ILD, ndcg vs coverage), the price of diversity in one figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recarena.utils.io import atomic_write

Row = Mapping[str, Any]  # model, lam (None: no re-ranking), ndcg@K, ild@K, coverage@K


def columns(k: int = 10) -> tuple[str, ...]:
    """The table's columns at cut-off K."""
    return ("model", "lam", f"ndcg@{k}", f"ild@{k}", f"coverage@{k}")


def lam_label(lam: float | None) -> str:
    """How a lambda is shown: "off" for the model's own lists (no re-ranking)."""
    return "off" if lam is None else f"{float(lam):g}"


def ordered(rows: Sequence[Row]) -> list[Row]:
    """Per model in first-seen order: the un-re-ranked row first, then lambda descending (accuracy → diversity)."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    return sorted(rows, key=lambda r: (models.index(r["model"]), r["lam"] is not None, -(r["lam"] or 0.0)))


def tradeoff_markdown(rows: Sequence[Row], k: int = 10) -> str:
    """A markdown table with one line per (model, lambda)."""
    names = columns(k)
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join(["---"] * len(names)) + "|"]
    for row in ordered(rows):
        cells = [str(row["model"]), lam_label(row["lam"]), *(f"{float(row[c]):.4f}" for c in names[2:])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_tradeoff(rows: Sequence[Row], k: int = 10) -> Figure:
    """ndcg@K against ILD@K (left) and coverage@K (right): one line per model through its lambdas, points labelled
    by lambda; the un-re-ranked lists ("off") are a star."""
    fig = Figure(figsize=(11.0, 4.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    rows = ordered(rows)
    for panel, (ax, other) in enumerate(zip(axes, (f"ild@{k}", f"coverage@{k}"), strict=True)):
        for index, model in enumerate(dict.fromkeys(r["model"] for r in rows)):
            color = f"C{index}"
            mine = [r for r in rows if r["model"] == model]
            swept = [r for r in mine if r["lam"] is not None]
            ax.plot([r[other] for r in swept], [r[f"ndcg@{k}"] for r in swept], "o-", color=color, label=model)
            for r in mine:
                if r["lam"] is None:
                    ax.plot(r[other], r[f"ndcg@{k}"], "*", color=color, markersize=12)
            points = [(float(r[other]), float(r[f"ndcg@{k}"]), lam_label(r["lam"])) for r in mine]
            for n, (x, y, text) in enumerate(_merge_close(points, _spans(rows, other, f"ndcg@{k}"))):
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, 4 if n % 2 == 0 else -11),
                            fontsize=8, color=color)  # fmt: skip
        ax.set_xlabel(f"{other} (higher = more diverse)" if panel == 0 else f"{other} (share of the catalogue)")
        ax.set_ylabel(f"ndcg@{k}")
        ax.grid(alpha=0.3)
        ax.margins(x=0.1, y=0.08)  # room for the labels right of the last points
    axes[0].legend(fontsize=9)
    fig.suptitle(
        "MMR re-ranking: accuracy vs diversity (points labelled by lambda, * = no re-ranking; "
        "close points share a label)",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def _spans(rows: Sequence[Row], x: str, y: str) -> tuple[float, float]:
    """The data ranges of the two plotted columns (1 where flat)."""
    xs, ys = [float(r[x]) for r in rows], [float(r[y]) for r in rows]
    return (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0


def _merge_close(points: list[tuple[float, float, str]], spans: tuple[float, float], share: float = 0.02) -> list:
    """Consecutive points closer than `share` of both axis ranges get one label ("off=1=0.9") at the first one."""
    merged: list[tuple[float, float, str]] = []
    for x, y, text in points:
        if merged and abs(x - merged[-1][0]) < share * spans[0] and abs(y - merged[-1][1]) < share * spans[1]:
            merged[-1] = (merged[-1][0], merged[-1][1], f"{merged[-1][2]}={text}")
        else:
            merged.append((x, y, text))
    return merged


def write_tradeoff(rows: Sequence[Row], out_dir: str | Path, k: int = 10) -> dict[str, Path]:
    """tradeoff.csv, tradeoff.md and tradeoff.png in `out_dir`, each written atomically."""
    out = Path(out_dir)
    names = columns(k)
    frame = pl.DataFrame(
        {name: [r[name] for r in ordered(rows)] for name in names},
        schema={"model": pl.String, "lam": pl.Float64, **{name: pl.Float64 for name in names[2:]}},
    )
    markdown = tradeoff_markdown(rows, k)
    fig = plot_tradeoff(rows, k)
    return {
        "csv": atomic_write(out / "tradeoff.csv", lambda tmp: frame.write_csv(tmp)),
        "md": atomic_write(out / "tradeoff.md", lambda tmp: tmp.write_text(markdown)),
        "png": atomic_write(out / "tradeoff.png", lambda tmp: fig.savefig(tmp, format="png", dpi=120)),
    }
