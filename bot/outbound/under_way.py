"""Lookups under way, one per key, shared by every caller (a name, a channel: asked of Slack once); the
values they gave, kept for a while (`Kept`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class UnderWay(Generic[K, V]):
    """`get(key)` the value `look_up(key)` gives; callers while it runs share it. `start(key)` begins it
    now, in the background (its outcome is there for the next caller)."""

    def __init__(self, look_up: Callable[[K], Awaitable[V]]) -> None:
        self._look_up = look_up
        self._running: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K) -> V:
        return await asyncio.shield(self.start(key))  # (a caller giving up does not stop the others')

    def start(self, key: K) -> asyncio.Future[V]:
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(self._look_up(key))
            running.add_done_callback(lambda done: self._ended(key, done))
        return running

    def _ended(self, key: K, done: asyncio.Future[V]) -> None:
        self._running.pop(key, None)
        if not done.cancelled() and done.exception() is not None:  # (retrieved: one started ahead has no caller)
            log.warning("looking up %s failed: %r", key, done.exception())


@dataclass(frozen=True, slots=True)
class Found(Generic[V]):
    """What one lookup gave: the value, for how long to keep it, and whether Slack gave it (else it is a
    stand-in after a failure, given only for its time)."""

    value: V
    ttl: float
    from_slack: bool = True


class Kept(Generic[K, V]):
    """Values looked up by key (through `UnderWay`: one lookup for every caller at once), each kept for its
    time to live. Past it, a value Slack gave is still given while it is asked again in the background (the
    events that change it come meanwhile); a stand-in after a failed lookup is not (the next caller asks
    again). A failed lookup keeps a value Slack gave before, for `retry_after`; a value put in from an event
    while a lookup runs is not overwritten by what the lookup brings. At most `limit` values: the one
    longest without a fresh value goes first (a speaker who keeps talking keeps theirs)."""

    def __init__(self, look_up: Callable[[K], Awaitable[Found[V]]], *, retry_after: float,
                 limit: int | None = None) -> None:
        self._source = look_up
        self._values: dict[K, tuple[V, float, bool]] = {}  # key → (value, until when, from Slack)
        self._lookups = UnderWay(self._look_up)
        self._retry_after = retry_after
        self._limit = limit

    def now(self, key: K) -> V | None:
        """The value if kept (no wait; one past its time starts its lookup again)."""
        kept = self._values.get(key)
        if kept is None:
            return None
        if kept[1] > time.monotonic():
            return kept[0]
        if not kept[2]:
            return None
        self._lookups.start(key)
        return kept[0]

    def fresh(self, key: K) -> V | None:
        """The value if kept and within its time (what a permission is decided on)."""
        kept = self._values.get(key)
        return kept[0] if kept is not None and kept[1] > time.monotonic() else None

    async def get(self, key: K) -> V:
        value = self.now(key)
        return value if value is not None else await self._lookups.get(key)

    def ahead(self, key: K) -> bool:
        """Start the lookup now, in the background, unless the value is kept; True if it is not."""
        if self.now(key) is not None:
            return False
        self._lookups.start(key)
        return True

    def again(self, key: K) -> None:
        """Look the value up now, kept or not (the next callers get the fresh one)."""
        self._lookups.start(key)

    def put(self, key: K, value: V, ttl: float) -> None:
        """A value from Slack (an event's), kept for `ttl` seconds."""
        self._keep(key, value, ttl, True)

    def forget(self, key: K) -> None:
        self._values.pop(key, None)

    def __contains__(self, key: object) -> bool:
        """Whether a value Slack gave is kept (a stand-in after a failure does not count)."""
        kept = self._values.get(key)  # type: ignore[call-overload]
        return kept is not None and kept[2]

    async def _look_up(self, key: K) -> V:
        before = self._values.get(key)
        try:
            found = await self._source(key)
        except Exception:
            self._failed(key, before, self._retry_after)
            raise
        now = self._values.get(key)
        if now is not None and now is not before:  # (an event's value came meanwhile: it is newer)
            return now[0]
        if not found.from_slack and self._failed(key, before, found.ttl):
            return before[0]  # type: ignore[index]
        self._keep(key, found.value, found.ttl, found.from_slack)
        return found.value

    def _failed(self, key: K, before: tuple[V, float, bool] | None, ttl: float) -> bool:
        """Keep a value Slack gave before for `ttl` more; whether there was one."""
        if before is None or not before[2] or self._values.get(key) is not before:
            return False
        self._keep(key, before[0], ttl, True)
        return True

    def _keep(self, key: K, value: V, ttl: float, from_slack: bool) -> None:
        if self._values.pop(key, None) is None and self._limit is not None and len(self._values) >= self._limit:
            self._values.pop(next(iter(self._values)))  # (the longest without a fresh value)
        self._values[key] = (value, time.monotonic() + ttl, from_slack)  # (a new tuple: see `_look_up`)
