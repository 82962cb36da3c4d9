"""Channel workers: each channel's items, one step at a time, in Slack order.

A worker exists only while its channel has work. Each step takes every pending item of the channel
(messages that arrived while the previous reply was written are answered together), applies a reset
exactly where it sits in the log, and marks items done only after their reply is in Slack (see
`TurnRunner`). One model request at most is in flight per channel, so per conversation.

With several replicas on one database, a worker first claims the channel's lease (bot/store/leases.py);
a channel another replica holds is left to it. Every few seconds each replica looks for channels with
work that nobody is serving — a dead replica's, or one whose lease was released just as a message
arrived elsewhere — and claims them.
"""

from __future__ import annotations

import asyncio
import logging

from bot.store import DATABASE_ERRORS, Inbox
from bot.store.leases import LocalLeases, PostgresLeases
from bot.work.retry import Next
from bot.work.runner import TurnRunner

log = logging.getLogger(__name__)

CRASH_BACKOFF = 5.0  # seconds before a channel whose step raised an unexpected error is tried again
UNCLAIMED_POLL = 3.0  # seconds between looks for channels with work that no replica serves (shared store)


class ChannelWorkers:
    """Starts a worker for a channel when it has work; the worker ends when the channel is idle."""

    def __init__(self, *, inbox: Inbox, runner: TurnRunner, leases: LocalLeases | PostgresLeases | None = None,
                 poll: float = UNCLAIMED_POLL) -> None:
        self._inbox = inbox
        self._runner = runner
        self._leases = leases or LocalLeases()
        self._poll = poll
        self._poller: asyncio.Task[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._stopping = asyncio.Event()

    @property
    def active_channels(self) -> int:
        return len(self._tasks)

    def notify(self, channel: str) -> None:
        """The channel has new work: make sure a worker will see it."""
        if self._stopping.is_set():
            return
        self._dirty.add(channel)
        running = self._tasks.get(channel)
        if running is None or running.done():
            task = asyncio.create_task(self._work(channel), name=f"channel-{channel}")
            self._tasks[channel] = task
            task.add_done_callback(lambda done, c=channel: self._forget(c, done))

    def _forget(self, channel: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(channel) is task:
            del self._tasks[channel]

    async def resume(self) -> int:
        """At start-up: restart every channel that has pending items or an undelivered reply."""
        channels = await self._inbox.channels_with_pending()
        for channel in channels:
            self.notify(channel)
        if self._leases.shared and self._poller is None:
            self._poller = asyncio.create_task(self._look_for_unclaimed(), name="unclaimed-channels")
        return len(channels)

    async def _look_for_unclaimed(self) -> None:
        while not self._stopping.is_set():
            await self._sleep(self._poll)
            try:
                channels = await self._inbox.channels_with_pending()
            except Exception as exc:  # (the database is away: look again later)
                log.warning("cannot look for channels with work: %s", exc)
                continue
            for channel in channels:
                if channel not in self._tasks:
                    self.notify(channel)

    async def stop(self, grace: float) -> None:
        """Take no new work; let running turns finish for up to `grace` seconds, then cancel them.
        Whatever is not finished stays in the store for the next start."""
        self._stopping.set()
        if self._poller is not None:
            await asyncio.gather(self._poller, return_exceptions=True)
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _work(self, channel: str) -> None:
        if not await self._leases.claim(channel):
            self._forget(channel, asyncio.current_task())  # type: ignore[arg-type]
            return  # another replica works on it
        try:
            await self._steps(channel)
        finally:
            await self._leases.release(channel)

    async def _steps(self, channel: str) -> None:
        while not self._stopping.is_set() and self._leases.holds(channel):
            self._dirty.discard(channel)
            try:
                step = await self._runner.step(channel)
            except DATABASE_ERRORS as exc:  # (PostgreSQL away for a moment: a failover, a restart)
                log.warning("channel %s: the database failed (%s); its messages stay queued", channel,
                            str(exc) or type(exc).__name__)
                await self._sleep(CRASH_BACKOFF)
                continue
            except Exception:  # a bug must not kill the channel silently; its items stay pending
                log.exception("channel %s: unexpected error; its messages stay queued", channel)
                await self._sleep(CRASH_BACKOFF)
                continue
            if step.next is Next.RETRY:
                await self._sleep(step.delay)
            elif step.next is Next.WAIT and channel not in self._dirty:
                if self._leases.shared and await self._busy_after_release(channel):
                    continue
                # Leave the register now, not in a later done-callback: a notify() from here on starts
                # a new worker instead of counting on this one.
                self._forget(channel, asyncio.current_task())  # type: ignore[arg-type]
                return

    async def _busy_after_release(self, channel: str) -> bool:
        """Let the channel go, then look once more: a message another replica stored while this one held
        the lease found it taken. True if there is work and the channel is ours again."""
        await self._leases.release(channel)
        waiting = await self._inbox.pending_count(channel)
        if not waiting and channel not in self._dirty:  # (a notify() during the count is seen here)
            return False
        return await self._leases.claim(channel)  # (not granted: another replica has it now)

    async def _sleep(self, seconds: float) -> None:
        """Wait before trying again, but not past a shutdown."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass
