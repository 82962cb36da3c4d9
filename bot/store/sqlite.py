"""SQLite: one connection for the whole store — transactions, numbered migrations, checkpoints, the lock.

SQLite in WAL mode, used directly from the event loop: with `synchronous=NORMAL` a commit appends to
the write-ahead log without waiting for the disk (tens of microseconds), and a committed row survives a
crash of the process. The inbox's commits — what the bridge acks Slack for — reach the disk before the
ack (`durable()`, or `sync()`: one fsync in a thread for the messages of a few milliseconds), so they
survive a power loss as well. The one slow operation, copying the log into the database (a checkpoint,
which does wait for the disk), runs every few seconds in a worker thread instead of inside a commit. (A
thread hop per query — aiosqlite — cost ~250 µs each, more than the queries themselves.) One process
owns a SQLite file; several replicas need a server database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import IO

from bot.store.database import MAINTENANCE_INTERVAL, Database, StoreInUse
from bot.store.group_sync import GroupSync
from bot.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 5.0  # seconds between copies of the write-ahead log into the database
BUSY_TIMEOUT_MS = 5000


class SqliteDatabase(Database):
    """The connection every part of the store shares. Create with `await SqliteDatabase.open(path)`.

    Each call of the async API runs at once on the event loop, without suspending."""

    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, connection: sqlite3.Connection, path: str, lock: IO[bytes] | None) -> None:
        self._db = connection
        self._path = path
        self._lock = lock
        self._background: asyncio.Task[None] | None = None
        self._wal: int | None = None  # the write-ahead log, open for `sync`
        self._group_sync = GroupSync(self._fsync_wal)

    @classmethod
    async def open(cls, path: str | Path) -> SqliteDatabase:
        """Open (creating and upgrading as needed). Raises StoreInUse if another process has it, and
        OSError or sqlite3.Error if it cannot be opened."""
        lock = None
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            lock = _lock(Path(f"{path}.lock"))
        try:
            connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        database = cls(connection, str(path), lock)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={BUSY_TIMEOUT_MS}",
                           "wal_autocheckpoint=0"):  # checkpoints run in a thread (see _maintain)
                connection.execute(f"PRAGMA {pragma}")
            database._migrate()
        except BaseException:
            database._release()
            raise
        return database

    def start_maintenance(self, maintain: Callable[[], Awaitable[None]]) -> None:
        """Checkpoint every few seconds (in a thread) and call `maintain` about once an hour."""
        if self._lock is not None and self._background is None:
            self._background = asyncio.create_task(self._maintain(maintain), name="sqlite-maintenance")

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        await self._group_sync.wait_idle()
        if self._lock is not None:
            await asyncio.to_thread(_checkpoint, self._path)
        self._release()

    def _release(self) -> None:
        if self._wal is not None:
            os.close(self._wal)
            self._wal = None
        self._db.close()
        if self._lock is not None:
            self._lock.close()  # releases the lock

    async def _maintain(self, maintain: Callable[[], Awaitable[None]]) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            try:
                await asyncio.to_thread(_checkpoint, self._path)
                if time.monotonic() - last > MAINTENANCE_INTERVAL:
                    last = time.monotonic()
                    await maintain()
            except sqlite3.Error as exc:
                log.warning("sqlite maintenance failed (will try again): %s", exc)

    def _migrate(self) -> None:
        """Apply the numbered migrations the database lacks, each with its version in one transaction
        (sqlite3's executescript runs the whole script; no hand-splitting of SQL)."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone() or (0,)
        if version > len(MIGRATIONS):
            raise RuntimeError(f"the database was written by a newer version (schema {version})")
        for number in range(version, len(MIGRATIONS)):
            try:
                self._db.executescript(
                    f"BEGIN IMMEDIATE;\n{MIGRATIONS[number]}\nPRAGMA user_version = {number + 1};\nCOMMIT;")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Every statement inside commits together, or not at all. (On SQLite nothing inside awaits
        anything but the database, whose calls never suspend: no other task's statement lands in it.)"""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # (a failed COMMIT, e.g. a full disk, leaves it open)
                self._db.execute("ROLLBACK")
            raise

    @contextlib.asynccontextmanager
    async def durable(self) -> AsyncIterator[None]:
        """Commits inside wait for the disk (`synchronous=FULL`): what Slack is acknowledged for must
        survive a power loss, not only a crash of the process. (The other commits append to the
        write-ahead log without waiting; the next durable commit, or a checkpoint, syncs them too.)"""
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            yield
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")

    async def sync(self, *, at_once: bool = False) -> None:
        """fsync the write-ahead log in a thread: the commits in it (appended without waiting, under
        synchronous=NORMAL) are then on the disk, as a synchronous=FULL commit would have left them —
        without holding the event loop for the disk. Callers close together share one fsync (see
        group_sync.py; `at_once`: without waiting for others)."""
        if self._lock is None:
            return  # (":memory:")
        await self._group_sync(at_once=at_once)

    def _fsync_wal(self) -> None:
        """(In a thread, one call at a time.)"""
        if self._wal is None:
            self._wal = _open_synced(f"{self._path}-wal")
        os.fsync(self._wal)

    async def execute(self, sql: str, params: Iterable[object] = ()) -> int:
        """Run one statement; the number of rows it changed (for `INSERT … RETURNING`, use fetchone)."""
        cursor = self._db.execute(sql, tuple(params))
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    async def fetchone(self, sql: str, params: Iterable[object] = ()) -> tuple | None:
        cursor = self._db.execute(sql, tuple(params))
        try:
            return cursor.fetchone()
        finally:
            cursor.close()  # (an `INSERT … RETURNING` is finished, not left open until collected)

    async def fetchall(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        return self._db.execute(sql, tuple(params)).fetchall()


def _lock(path: Path) -> IO[bytes]:
    """Hold an exclusive lock beside the database for as long as the store is open."""
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreInUse(f"another assistant-bridge process is using {path.with_suffix('')}") from None
    return handle


def _open_synced(path: str) -> int:
    """Open `path` for fsync, once its name is on the disk too (its directory synced)."""
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return os.open(path, os.O_RDONLY)


def _checkpoint(path: str) -> None:
    """Copy the write-ahead log into the database file (waits for the disk; run in a thread)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
