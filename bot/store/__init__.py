"""The durable store: the inbox, the turn journal, the channel → conversation map and the chat
backend's history, each its own object over one shared `Database` (connections, transactions,
numbered migrations) — a SQLite file for one process, PostgreSQL for several replicas. `Store` holds
them together; the wiring hands each stage only the parts it uses.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import DEFAULT_LEASE_TIMEOUT
from bot.store.chat_history import ChatHistory, ChatRecord
from bot.store.conversations import ConversationMap
from bot.store.database import Database, StoreInUse
from bot.store.inbox import Inbox, ItemState
from bot.store.journal import OpenTurn, TurnJournal, TurnState
from bot.store.leases import LocalLeases, PostgresLeases
from bot.store.postgres import DEFAULT_POOL_SIZE, DRIVER_ERRORS, POSTGRES_ERRORS, PostgresDatabase, is_postgres_url
from bot.store.sqlite import SqliteDatabase

RETENTION = 7 * 24 * 3600.0  # finished inbox items and turns are kept this long (for operators), then pruned

__all__ = ["ChatHistory", "ChatRecord", "ConversationMap", "Database", "Inbox", "ItemState", "OpenTurn", "Store",
           "StoreInUse", "TurnJournal", "TurnState", "RETENTION", "OPEN_ERRORS", "DATABASE_ERRORS",
           "open_database"]

# What opening a store raises when the database cannot be reached or used (besides StoreInUse).
OPEN_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, *POSTGRES_ERRORS)
# What a store call raises when the database fails under it (not OSError: too wide to name the database).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, *DRIVER_ERRORS)


async def open_database(target: str | Path, *, pool_size: int = DEFAULT_POOL_SIZE) -> Database:
    """A `postgresql://` (or `postgres://`) URL opens PostgreSQL; anything else is a SQLite file path."""
    if is_postgres_url(target):
        return await PostgresDatabase.open(str(target), pool_size=pool_size)
    return await SqliteDatabase.open(target)


@dataclass(frozen=True)
class Store:
    """Every part of the store over one database. Create with `await Store.open(path or URL)`."""

    db: Database
    inbox: Inbox
    journal: TurnJournal
    conversations: ConversationMap
    chat: ChatHistory
    leases: LocalLeases | PostgresLeases = field(default_factory=LocalLeases)  # who works on which channel

    @classmethod
    async def open(cls, target: str | Path, *, pool_size: int = DEFAULT_POOL_SIZE,
                   lease_timeout: float = DEFAULT_LEASE_TIMEOUT) -> Store:
        """Open a SQLite file or a PostgreSQL URL (creating and upgrading the schema as needed). Raises
        StoreInUse if another process has the SQLite file, one of OPEN_ERRORS if it cannot be opened."""
        db = await open_database(target, pool_size=pool_size)
        try:
            leases = (await PostgresLeases.open(str(target), lease_timeout) if db.dialect == "postgresql"
                      else LocalLeases())
        except BaseException:
            await db.close()
            raise
        store = cls(db=db, inbox=Inbox(db), journal=TurnJournal(db), conversations=ConversationMap(db),
                    chat=ChatHistory(db), leases=leases)
        try:
            await store.prune()
        except BaseException:
            await store.close()
            raise
        db.start_maintenance(store.prune)
        return store

    async def prune(self) -> None:
        """Forget finished work older than RETENTION (conversations and chat history are kept)."""
        cutoff = time.time() - RETENTION
        async with self.db.transaction():
            await self.inbox.prune(cutoff)
            await self.journal.prune(cutoff)

    async def close(self) -> None:
        await self.leases.close()
        await self.db.close()
