"""Storage of the processed data: a second load reads Parquet and gives identical Interactions; a changed setting or
a touched source file misses; a corrupted cache is rebuilt; data.cache=false writes nothing."""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
import polars as pl
import pytest

from recarena.data.datamodule import RecDataModule
from recarena.data.splits import temporal_ratio


@pytest.fixture
def files(tmp_path):
    """A table with string ids (12 users × 8 items) and an item feature table."""
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", f"i{i}", float(rng.integers(1, 6)), float(100 * u + i))
        for u in range(12)
        for i in range(8)
        if rng.random() < 0.7
    ]  # fmt: skip
    rows.append((*rows[0][:2], 5.0, 9999.0))  # a duplicate (user, item): a repair preprocessing logs
    events = tmp_path / "events.csv"
    pl.DataFrame(rows, schema=["user", "item", "stars", "ts"], orient="row").write_csv(events)
    items = tmp_path / "items.csv"
    pl.DataFrame({"item": [f"i{i}" for i in range(8)], "title": [f"Film &amp; {i}" for i in range(8)]}).write_csv(items)
    return events, items


def module(files, data_dir, **settings) -> RecDataModule:
    events, items = files
    return RecDataModule(
        "table", partial(temporal_ratio, min_interactions=2), data_dir=data_dir, path=str(events), user_col="user",
        item_col="item", rating_col="stars", time_col="ts", items_path=str(items), **settings,
    )  # fmt: skip


def cached(data_dir) -> list:
    return sorted((data_dir / "cache" / "processed").glob("table-*"))


def same(a, b) -> None:
    assert a.frame.equals(b.frame)
    assert a.user_ids.dtype == b.user_ids.dtype and np.array_equal(a.user_ids, b.user_ids)
    assert a.item_ids.dtype == b.item_ids.dtype and np.array_equal(a.item_ids, b.item_ids)
    for part in ("train", "valid", "test"):
        assert (getattr(a, part) != getattr(b, part)).nnz == 0
    assert a.items.equals(b.items) and a.counts == b.counts


def test_a_second_load_reads_the_cache_and_gives_identical_interactions(files, tmp_path, caplog):
    first = module(files, tmp_path).load()
    (folder,) = cached(tmp_path)
    assert {p.name for p in folder.iterdir()} == {"interactions.parquet", "user_ids.parquet", "item_ids.parquet",
                                                  "items.parquet", "meta.json"}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="recarena.data.datamodule"):
        second = module(files, tmp_path).load()
    assert "read from the cache" in caplog.text
    assert "dropped 1 duplicate (user, item) rows" in caplog.text  # the repair is logged on a hit too
    same(first, second)
    same(first, module(files, tmp_path / "off", cache=False).load())  # the cache changes nothing
    assert not (tmp_path / "off" / "cache").exists()


def test_a_changed_setting_or_a_touched_file_misses(files, tmp_path):
    module(files, tmp_path).load()
    module(files, tmp_path, min_user_interactions=3).load()
    assert len(cached(tmp_path)) == 2
    events, _ = files
    events.write_text(events.read_text().replace("u0,", "u99,", 1))  # one interaction's user changes
    changed = module(files, tmp_path).load()
    assert len(cached(tmp_path)) == 3 and "u99" in changed.user_ids


def test_a_corrupted_cache_is_rebuilt(files, tmp_path, caplog):
    first = module(files, tmp_path).load()
    (folder,) = cached(tmp_path)
    table = folder / "interactions.parquet"
    table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        rebuilt = module(files, tmp_path).load()
    assert "is unreadable" in caplog.text and "rebuilding it" in caplog.text
    same(first, rebuilt)
    assert len(cached(tmp_path)) == 1 and module(files, tmp_path).load().frame.equals(first.frame)
