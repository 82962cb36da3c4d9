"""Each channel's conversation at the model service (per backend), and its newest item."""

from __future__ import annotations

import time

from bot.store.database import Database


class ConversationMap:
    """channel + backend → conversation id, and the id of the conversation's newest item (set in the
    same transaction as the turn that made it, see `TurnJournal.answer_turn`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def conversation(self, channel: str, backend: str) -> str | None:
        row = await self._db.fetchone(
            "SELECT conversation_id FROM conversations WHERE channel = ? AND backend = ?", (channel, backend))
        return row[0] if row else None

    async def set_conversation(self, channel: str, backend: str, conversation_id: str) -> None:
        await self._db.execute(
            "INSERT INTO conversations (channel, backend, conversation_id, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (channel, backend) DO UPDATE SET conversation_id = excluded.conversation_id,"
            " created_at = excluded.created_at, last_item_id = NULL",
            (channel, backend, conversation_id, time.time()),
        )

    async def claim_conversation(self, channel: str, backend: str, conversation_id: str) -> str:
        """Keep `conversation_id` as the channel's unless it has one already; the one it has now. (Two
        processes creating one at once agree on whichever was kept; the other stays an empty orphan.)"""
        await self._db.execute(
            "INSERT INTO conversations (channel, backend, conversation_id, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (channel, backend) DO NOTHING", (channel, backend, conversation_id, time.time()))
        kept = await self.conversation(channel, backend)
        return kept or conversation_id

    async def last_item(self, channel: str, backend: str) -> str | None:
        row = await self._db.fetchone(
            "SELECT last_item_id FROM conversations WHERE channel = ? AND backend = ?", (channel, backend))
        return row[0] if row else None

    async def forget_conversation(self, channel: str, backend: str) -> None:
        """The channel starts afresh: its conversation is forgotten, and with it the chat history kept
        here for it (a reset conversation is never read again)."""
        async with self._db.transaction():
            await self._db.execute(
                "DELETE FROM chat_messages WHERE conversation_id IN (SELECT conversation_id FROM conversations"
                " WHERE channel = ? AND backend = ?)", (channel, backend))
            await self._db.execute("DELETE FROM conversations WHERE channel = ? AND backend = ?", (channel, backend))

    async def backends_in_use(self) -> list[str]:
        """The backends that have conversations here, the most used first."""
        rows = await self._db.fetchall("SELECT backend FROM conversations GROUP BY backend ORDER BY count(*) DESC")
        return [row[0] for row in rows]
