"""Lookups under way, one per key, shared by every caller (a name, a channel: asked of Slack once)."""

from __future__ import annotations

import asyncio
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
