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

    async def add_spare(self, pool: str, conversation_id: str) -> None:
        """An empty conversation, made ahead for a channel still to come (see `take_spare`)."""
        await self._db.execute(
            "INSERT INTO spare_conversations (conversation_id, pool, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (conversation_id) DO NOTHING", (conversation_id, pool, time.time()))

    async def spare_count(self, pool: str) -> int:
        row = await self._db.fetchone(
            "SELECT count(*) FROM spare_conversations WHERE pool = ? AND channel IS NULL", (pool,))
        return int(row[0]) if row else 0

    async def take_spare(self, channel: str, backend: str, pool: str) -> str | None:
        """The channel's conversation: the one it has, else the oldest spare of `pool`, now the channel's
        (in one transaction: a spare goes to one channel, a channel keeps one conversation); None if it
        has none and no spare is left. A spare taken stays listed, with its channel, until `labelled`."""
        async with self._db.transaction():
            kept = await self.conversation(channel, backend)
            if kept is not None:
                return kept
            row = await self._db.fetchone(
                "UPDATE spare_conversations SET channel = ? WHERE conversation_id = (SELECT conversation_id"
                " FROM spare_conversations WHERE pool = ? AND channel IS NULL ORDER BY created_at, conversation_id"
                f" LIMIT 1{self._db.skip_locked}) RETURNING conversation_id", (channel, pool))
            if row is None:
                return None
            kept = await self.claim_conversation(channel, backend, row[0])
            if kept != row[0]:  # (another replica gave the channel one meanwhile: the spare stays one)
                await self._db.execute(
                    "UPDATE spare_conversations SET channel = NULL WHERE conversation_id = ?", (row[0],))
            return kept

    async def taken_spares(self, pool: str) -> list[tuple[str, str]]:
        """(conversation id, channel) of the spares taken and not yet `labelled`."""
        rows = await self._db.fetchall(
            "SELECT conversation_id, channel FROM spare_conversations WHERE pool = ? AND channel IS NOT NULL"
            " ORDER BY created_at", (pool,))
        return [(row[0], row[1]) for row in rows]

    async def labelled(self, conversation_id: str) -> None:
        """The service knows the taken spare's channel now: it is an ordinary conversation."""
        await self._db.execute("DELETE FROM spare_conversations WHERE conversation_id = ?", (conversation_id,))

    async def drop_spares(self, pool: str) -> None:
        """Forget the pool's spares (the service lost a conversation: they may be gone too)."""
        await self._db.execute("DELETE FROM spare_conversations WHERE pool = ? AND channel IS NULL", (pool,))

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
