"""The durable store: the inbox, the turn journal, the channel → conversation map and the chat
backend's history, each its own object over one shared `Database` (connections, transactions,
numbered migrations) — a SQLite file for one process, PostgreSQL for several replicas. `Store` holds
them together; the wiring hands each stage only the parts it uses.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bot.store.access_notes import AccessNotes, SpeakerNames
from bot.store.chat_history import ChatHistory, ChatRecord
from bot.store.conversations import ConversationMap
from bot.store.database import Database, StoreInUse
from bot.store.inbox import Inbox, ItemState
from bot.store.journal import OpenTurn, TurnJournal, TurnState
from bot.store.model_facts import ModelFacts
from bot.store.postgres import DEFAULT_POOL_SIZE, DRIVER_ERRORS, POSTGRES_ERRORS, PostgresDatabase, is_postgres_url
from bot.store.retention import erase_text
from bot.store.sqlite import SqliteDatabase
from bot.store.stale_messages import StaleMessages
from bot.store.threads import THREAD_RETENTION, ThreadLog, ThreadRecord
from bot.store.usage import Usage

RETENTION = 7 * 24 * 3600.0  # finished inbox items and turns are kept this long (for operators), then pruned

__all__ = ["AccessNotes", "ChatHistory", "ChatRecord", "ConversationMap", "Database", "DATABASE_ERRORS", "Inbox",
           "ItemState", "ModelFacts", "open_database", "OPEN_ERRORS", "OpenTurn", "RETENTION", "SpeakerNames",
           "StaleMessages", "Store", "StoreInUse", "ThreadLog", "ThreadRecord", "TurnJournal", "TurnState", "Usage"]

DAY = 86_400.0

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
    access_notes: AccessNotes
    speaker_names: SpeakerNames
    usage: Usage
    threads: ThreadLog
    model_facts: ModelFacts
    stale_messages: StaleMessages
    retention_days: int = 0  # BRIDGE_RETENTION_DAYS: message text is erased this long after it was answered

    @classmethod
    async def open(cls, target: str | Path, *, pool_size: int = DEFAULT_POOL_SIZE, retention_days: int = 0) -> Store:
        """Open a SQLite file or a PostgreSQL URL (creating and upgrading the schema as needed). Raises
        StoreInUse if another process has the SQLite file, one of OPEN_ERRORS if it cannot be opened."""
        db = await open_database(target, pool_size=pool_size)
        store = cls(db=db, inbox=Inbox(db), journal=TurnJournal(db), conversations=ConversationMap(db),
                    chat=ChatHistory(db), usage=Usage(db), retention_days=retention_days, threads=ThreadLog(db),
                    access_notes=AccessNotes(db), speaker_names=SpeakerNames(db), model_facts=ModelFacts(db),
                    stale_messages=StaleMessages(db))
        try:
            await store.prune()
        except BaseException:
            await store.close()
            raise
        db.start_maintenance(store.prune)
        return store

    async def prune(self) -> None:
        """Forget finished work older than RETENTION (conversations are kept), usage rows past their
        keeping, and — with `retention_days` — erase message text answered longer ago than that."""
        now = time.time()
        cutoff = now - RETENTION
        async with self.db.transaction():
            await self.inbox.prune(cutoff)
            await self.journal.prune(cutoff)
            await self.usage.prune(dt.datetime.now(dt.UTC).date())
            await self.threads.prune(now - THREAD_RETENTION)
            if self.retention_days:
                await erase_text(self.db, now - self.retention_days * DAY)

    async def ping(self) -> None:
        """One round trip to the database (raises if it does not answer): is the store usable?"""
        await self.db.fetchone("SELECT 1")

    async def close(self) -> None:
        await self.db.close()
