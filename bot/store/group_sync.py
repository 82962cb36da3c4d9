"""Group commit for the disk: one fsync, in a thread, for every caller that asked before it began.

The intake commits each message without waiting for the disk (the channel's worker sees it at once) and
acks Slack only once the write-ahead log is synced. Syncing for each message on its own cost a thread
hand-off per message, right when that message's turn was being sent to the model. Here a sync starts
`delay` after the first caller asks (as PostgreSQL's `commit_delay`): by then the turn's request is
usually on its way, and every message stored meanwhile rides on the same fsync. A caller arriving while
one runs waits for the next (its commit may have missed the running one), started as soon as it ends.
A message whose turn will first wait for round trips (its channel or author looked up) has the sync
started at once: the event loop is free for it then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

SYNC_DELAY = 0.002  # seconds a sync waits for more commits (well within Slack's 3 s to ack)


class GroupSync:
    """`await group_sync()` returns once a call of `sync` (blocking; run in a thread) that began after
    this call has returned; its exception, if it raised."""

    def __init__(self, sync: Callable[[], None], *, delay: float = SYNC_DELAY) -> None:
        self._sync = sync
        self._delay = delay
        self._next: asyncio.Future[None] | None = None  # for the callers since the last sync began
        self._running: asyncio.Future[None] | None = None  # the sync under way
        self._timer: asyncio.Handle | None = None  # the next sync's start, while it waits for the delay

    async def __call__(self, *, at_once: bool = False) -> None:
        """`at_once`: start the sync now rather than after the delay (the caller's work waits for round
        trips anyway: the loop is free for it meanwhile)."""
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
            if self._running is None:  # (else the running sync starts the next one when it ends)
                self._timer = loop.call_soon(self._start) if at_once else loop.call_later(self._delay, self._start)
        elif at_once and self._timer is not None:
            self._timer.cancel()
            self._timer = loop.call_soon(self._start)
        await asyncio.shield(self._next)  # (a caller giving up does not cancel the others' sync)

    async def wait_idle(self) -> None:
        """Until no sync runs nor waits to (before the file it syncs is closed)."""
        while self._running is not None or self._next is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._running or self._next)  # type: ignore[arg-type]

    def _start(self) -> None:
        waiting, self._next, self._timer = self._next, None, None
        if waiting is None:
            return
        self._running = running = asyncio.ensure_future(asyncio.to_thread(self._sync))
        running.add_done_callback(lambda done: self._done(done, waiting))

    def _done(self, done: asyncio.Future[None], waiting: asyncio.Future[None]) -> None:
        self._running = None
        if not waiting.done():
            if done.cancelled():
                waiting.cancel()
            elif done.exception() is not None:
                waiting.set_exception(done.exception())  # type: ignore[arg-type]
                waiting.exception()  # (retrieved: each caller re-raises it itself)
            else:
                waiting.set_result(None)
        if self._next is not None:  # callers came while it ran: they have waited long enough
            self._start()
