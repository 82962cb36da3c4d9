"""Threads the assistant knows: how each started, whether it answered there, whether it has them whole.

A row per thread (channel, thread_ts), kept durably so a restart forgets nothing: the thread's first
message (its author and the start of its text — the note every message of the thread carries for the
model), when the assistant first answered in it (later replies there need no mention), and when the
thread's messages were all in the conversation (a thread the bot joined late has its earlier messages
read from Slack once). A thread whose first message is in the inbox needs no row to be known: the bridge
was in the channel when it started, so it has every message since.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.store.database import Database, marks

ROOT_TEXT_KEPT = 300  # characters of a thread's first message kept (the model sees a shorter quote)
THREAD_RETENTION = 90 * 24 * 3600.0  # a thread nobody wrote in for this long is forgotten


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    """What the store knows about a thread. `root_user`: who wrote its first message (a Slack user id),
    else `root_name` (an app's name); `complete`: all its messages are in the conversation."""

    channel: str
    thread_ts: str
    root_user: str | None = None
    root_name: str | None = None
    root_text: str | None = None
    answered: bool = False
    complete: bool = False

    @property
    def has_root(self) -> bool:
        return self.root_text is not None


class ThreadLog:
    """Reads and writes the `threads` table (and looks for a thread's first message in the inbox)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def thread(self, channel: str, thread_ts: str) -> ThreadRecord | None:
        """The thread as far as it is known: its row, completed from the inbox when its first message is
        stored there (then every message of the thread reached the bridge: it is complete)."""
        row = await self._db.fetchone(
            "SELECT root_user, root_name, root_text, answered_at, complete_at FROM threads"
            " WHERE channel = ? AND thread_ts = ?", (channel, thread_ts))
        record = None
        if row is not None:
            root_user, root_name, root_text, answered_at, complete_at = row
            record = ThreadRecord(channel, thread_ts, root_user, root_name, root_text, answered_at is not None,
                                  complete_at is not None)
            if record.has_root:
                return record
        stored = await self._db.fetchone(
            "SELECT user_id, text FROM inbox WHERE channel = ? AND dedupe_key = ? AND kind = 'message'",
            (channel, thread_ts))
        if stored is None:
            return record
        user, text = stored
        await self.remember_root(channel, thread_ts, user=user, text=text, complete=True)
        return ThreadRecord(channel, thread_ts, user, None, text[:ROOT_TEXT_KEPT],
                            record.answered if record else False, True)

    async def remember_root(self, channel: str, thread_ts: str, *, user: str | None = None, name: str | None = None,
                            text: str, complete: bool = False) -> None:
        """How the thread started (read once: from the inbox, the assistant's own reply, or Slack)."""
        now = time.time()
        await self._db.execute(
            "INSERT INTO threads (channel, thread_ts, root_user, root_name, root_text, complete_at, touched_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, thread_ts) DO UPDATE SET"
            " root_user = excluded.root_user, root_name = excluded.root_name, root_text = excluded.root_text,"
            " complete_at = coalesce(threads.complete_at, excluded.complete_at)",
            (channel, thread_ts, user, name, text[:ROOT_TEXT_KEPT], now if complete else None, now))

    async def mark_answered(self, channel: str, thread_ts: str) -> None:
        """The assistant answered in the thread: its messages are in the conversation, and later replies
        there are addressed to the assistant."""
        now = time.time()
        await self._db.execute(
            "INSERT INTO threads (channel, thread_ts, answered_at, complete_at, touched_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (channel, thread_ts) DO UPDATE SET"
            " answered_at = coalesce(threads.answered_at, excluded.answered_at),"
            " complete_at = coalesce(threads.complete_at, excluded.complete_at), touched_at = excluded.touched_at",
            (channel, thread_ts, now, now, now))

    async def mark_complete(self, channel: str, thread_ts: str) -> None:
        """The thread's earlier messages (read from Slack) are in the conversation now."""
        now = time.time()
        await self._db.execute(
            "INSERT INTO threads (channel, thread_ts, complete_at, touched_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (channel, thread_ts) DO UPDATE SET complete_at = coalesce(threads.complete_at,"
            " excluded.complete_at)", (channel, thread_ts, now, now))

    async def answered(self, channel: str, threads: Sequence[str]) -> frozenset[str]:
        """Which of these threads the assistant has answered in."""
        if not threads:
            return frozenset()
        rows = await self._db.fetchall(
            f"SELECT thread_ts FROM threads WHERE channel = ? AND thread_ts IN ({marks(threads)})"
            " AND answered_at IS NOT NULL", (channel, *threads))
        return frozenset(row[0] for row in rows)

    async def stored(self, channel: str, timestamps: Sequence[str]) -> frozenset[str]:
        """Which of these messages are in the inbox (so already in the conversation, or on their way)."""
        if not timestamps:
            return frozenset()
        rows = await self._db.fetchall(
            f"SELECT dedupe_key FROM inbox WHERE channel = ? AND dedupe_key IN ({marks(timestamps)})",
            (channel, *timestamps))
        return frozenset(row[0] for row in rows)

    async def prune(self, cutoff: float) -> None:
        """Forget threads last answered in (or first seen) before `cutoff` (a Unix time)."""
        await self._db.execute("DELETE FROM threads WHERE touched_at < ?", (cutoff,))
