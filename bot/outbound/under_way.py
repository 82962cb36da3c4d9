"""Lookups under way, one per key, shared by every caller (a name, a channel: asked of Slack once); the
values they gave, kept for a while (`Kept`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

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
        if not done.cancelled():
            done.exception()  # (retrieved: a caller re-raises it; one started ahead may have none)


class Kept(Generic[K, V]):
    """Values looked up by key (through `UnderWay`: one lookup for every caller at once), each kept for its
    time to live. Past it, a value Slack gave is still given while it is asked again in the background (the
    events that change it come meanwhile); one put in for a failed lookup is not (the next caller asks
    again). At most `limit` values: the oldest put in goes first."""

    def __init__(self, look_up: Callable[[K], Awaitable[V]], *, limit: int | None = None) -> None:
        self._values: dict[K, tuple[V, float, bool]] = {}  # key → (value, until when, from Slack)
        self._lookups = UnderWay(look_up)
        self._limit = limit

    def now(self, key: K) -> V | None:
        """The value if kept (no wait; one past its time starts its lookup again)."""
        kept = self._values.get(key)
        if kept is None:
            return None
        value, until, looked_up = kept
        if until > time.monotonic():
            return value
        if not looked_up:
            return None
        self._lookups.start(key)
        return value

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
        """A value from Slack, kept for `ttl` seconds."""
        self._keep(key, value, ttl, True)

    def failed(self, key: K, fallback: V, ttl: float) -> V:
        """A lookup failed: a value Slack gave before stays (asked again after `ttl`); else `fallback`,
        kept for `ttl`. Which of the two it is."""
        kept = self._values.get(key)
        if kept is not None and kept[2]:
            self._keep(key, kept[0], ttl, True)
            return kept[0]
        self._keep(key, fallback, ttl, False)
        return fallback

    def forget(self, key: K) -> None:
        self._values.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def _keep(self, key: K, value: V, ttl: float, looked_up: bool) -> None:
        if self._limit is not None and key not in self._values and len(self._values) >= self._limit:
            self._values.pop(next(iter(self._values)))  # (the oldest put in)
        self._values[key] = (value, time.monotonic() + ttl, looked_up)
