"""What the bridge has spent: tokens per UTC day for each user and each channel, and how many messages
a user sent in the last minute — kept in the database, so budgets survive restarts (and, on a server
database, hold across replicas: every statement here is portable SQL).

A day is a UTC calendar day (`2026-12-01`): every budget renews at 00:00 UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.store.database import Database, marks
from bot.store.inbox import ItemState

USER, CHANNEL = "user", "channel"  # token_usage.scope
USAGE_KEPT_DAYS = 35  # days of usage rows kept (today's are all a budget needs; the rest is for operators)


def utc_day(when: dt.datetime) -> str:
    """The UTC calendar day of `when` (an aware datetime), as token_usage.day holds it."""
    return when.astimezone(dt.UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Charge:
    """Tokens to add to one user's or one channel's day."""

    scope: str
    subject: str
    tokens: int


@dataclass(frozen=True, slots=True)
class RecentMessages:
    """A user's messages in a window ending at one of them: how many, and when the oldest arrived."""

    count: int
    oldest: float | None


class Usage:
    """Tokens used per day, per user and per channel; a user's recent messages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, day: str, charges: Iterable[Charge]) -> None:
        """Add every charge to `day`, in one transaction."""
        rows = [(day, c.scope, c.subject, c.tokens) for c in charges if c.tokens > 0]
        if not rows:
            return
        async with self._db.transaction():
            for row in rows:
                await self._db.execute(
                    "INSERT INTO token_usage (day, scope, subject, tokens) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (day, scope, subject) DO UPDATE SET tokens = token_usage.tokens + excluded.tokens",
                    row)

    async def used(self, day: str, scope: str, subject: str) -> int:
        """Tokens `subject` (a user or channel id) used on `day`."""
        row = await self._db.fetchone("SELECT tokens FROM token_usage WHERE day = ? AND scope = ? AND subject = ?",
                                (day, scope, subject))
        return int(row[0]) if row else 0

    async def recent_messages(self, item_id: int, user: str, window: float) -> RecentMessages:
        """The user's messages (not refused ones) that arrived at most `window` seconds before inbox item
        `item_id`, up to and including it (in arrival order, so across all channels)."""
        row = await self._db.fetchone(
            "SELECT count(*), min(received_at) FROM inbox WHERE user_id = ? AND kind = 'message' AND id <= ?"
            " AND state <> ? AND received_at > (SELECT received_at FROM inbox WHERE id = ?) - ?",
            (user, item_id, ItemState.REFUSED, item_id, window))
        count, oldest = row if row else (0, None)
        return RecentMessages(int(count or 0), oldest)

    async def refuse(self, ids: Sequence[int], now: float) -> None:
        """These pending messages are over a budget: they end `refused`, never sent to the model."""
        if ids:
            await self._db.execute(f"UPDATE inbox SET state = ?, done_at = ? WHERE state = ? AND id IN ({marks(ids)})",
                             (ItemState.REFUSED, now, ItemState.PENDING, *ids))

    async def prune(self, today: dt.date) -> None:
        """Forget usage older than USAGE_KEPT_DAYS days."""
        oldest = (today - dt.timedelta(days=USAGE_KEPT_DAYS)).isoformat()
        await self._db.execute("DELETE FROM token_usage WHERE day < ?", (oldest,))
