"""The package's arrows run one way: evaluation sees top-K lists (recarena.topk), not the models; the data layer
sees neither models nor evaluation; no module imports an entry point (the command lines are over the library,
`recarena.runs` among it); only `serve` imports the HTTP package; no private name crosses a module. Read from the
source with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "recarena"
# the command lines: the top-level modules with a `__main__` block
ENTRY_POINTS = tuple(
    sorted(f"recarena.{path.stem}" for path in PACKAGE.glob("*.py") if 'if __name__ == "__main__"' in path.read_text())
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _hits(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imports(path) if m in prefixes or m.startswith(tuple(f"{p}." for p in prefixes)))


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


def test_the_entry_points_are_the_command_lines():
    assert ENTRY_POINTS == ("recarena.eval", "recarena.recommend", "recarena.report", "recarena.serve",
                            "recarena.train", "recarena.update")  # fmt: skip


def test_no_module_imports_an_entry_point():
    """Every package and every top-level module (replay and runs included); an entry point not even another."""
    bad = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        others = tuple(e for e in ENTRY_POINTS if e != module_name(path))
        if hits := _hits(path, others):
            bad[module_name(path)] = hits
    assert bad == {}


def test_only_serve_imports_the_http_package():
    bad = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name != "recarena.serve" and not name.startswith("recarena.serving") and _hits(path, ("recarena.serving",)):
            bad[name] = _hits(path, ("recarena.serving",))
    assert bad == {}


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("recarena"):
                bad += [f"{module_name(path)}: {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]  # fmt: skip
    assert bad == []
