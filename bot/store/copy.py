"""Moving up from SQLite: copy every table of a SQLite store into an empty PostgreSQL database.

Both stores are brought to the same schema first (each opens through its migrations), then every
table of the SQLite file is copied in batches inside one PostgreSQL transaction that locks the tables:
all of it arrives, or none. The copied rows keep their ids, and each identity column's sequence is
moved past them, so the bridge on PostgreSQL goes on where it stopped on SQLite. The SQLite file is
held with its one-process lock throughout: the bridge must be stopped while it is copied.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.store.postgres import PostgresDatabase
from bot.store.sqlite import SqliteDatabase

BATCH = 5000  # rows read from SQLite and sent to PostgreSQL at a time
NOT_COPIED = frozenset({"channel_leases", "replicas"})  # who works what now: the running replicas' own rows


class TargetNotEmpty(RuntimeError):
    """The PostgreSQL database already holds a store's rows: copying into it would mix two stores."""


_COERCE: dict[str, Callable[[Any], Any]] = {"bigint": int, "double precision": float, "text": str}


async def copy_store(source: Path, target_url: str) -> dict[str, int]:
    """Copy the SQLite store at `source` into the empty PostgreSQL database at `target_url`; the rows
    copied per table. Raises StoreInUse (a bridge has the file open), TargetNotEmpty, or what opening
    either database raises."""
    sqlite = await SqliteDatabase.open(source)
    try:
        postgres = await PostgresDatabase.open(target_url, pool_size=1)
        try:
            return await _copy(sqlite, postgres)
        finally:
            await postgres.close()
    finally:
        await sqlite.close()


async def _copy(sqlite: SqliteDatabase, postgres: PostgresDatabase) -> dict[str, int]:
    tables = [name for (name,) in await sqlite.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        if name not in NOT_COPIED]
    copied: dict[str, int] = {}
    async with postgres.transaction():
        await postgres.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")  # no replica writes meanwhile
        held = [table for table in tables if await postgres.fetchone(f"SELECT 1 FROM {table} LIMIT 1")]
        if held:
            raise TargetNotEmpty(f"the target database already holds rows in {', '.join(held)}")
        for table in tables:
            copied[table] = await _copy_table(sqlite, postgres, table)
        for table, column in await postgres.fetchall(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND is_identity = 'YES'"):
            # The next id the database hands out comes after every copied one (nothing copied: left as is).
            await postgres.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), max({column}))"
                                   f" FROM {table} HAVING max({column}) IS NOT NULL")
    return copied


async def _copy_table(sqlite: SqliteDatabase, postgres: PostgresDatabase, table: str) -> int:
    """Every row of `table`, a batch at a time in rowid order, each value in the target column's type."""
    types = dict(await postgres.fetchall(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?", (table,)))
    columns = [row[1] for row in await sqlite.fetchall(f"PRAGMA table_info({table})")]
    coerce = [_COERCE.get(types[column], lambda value: value) for column in columns]
    count, after = 0, -(2**63)
    while True:
        rows = await sqlite.fetchall(
            f"SELECT rowid, {', '.join(columns)} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, BATCH))
        if not rows:
            return count
        await postgres.copy_rows(table, columns, [
            tuple(None if value is None else convert(value) for convert, value in zip(coerce, row[1:], strict=True))
            for row in rows])
        count += len(rows)
        after = rows[-1][0]
