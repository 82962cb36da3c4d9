"""Whom the bridge has told that they may not use it here, so each person is told once per channel —
across restarts too (a denied message is never stored, so this is all that is kept of it)."""

from __future__ import annotations

import time

from bot.store.database import Database


class AccessNotes:
    """(channel, user) pairs already sent the "you may not use the assistant here" note."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def first_time(self, channel: str, user: str) -> bool:
        """Record that `user` is told in `channel`; True only the first time (tell them now)."""
        cursor = self._db.execute(
            "INSERT INTO access_notes (channel, user_id, told_at) VALUES (?, ?, ?)"
            " ON CONFLICT (channel, user_id) DO NOTHING", (channel, user, time.time()))
        return cursor.rowcount == 1

    async def forget(self, channel: str, user: str) -> None:
        """The note could not be delivered: let the next refused message try again."""
        self._db.execute("DELETE FROM access_notes WHERE channel = ? AND user_id = ?", (channel, user))
