"""Which replica works which channel, and which replicas are alive: leases and heartbeats in the
database, so that several replicas on one PostgreSQL never work one channel at once.

A lease is a row (channel, owner, expires_at). A replica claims a channel before working it — granted
when nobody holds it, when it is its own, or when the holder let it expire (a replica killed with
`kill -9`, or cut off from the database) — renews it while it works, and lets it expire at once when the
channel is idle. The row stays, naming its last owner: a claim tells whether the channel changed hands
since this replica last had it (then what it remembers of the channel is stale). Expiry is computed
with the DATABASE's clock, so replicas whose clocks disagree still agree on who holds what. On SQLite
none of this is used: one process owns a SQLite file.

Heartbeats (`replicas`) tell each replica how many are alive, so Slack's workspace-wide budgets can be
divided among them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from bot.store.database import Database, marks

REPLICA_FORGOTTEN_AFTER = 3600.0  # seconds after its last heartbeat a replica's row is deleted


class Claim(Enum):
    """The answer to a claim."""

    REFUSED = "refused"  # another live replica holds it
    KEPT = "kept"  # ours, and nobody else had it since we last did
    TAKEN = "taken"  # ours now; new to us, or another replica had it meanwhile


@dataclass(frozen=True)
class Granted:
    """A claim's answer, and — for a channel taken from another replica that let it go cleanly — how
    long ago that was and how much of the channel's posting budget it had left then."""

    claim: Claim
    idle_for: float | None = None
    post_tokens: float | None = None


class ChannelLeases:
    """Leases of one replica (`owner`) for `ttl` seconds at a time."""

    def __init__(self, db: Database, *, owner: str, ttl: float) -> None:
        self._db = db
        self.owner = owner
        self.ttl = ttl

    async def claim(self, channel: str) -> Granted:
        """Take the channel (or keep it) for `ttl` seconds, unless another live replica holds it."""
        now = self._db.now_sql
        row = await self._db.fetchone(
            f"INSERT INTO channel_leases (channel, owner, expires_at) VALUES (?, ?, {now} + ?)"
            " ON CONFLICT (channel) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,"
            " previous_owner = channel_leases.owner"
            f" WHERE channel_leases.owner = excluded.owner OR channel_leases.expires_at < {now}"
            f" RETURNING previous_owner, {now} - released_at, post_tokens", (channel, self.owner, self.ttl))
        if row is None:
            return Granted(Claim.REFUSED)
        previous, idle_for, tokens = row
        if previous == self.owner:
            return Granted(Claim.KEPT)
        return Granted(Claim.TAKEN, idle_for, tokens)

    async def renew(self, channels: Sequence[str]) -> set[str]:
        """Extend the leases of `channels` still held; the channels whose lease was lost are missing."""
        if not channels:
            return set()
        rows = await self._db.fetchall(
            f"UPDATE channel_leases SET expires_at = {self._db.now_sql} + ? WHERE owner = ?"
            f" AND channel IN ({marks(channels)}) RETURNING channel", (self.ttl, self.owner, *channels))
        return {channel for (channel,) in rows}

    async def release(self, channel: str, post_tokens: float | None = None) -> None:
        """The channel is idle: any replica may take it now (`post_tokens`: what is left of its posting
        budget here, for the next holder to go on from)."""
        await self._db.execute(
            f"UPDATE channel_leases SET expires_at = 0, released_at = {self._db.now_sql}, post_tokens = ?"
            " WHERE channel = ? AND owner = ?", (post_tokens, channel, self.owner))

    async def release_all(self) -> None:
        await self._db.execute("UPDATE channel_leases SET expires_at = 0 WHERE owner = ?", (self.owner,))

    async def holder(self, channel: str) -> str | None:
        """Who holds the channel's lease now (None: nobody, or it expired)."""
        row = await self._db.fetchone(
            f"SELECT owner FROM channel_leases WHERE channel = ? AND expires_at >= {self._db.now_sql}", (channel,))
        return row[0] if row else None


class Replicas:
    """This replica's heartbeat, and how many replicas are alive."""

    def __init__(self, db: Database, *, replica_id: str) -> None:
        self._db = db
        self.replica_id = replica_id

    async def beat(self, alive_within: float) -> int:
        """Say this replica is alive; the number of replicas seen alive within `alive_within` seconds."""
        now = self._db.now_sql
        async with self._db.transaction():
            await self._db.execute(
                f"INSERT INTO replicas (id, seen_at, started_at) VALUES (?, {now}, {now})"
                " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at", (self.replica_id,))
            await self._db.execute(f"DELETE FROM replicas WHERE seen_at < {now} - ?", (REPLICA_FORGOTTEN_AFTER,))
            row = await self._db.fetchone(f"SELECT count(*) FROM replicas WHERE seen_at >= {now} - ?",
                                          (alive_within,))
        return max(1, int(row[0])) if row else 1

    async def leave(self) -> None:
        """A clean stop: the others need not wait for this replica's heartbeat to age."""
        await self._db.execute("DELETE FROM replicas WHERE id = ?", (self.replica_id,))
