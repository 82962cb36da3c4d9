"""Whom the bridge has told that they may not use it here, so each person is told once per channel —
across restarts too (a denied message is never stored, so this is all that is kept of it); and which
person each speaker name stands for, so that nobody can take another's name."""

from __future__ import annotations

import time

from bot.store.database import Database


class AccessNotes:
    """(channel, user) pairs already sent the "you may not use the assistant here" note."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def first_time(self, channel: str, user: str) -> bool:
        """Record that `user` is told in `channel`; True only the first time (tell them now)."""
        added = await self._db.execute(
            "INSERT INTO access_notes (channel, user_id, told_at) VALUES (?, ?, ?)"
            " ON CONFLICT (channel, user_id) DO NOTHING", (channel, user, time.time()))
        return added == 1

    async def forget(self, channel: str, user: str) -> None:
        """The note could not be delivered: let the next refused message try again."""
        await self._db.execute("DELETE FROM access_notes WHERE channel = ? AND user_id = ?", (channel, user))


class SpeakerNames:
    """Name (as the model reads it, casefolded) → the one user it stands for: the first to use it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, name_key: str, user: str) -> str:
        """Claim `name_key` for `user` unless someone holds it already; return who holds it."""
        await self._db.execute("INSERT INTO speaker_names (name_key, user_id, claimed_at) VALUES (?, ?, ?)"
                               " ON CONFLICT (name_key) DO NOTHING", (name_key, user, time.time()))
        row = await self._db.fetchone("SELECT user_id FROM speaker_names WHERE name_key = ?", (name_key,))
        return str(row[0]) if row else user
