"""PostgreSQL: the store of several replicas, over a pool of asyncpg connections.

The same schema as SQLite through the same numbered migrations (translated by bot/store/dialect.py),
applied exactly once even when several replicas start together: the migration run holds a
transaction-scoped advisory lock, and the versions applied are rows of `schema_version`. Statements
outside a transaction each borrow a connection from the pool for their own time; a transaction keeps
one connection for its statements (found through a context variable, so the store's modules call the
same `db.execute` inside and outside). Commits wait for the disk (PostgreSQL's synchronous_commit=on).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import asyncpg

from bot.settings import DEFAULT_DATABASE_POOL_SIZE as DEFAULT_POOL_SIZE
from bot.settings import POSTGRES_SCHEMES
from bot.store.database import MAINTENANCE_INTERVAL, Database
from bot.store.dialect import postgres_ddl, postgres_placeholders, rows_changed
from bot.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds to reach the server before giving up (asyncpg's default is 60)
PRIORITY_POOL_SIZE = 1  # connections for lease renewals and heartbeats, beside the pool (see priority())
LISTEN_RETRY = 2.0  # seconds between tries to (re)connect the listening connection
CLOSE_TIMEOUT = 3.0  # seconds a shutdown waits for statements still out before cutting the connections
MIGRATION_LOCK = 0x5AB_B41D6E  # the advisory lock key every replica takes to migrate ("slack bridge")
# What the driver raises when the server refuses or fails a statement, or the session is lost.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError,
                                                 asyncpg.InternalClientError)
# What failing to reach or use the server raises (OSError: refused, unknown host; TimeoutError: no answer).
POSTGRES_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, OSError, TimeoutError)


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database. Create with `await PostgresDatabase.open(url)`."""

    dialect = "postgresql"
    shared = True
    now_sql = "extract(epoch from statement_timestamp())::double precision"  # (stable: indexes apply)
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool, url: str = "") -> None:
        self._pool = pool
        self._url = url
        self._listening: dict[str, list[Callable[[str], None]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._connection_for_listen: asyncpg.Connection | None = None
        self._connection: contextvars.ContextVar[asyncpg.Connection | None] = contextvars.ContextVar(
            "transaction_connection", default=None)
        self._background: asyncio.Task[None] | None = None
        self._priority: PostgresDatabase | None = None

    async def priority(self) -> Database:
        if self._priority is None:
            pool = await asyncpg.create_pool(self._url, min_size=1, max_size=PRIORITY_POOL_SIZE,
                                             timeout=CONNECT_TIMEOUT,
                                             server_settings={"application_name": "assistant-bridge leases"})
            self._priority = PostgresDatabase(pool, self._url)
        return self._priority

    @classmethod
    async def open(cls, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> PostgresDatabase:
        """Connect (creating and upgrading the schema as needed). Raises one of POSTGRES_ERRORS if the
        server cannot be reached or refuses, RuntimeError if a newer version wrote the schema."""
        pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size, timeout=CONNECT_TIMEOUT,
                                         server_settings={"application_name": "assistant-bridge"})
        try:
            async with pool.acquire() as connection:
                await migrate(connection)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url)

    def start_maintenance(self, maintain: Callable[[], Awaitable[None]]) -> None:
        if self._background is None:
            self._background = asyncio.create_task(self._maintain(maintain), name="postgres-maintenance")

    async def _maintain(self, maintain: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            try:
                await maintain()
            except POSTGRES_ERRORS as exc:
                log.warning("database maintenance failed (will try again): %s", exc)

    async def publish(self, topic: str, payload: str) -> None:
        await self.execute("SELECT pg_notify(?, ?)", (topic, payload))

    async def subscribe(self, topic: str, callback: Callable[[str], None]) -> None:
        """LISTEN on a connection of its own (not the pool's), reconnected when it is lost; what was
        published meanwhile is found by the workers' poll."""
        self._listening.setdefault(topic, []).append(callback)
        if self._listener is None:
            connected = asyncio.get_running_loop().create_future()
            self._listener = asyncio.create_task(self._listen(connected), name="postgres-listen")
            await connected
        elif self._connection_for_listen is not None:
            await self._connection_for_listen.add_listener(topic, self._heard)

    def _heard(self, _connection: object, _pid: int, topic: str, payload: str) -> None:
        for callback in self._listening.get(topic, ()):
            callback(payload)

    async def _listen(self, connected: asyncio.Future[None]) -> None:
        while True:
            try:
                connection = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT)
                for topic in self._listening:
                    await connection.add_listener(topic, self._heard)
            except POSTGRES_ERRORS as exc:
                log.warning("could not listen for other replicas' notifications (%s); trying again", exc)
                if not connected.done():
                    connected.set_result(None)
                await asyncio.sleep(LISTEN_RETRY)
                continue
            self._connection_for_listen = connection
            if not connected.done():
                connected.set_result(None)
            closed = asyncio.Event()
            connection.add_termination_listener(lambda _connection, event=closed: event.set())
            try:
                await closed.wait()
            finally:
                self._connection_for_listen = None
                if not connection.is_closed():
                    await connection.close()
            log.warning("lost the connection that hears other replicas; reconnecting")

    async def close(self) -> None:
        if self._priority is not None:
            await self._priority.close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:  # a statement still out (a stuck network): do not hold up the shutdown
            self._pool.terminate()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._connection.get() is not None:
            yield  # (already in one: its statements join it)
            return
        async with self._pool.acquire() as connection, connection.transaction():
            token = self._connection.set(connection)
            try:
                yield
            finally:
                self._connection.reset(token)

    async def _call(self, run: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        """`run` on the transaction's connection, or on one borrowed from the pool for one statement.

        A pooled session the server has just ended (a failover, a restart, pg_terminate_backend) fails the
        next statement sent on it before asyncpg has noticed: half-closed, it refuses it unsent
        (InternalClientError), or the statement meets the closed socket (ConnectionDoesNotExistError).
        Outside a transaction that statement is sent once more on a new connection: a session the
        server ends takes its unfinished statement with it (rolled back), and the store's single
        statements are safe to repeat in the rare case of a reply lost after it committed (states set
        to a value, inserts that ignore a duplicate, a counter of attempts)."""
        connection = self._connection.get()
        if connection is not None:
            return await run(connection)
        for attempt in range(2):
            async with self._pool.acquire() as borrowed:
                try:
                    return await run(borrowed)
                except (asyncpg.InternalClientError, asyncpg.ConnectionDoesNotExistError):
                    if attempt:
                        raise
                    borrowed.terminate()
                    await self._pool.expire_connections()  # (its other sessions were most likely ended too)
        raise AssertionError("unreachable")

    async def execute(self, sql: str, params: Iterable[object] = ()) -> int:
        status = await self._call(lambda connection: connection.execute(postgres_placeholders(sql), *params))
        return rows_changed(status)

    async def fetchone(self, sql: str, params: Iterable[object] = ()) -> tuple | None:
        row = await self._call(lambda connection: connection.fetchrow(postgres_placeholders(sql), *params))
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        rows = await self._call(lambda connection: connection.fetch(postgres_placeholders(sql), *params))
        return [tuple(row) for row in rows]

    async def copy_rows(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        """Bulk-load rows (PostgreSQL's COPY; each value already of its column's type)."""
        await self._call(lambda connection: connection.copy_records_to_table(table, records=rows, columns=columns))

    def json_append(self, column: str) -> str:
        return f"(coalesce({column}, '[]')::jsonb || to_jsonb(?::text))::text"


async def migrate(connection: asyncpg.Connection) -> None:
    """Apply the migrations the database lacks, all in one transaction that holds the migration lock: a
    replica starting at the same time waits, then finds them applied."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at DOUBLE PRECISION)")
        version = await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        if version > len(MIGRATIONS):
            raise RuntimeError(f"the database was written by a newer version (schema {version})")
        for number in range(version, len(MIGRATIONS)):
            await connection.execute(postgres_ddl(MIGRATIONS[number]))
            await connection.execute("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                                     number + 1, time.time())
        if version < len(MIGRATIONS):
            log.info("database schema upgraded from version %d to %d", version, len(MIGRATIONS))


async def describe(url: str) -> str:
    """What `check` says about the database: the server's version and the schema's (nothing written)."""
    connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    try:
        server = await connection.fetchval("SHOW server_version")
        exists = await connection.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
        version = await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_version") if exists else 0
    finally:
        await connection.close()
    state = ("up to date" if version == len(MIGRATIONS) else
             f"at version {version} of {len(MIGRATIONS)} (upgraded when the bridge starts)")
    return f"PostgreSQL {server} reachable, schema {state}"
