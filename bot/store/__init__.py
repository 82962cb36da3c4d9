"""The durable store: the inbox, the turn journal, the channel → conversation map and the chat
backend's history, each its own object over one shared `Database` (connection, transactions,
numbered migrations). `Store` holds them together; the wiring hands each stage only the parts it uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bot.store.chat_history import ChatHistory, ChatRecord
from bot.store.conversations import ConversationMap
from bot.store.database import Database, StoreInUse
from bot.store.inbox import Inbox, ItemState
from bot.store.journal import OpenTurn, TurnJournal, TurnState
from bot.store.model_facts import ModelFacts

RETENTION = 7 * 24 * 3600.0  # finished inbox items and turns are kept this long (for operators), then pruned

__all__ = ["ChatHistory", "ChatRecord", "ConversationMap", "Database", "Inbox", "ItemState", "ModelFacts", "OpenTurn",
           "Store", "StoreInUse", "TurnJournal", "TurnState", "RETENTION"]


@dataclass(frozen=True)
class Store:
    """Every part of the store over one database. Create with `await Store.open(path)`."""

    db: Database
    inbox: Inbox
    journal: TurnJournal
    conversations: ConversationMap
    chat: ChatHistory
    model_facts: ModelFacts

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        """Open (creating and upgrading as needed). Raises StoreInUse if another process has it, and
        OSError or sqlite3.Error if it cannot be opened."""
        db = await Database.open(path)
        store = cls(db=db, inbox=Inbox(db), journal=TurnJournal(db), conversations=ConversationMap(db),
                    chat=ChatHistory(db), model_facts=ModelFacts(db))
        try:
            store.prune()
        except BaseException:
            await db.close()
            raise
        db.start_maintenance(store.prune)
        return store

    def prune(self) -> None:
        """Forget finished work older than RETENTION (conversations and chat history are kept)."""
        cutoff = time.time() - RETENTION
        with self.db.transaction():
            self.inbox.prune(cutoff)
            self.journal.prune(cutoff)

    async def close(self) -> None:
        await self.db.close()
