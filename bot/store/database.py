"""What every part of the store talks to: one `Database` API over SQLite or PostgreSQL.

The store's modules write portable SQL with `?` placeholders (`INSERT … ON CONFLICT DO NOTHING`,
`INSERT … RETURNING id`, plain TEXT/INTEGER/REAL columns); each database runs it its own way
(bot/store/sqlite.py on the event loop, bot/store/postgres.py over a connection pool, translating the
placeholders and the migrations' few type names, see bot/store/dialect.py).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

MAINTENANCE_INTERVAL = 3600.0  # seconds between runs of the store's maintenance (pruning)


class StoreInUse(RuntimeError):
    """Another process has the database open (SQLite serves one bridge process)."""


class Database(ABC):
    """The statements, transactions and maintenance every part of the store shares.

    The API is async (`await db.execute(…)`, `async with db.transaction()`): SQLite runs each call at
    once on the event loop, PostgreSQL sends it to the server. Inside a transaction await nothing but the
    database: on SQLite nothing else may run in between, on PostgreSQL the transaction holds a connection.
    """

    dialect = "sqlite"  # "sqlite" | "postgresql": which database the SQL runs on
    shared = False  # several replicas may use it at once (then: leases, notifications between them)
    now_sql = "0"  # an SQL expression: the database's clock, in Unix seconds
    skip_locked = ""  # after a SELECT: rows other transactions hold are passed over (nothing to add alone)

    async def priority(self) -> Database:
        """The same database through connections of its own, for the few statements that must not wait
        behind a burst of others (lease renewals: a renewal starved past the lease's time loses channels)."""
        return self

    async def publish(self, topic: str, payload: str) -> None:
        """Tell the other replicas on `topic` (a database only one process uses has nobody to tell)."""
        return None  # (a default, not an abstract method: SQLite keeps it)

    async def subscribe(self, topic: str, callback: Callable[[str], None]) -> None:
        """Hear what the replicas `publish` on `topic`, until closed (nothing to hear when not shared)."""
        return None

    @abstractmethod
    def start_maintenance(self, maintain: Callable[[], Awaitable[None]]) -> None:
        """Call `maintain` about once an hour (and whatever upkeep the database itself needs)."""
        ...

    @abstractmethod
    async def close(self) -> None:
        ...

    @abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Every statement inside commits together, or not at all."""
        ...

    @contextlib.asynccontextmanager
    async def durable(self) -> AsyncIterator[None]:
        """Commits inside are on the disk when they return (they survive a power loss): what Slack is
        acknowledged for. PostgreSQL's commits always are (synchronous_commit=on, its default)."""
        yield

    async def sync(self, *, at_once: bool = False) -> None:
        """Every commit so far is on the disk once this returns (a commit made outside `durable`, to be
        seen at once, and made durable here while the event loop goes on). PostgreSQL's already are.
        `at_once`: start now rather than wait a moment for other commits to share the sync."""
        return None

    @abstractmethod
    async def execute(self, sql: str, params: Iterable[object] = ()) -> int:
        """Run one statement; the number of rows it changed (for `INSERT … RETURNING`, use fetchone)."""
        ...

    @abstractmethod
    async def fetchone(self, sql: str, params: Iterable[object] = ()) -> tuple | None:
        ...

    @abstractmethod
    async def fetchall(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        ...

    def json_append(self, column: str) -> str:
        """An SQL expression: the JSON array in `column` (NULL as empty) with the bound value `?` added."""
        return f"json_insert(coalesce({column}, '[]'), '$[#]', ?)"


def marks(ids: Sequence[object]) -> str:
    """`?, ?, ?` for an IN (…) list of `ids`."""
    return ",".join("?" * len(ids))


def literals(values: Sequence[str]) -> str:
    """`'a', 'b'` for an IN (…) list of constant states, written into the SQL rather than bound: SQLite
    uses a partial index (`… WHERE state IN ('pending', 'answered')`) only when the query names the same
    literal values."""
    return ", ".join(f"'{value}'" for value in values)
