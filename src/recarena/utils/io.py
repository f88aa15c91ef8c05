"""Atomic file writes: a crash leaves the previous file or none, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` on a temp file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, payload: Any) -> Path:
    """Write JSON atomically (sorted keys, indented, NaN as null-free floats)."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=float)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def write_parquet(path: str | Path, frame: pl.DataFrame) -> Path:
    """Write a polars frame to Parquet atomically."""
    return atomic_write(path, lambda tmp: frame.write_parquet(tmp))
