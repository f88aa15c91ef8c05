"""The package's arrows run one way: evaluation sees top-K lists (recarena.topk), not the models; the data layer
sees neither models nor evaluation; utilities never depend on an entry point. Read from the source with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "recarena"
ENTRY_POINTS = ("recarena.train", "recarena.eval", "recarena.recommend", "recarena.report")


def imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; `from recarena.x import y` gives recarena.x and recarena.x.y)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _offenders(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        hits = sorted(m for m in imports(path) if m in forbidden or m.startswith(tuple(f"{f}." for f in forbidden)))
        if hits:
            bad[str(path.relative_to(PACKAGE))] = hits
    return bad


@pytest.mark.parametrize(
    "folder, forbidden",
    [
        ("evaluation", ("recarena.models",)),
        ("data", ("recarena.models", "recarena.evaluation")),
        ("utils", ENTRY_POINTS),
        ("reporting", ENTRY_POINTS),
    ],
)
def test_imports_run_one_way(folder, forbidden):
    assert _offenders(folder, forbidden) == {}


def test_the_leaderboard_does_not_import_its_renderers():
    """Building the leaderboard (numbers) does not depend on drawing or writing it."""
    renderers = ("recarena.reporting.plots", "recarena.reporting.markdown", "recarena.reporting.sweep_report")
    assert not imports(PACKAGE / "reporting" / "leaderboard.py") & set(renderers)
