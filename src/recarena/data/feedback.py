"""Durable feedback: events stored through SQLAlchemy Core, committed before they are acknowledged.

The default is one SQLite file in the run's folder, in WAL mode with synchronous=FULL (a committed event survives
a killed process and a power cut); any SQLAlchemy URL (`serve.feedback_db=postgresql://…`) points elsewhere.
SQLAlchemy gives one code path for both, pooled connections for the server's threads and URL parsing."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from recarena.errors import ConfigError

METADATA = sa.MetaData()
EVENTS = sa.Table(
    "feedback",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user", sa.String, nullable=False),
    sa.Column("item", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("received", sa.Float, nullable=False),
)
COLUMNS = ("user", "item", "kind", "timestamp")


def database_url(target: str | Path, read_only: bool = False) -> str:
    """An SQLAlchemy URL for `target`: a URL as it is, a file path as an SQLite URL (opened read-only if asked)."""
    text = str(target)
    if "://" in text:
        return text
    path = Path(text).resolve()
    return f"sqlite:///file:{path}?mode=ro&uri=true" if read_only else f"sqlite:///{path}"


def redacted(target: str | Path) -> str:
    """`target` fit to print: a database URL with its password replaced by ***."""
    text = str(target)
    if "://" not in text:
        return text
    try:
        return sa.engine.make_url(text).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return text.split("://", 1)[0] + "://…"  # unparseable: show the scheme only


class FeedbackStore:
    """Append-only event table; `add` returns after the transaction commits.

    With `read_only` (recarena.update) nothing is written: an SQLite file is opened in read-only mode without the
    server's pragmas, and a database without recarena's feedback table is refused by name instead of given one."""

    def __init__(self, target: str | Path, key: str = "serve.feedback_db", read_only: bool = False) -> None:
        """Open (and, unless `read_only`, create the table in) the database at `target`; a bad URL, a missing driver,
        an unreachable database or (read-only) a missing feedback table is a ConfigError naming `key`."""
        self.url = database_url(target, read_only)
        try:
            self.engine = sa.create_engine(self.url, future=True, pool_pre_ping=True)
            if self.engine.dialect.name == "sqlite" and not read_only:
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            if not read_only:
                METADATA.create_all(self.engine)
                return
            tables = sa.inspect(self.engine).get_table_names()
        except (sa.exc.SQLAlchemyError, ImportError) as error:
            raise ConfigError(f"{key}={redacted(target)}: cannot open this feedback database "
                              f"({type(error).__name__}: {str(error).splitlines()[0]})") from error  # fmt: skip
        if EVENTS.name not in tables:
            self.engine.dispose()
            raise ConfigError(
                f"{key}={redacted(target)}: not a recarena feedback database (no {EVENTS.name!r} table; its tables: "
                f"{sorted(tables)}); nothing was written to it"
            )

    def add(self, events: Iterable[dict[str, Any]]) -> int:
        """Insert events (user, item, kind, timestamp) in one transaction; returns how many."""
        now = time.time()
        rows = [{**{c: event[c] for c in COLUMNS}, "received": now} for event in events]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(EVENTS.insert(), rows)
        return len(rows)

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(EVENTS)).scalar_one())

    def frame(self) -> pl.DataFrame:
        """Every stored event in arrival order (id, user, item, kind, timestamp, received)."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(EVENTS).order_by(EVENTS.c.id)).mappings().all()
        schema = {"id": pl.Int64, "user": pl.String, "item": pl.String, "kind": pl.String, "timestamp": pl.Int64,
                  "received": pl.Float64}  # fmt: skip
        return pl.DataFrame([dict(r) for r in rows], schema=schema)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(connection, record) -> None:
    """WAL lets readers run beside the writer; FULL syncs the WAL on every commit; busy_timeout makes concurrent
    writers wait for the lock instead of failing."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
