"""The durable store: the inbox, the turn journal, the channel → conversation map and the chat
backend's history, each its own object over one shared `Database` (connection, transactions,
numbered migrations). `Store` holds them together; the wiring hands each stage only the parts it uses.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from bot.store.chat_history import ChatHistory, ChatRecord
from bot.store.conversations import ConversationMap
from bot.store.database import Database, StoreInUse
from bot.store.inbox import Inbox, ItemState
from bot.store.journal import OpenTurn, TurnJournal, TurnState
from bot.store.retention import erase_text
from bot.store.usage import Usage

RETENTION = 7 * 24 * 3600.0  # finished inbox items and turns are kept this long (for operators), then pruned

__all__ = ["ChatHistory", "ChatRecord", "ConversationMap", "Database", "Inbox", "ItemState", "OpenTurn", "Store",
           "StoreInUse", "TurnJournal", "TurnState", "RETENTION", "Usage"]

DAY = 86_400.0


@dataclass(frozen=True)
class Store:
    """Every part of the store over one database. Create with `await Store.open(path)`."""

    db: Database
    inbox: Inbox
    journal: TurnJournal
    conversations: ConversationMap
    chat: ChatHistory
    usage: Usage
    retention_days: int = 0  # BRIDGE_RETENTION_DAYS: message text is erased this long after it was answered

    @classmethod
    async def open(cls, path: str | Path, *, retention_days: int = 0) -> Store:
        """Open (creating and upgrading as needed). Raises StoreInUse if another process has it, and
        OSError or sqlite3.Error if it cannot be opened."""
        db = await Database.open(path)
        store = cls(db=db, inbox=Inbox(db), journal=TurnJournal(db), conversations=ConversationMap(db),
                    chat=ChatHistory(db), usage=Usage(db), retention_days=retention_days)
        try:
            store.prune()
        except BaseException:
            await db.close()
            raise
        db.start_maintenance(store.prune)
        return store

    def prune(self) -> None:
        """Forget finished work older than RETENTION (conversations are kept), usage rows past their
        keeping, and — with `retention_days` — erase message text answered longer ago than that."""
        now = time.time()
        cutoff = now - RETENTION
        with self.db.transaction():
            self.inbox.prune(cutoff)
            self.journal.prune(cutoff)
            self.usage.prune(dt.datetime.now(dt.UTC).date())
            if self.retention_days:
                erase_text(self.db, now - self.retention_days * DAY)

    async def close(self) -> None:
        await self.db.close()
