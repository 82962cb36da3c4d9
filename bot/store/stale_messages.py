"""Reply messages replaced by newer ones and still to delete from Slack, kept across restarts.

A final text posted anew (bot/outbound/updating_reply.py) leaves its partial message behind until
`chat.delete`'s budget allows deleting it; the row keeps that promise if the process stops first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bot.store.database import Database

SWEEP_LIMIT = 1000  # rows read at start-up


class StaleMessages:
    """(channel, ts) of messages to delete; a row goes once Slack has answered the delete."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, channel: str, timestamps: Sequence[str]) -> None:
        now = time.time()
        for ts in timestamps:
            await self._db.execute(
                "INSERT INTO stale_messages (channel, ts, added_at) VALUES (?, ?, ?)"
                " ON CONFLICT (channel, ts) DO NOTHING", (channel, ts, now))

    async def done(self, channel: str, ts: str) -> None:
        await self._db.execute("DELETE FROM stale_messages WHERE channel = ? AND ts = ?", (channel, ts))

    async def pending(self, limit: int = SWEEP_LIMIT) -> list[tuple[str, str]]:
        """The oldest messages still to delete, (channel, ts)."""
        rows = await self._db.fetchall(
            "SELECT channel, ts FROM stale_messages ORDER BY added_at LIMIT ?", (limit,))
        return [(str(channel), str(ts)) for channel, ts in rows]
