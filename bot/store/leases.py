"""Channel leases: at most one bridge process works on a channel at a time.

On SQLite there is one process, so every claim is granted (`LocalLeases`). On PostgreSQL each replica
holds a session-level advisory lock per channel it works on (`PostgresLeases`), on a connection of its
own: a second replica's claim fails at once (pg_try_advisory_lock, no waiting), and a replica that
dies loses its leases with its session — at once when the process is killed (its socket closes), and
within the lease timeout (BRIDGE_LEASE_TIMEOUT) when it vanishes from the network (the server's TCP
keepalive on that session).
The replica watches the connection too: when a heartbeat fails, it takes itself to hold nothing, so it
stops starting turns on channels that another replica may be taking over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from bot.settings import DEFAULT_LEASE_TIMEOUT
from bot.store.postgres import CONNECT_TIMEOUT, POSTGRES_ERRORS

log = logging.getLogger(__name__)

HEARTBEATS = 5  # checks that the lease connection is alive per lease timeout
LEASE_SPACE = 0x5AB_C4A1  # first key of every channel lease (the second is the channel's hash)


class LocalLeases:
    """One process serves every channel (SQLite): every claim is granted."""

    shared = False  # no other replica takes work from the same database

    async def claim(self, channel: str) -> bool:
        return True

    def holds(self, channel: str) -> bool:
        return True

    async def release(self, channel: str) -> None:
        return None

    async def close(self) -> None:
        return None


class PostgresLeases:
    """This replica's leases, as advisory locks of one session. Create with `await PostgresLeases.open(url)`."""

    shared = True

    def __init__(self, url: str, lease_timeout: float = DEFAULT_LEASE_TIMEOUT) -> None:
        self._url = url
        self._timeout = lease_timeout
        self.heartbeat = lease_timeout / HEARTBEATS  # seconds between checks that the session is alive
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # (one connection runs one statement at a time)
        self._held: set[str] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, lease_timeout: float = DEFAULT_LEASE_TIMEOUT) -> PostgresLeases:
        leases = cls(url, lease_timeout)
        await leases._connect()
        leases._heartbeat = asyncio.create_task(leases._watch(), name="lease-heartbeat")
        return leases

    async def claim(self, channel: str) -> bool:
        """Take the channel if no other replica has it (never waits for one that does)."""
        if channel in self._held:
            return True
        try:
            granted = await self._query("SELECT pg_try_advisory_lock($1, hashtext($2))", channel)
        except POSTGRES_ERRORS as exc:
            log.warning("cannot claim channel %s (the database is not answering): %s", channel, exc)
            return False
        if granted:
            self._held.add(channel)
        return bool(granted)

    def holds(self, channel: str) -> bool:
        """Still ours? False once the lease connection was lost (another replica may have the channel)."""
        return channel in self._held

    async def release(self, channel: str) -> None:
        if channel not in self._held:
            return
        self._held.discard(channel)
        with contextlib.suppress(*POSTGRES_ERRORS):  # (a lost session has released it already)
            await self._query("SELECT pg_advisory_unlock($1, hashtext($2))", channel)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._connection is not None:
            with contextlib.suppress(*POSTGRES_ERRORS):
                await self._connection.close(timeout=CONNECT_TIMEOUT)  # releases every lease
        self._held.clear()

    async def _query(self, sql: str, channel: str) -> object:
        async with self._lock:
            connection = self._connection if self._connection is not None and not self._connection.is_closed() \
                else await self._connect()
            return await connection.fetchval(sql, LEASE_SPACE, channel, timeout=self.heartbeat)

    async def _connect(self) -> asyncpg.Connection:
        """A new session: whatever the old one held is gone with it."""
        self._lost()
        # The server ends a silent session within the timeout: idle/3, then 3 probes timeout/10 apart.
        keepalive = {"tcp_keepalives_idle": str(max(1, int(self._timeout / 3))),
                     "tcp_keepalives_interval": str(max(1, int(self._timeout / 10))), "tcp_keepalives_count": "3",
                     "tcp_user_timeout": str(int(self._timeout * 1000 * 2 / 3)),
                     "application_name": "assistant-bridge leases"}
        self._connection = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT, server_settings=keepalive)
        return self._connection

    def _lost(self) -> None:
        if self._held:
            log.warning("lost the database session holding %d channel lease(s); they may move to another replica",
                        len(self._held))
        self._held.clear()
        if self._connection is not None and not self._connection.is_closed():
            self._connection.terminate()
        self._connection = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                async with self._lock:
                    if self._connection is not None and not self._connection.is_closed():
                        await self._connection.fetchval("SELECT 1", timeout=self.heartbeat)
                    elif self._held:
                        self._lost()
            except POSTGRES_ERRORS:
                async with self._lock:
                    self._lost()
