"""Channel workers: each channel's items, one step at a time, in Slack order.

A worker exists only while its channel has work. Each step takes every pending item of the channel
(messages that arrived while the previous reply was written are answered together), applies a reset
exactly where it sits in the log, and marks items done only after their reply is in Slack (see
`TurnRunner`). One model request at most is in flight per channel, so per conversation.

With several replicas on one database, a worker first claims the channel's lease (`ChannelLeases`):
the replica that holds it works the channel, the others leave it alone (they were told of the new
message too, and the holder was). Leases are renewed while the channel is worked; a replica that
cannot renew in time stops its channels' work before the lease can expire, so another replica that
takes a channel over never runs a turn beside it. A poll now and then is the safety net for a
notification missed and for the channels of a replica that died.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot import metrics
from bot.outbound.pacing import ChannelPacers
from bot.store import DATABASE_ERRORS, Inbox
from bot.store.leases import ChannelLeases, Claim
from bot.work.retry import Next
from bot.work.runner import TurnRunner

log = logging.getLogger(__name__)

CRASH_BACKOFF = 5.0  # seconds before a channel whose step raised an unexpected error is tried again
POLL_INTERVAL = 5.0  # seconds between looks for channels nobody works (several replicas only)
SAFETY_MARGIN = 0.7  # work stops once this share of a lease's time passed without a renewal


class ChannelWorkers:
    """Starts a worker for a channel when it has work; the worker ends when the channel is idle.
    With `leases` (several replicas), only for channels this replica holds."""

    def __init__(self, *, inbox: Inbox, runner: TurnRunner, leases: ChannelLeases | None = None,
                 hand_over: Callable[[str], Awaitable[None]] | None = None,
                 post_budget: ChannelPacers | None = None, poll_interval: float = POLL_INTERVAL) -> None:
        self._inbox = inbox
        self._runner = runner
        self._leases = leases
        self._hand_over = hand_over  # tells the other replicas a channel with work is free
        self._post_budget = post_budget  # Slack's per-channel posting limit, handed on with the channel
        self._poll_interval = poll_interval
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._held: set[str] = set()
        self._stopping = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []

    @property
    def active_channels(self) -> int:
        return len(self._tasks)

    @property
    def leases_held(self) -> int:
        return len(self._held)

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
        """At start-up: restart every channel that has pending items or an undelivered reply (and, with
        several replicas, keep looking for channels nobody works, and renew this replica's leases)."""
        channels = await self._inbox.channels_with_pending()
        for channel in channels:
            self.notify(channel)
        if self._leases is not None and not self._background:
            self._background = [asyncio.create_task(self._poll(), name="channel-poll"),
                                asyncio.create_task(self._renew(self._leases), name="lease-renewal")]
        return len(channels)

    async def stop(self, grace: float) -> None:
        """Take no new work; let running turns finish for up to `grace` seconds, then cancel them.
        Whatever is not finished stays in the store for the next start — or, with several replicas,
        for another replica: the leases are given back at once."""
        self._stopping.set()
        tasks = list(self._tasks.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._leases is not None:
            left, self._held = set(self._held), set()
            for channel in sorted(left):
                await self._leases.release(channel, self._posts_left(channel))
            await self._leases.release_all()
            waiting = set(await self._inbox.channels_with_pending()) & (left | set(self._tasks))
            for channel in sorted(waiting):  # the others take these over now, not at their next poll
                if self._hand_over is not None:
                    await self._hand_over(channel)

    async def _work(self, channel: str) -> None:
        while not self._stopping.is_set():
            if self._leases is not None and not await self._claim(self._leases, channel):
                break  # another replica works it (and was told of the new work as well)
            self._dirty.discard(channel)
            idle = await self._steps(channel)
            if self._leases is not None and channel in self._held:
                self._held.discard(channel)
                await self._leases.release(channel, self._posts_left(channel))
            if idle and channel not in self._dirty:
                break
        # Leave the register now, not in a later done-callback: a notify() from here on starts a new
        # worker instead of counting on this one. (Nothing awaits between the last look and this.)
        self._forget(channel, asyncio.current_task())  # type: ignore[arg-type]

    async def _claim(self, leases: ChannelLeases, channel: str) -> bool:
        try:
            granted = await leases.claim(channel)
        except Exception as exc:  # the database is unreachable: the poll tries again
            log.warning("channel %s: could not claim its lease (%s); trying again soon", channel, exc)
            return False
        if granted.claim is Claim.REFUSED:
            return False
        self._held.add(channel)
        if granted.claim is Claim.TAKEN:  # another replica worked it since: what we remember of it is stale
            self._runner.forget(channel)
            if self._post_budget is not None and granted.post_tokens is not None and granted.idle_for is not None:
                self._post_budget(channel).resume_from(granted.post_tokens, granted.idle_for)
        return True

    async def _steps(self, channel: str) -> bool:
        """Steps until the channel waits (True: idle) or a stop."""
        while not self._stopping.is_set():
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
                return True
        return False

    def _posts_left(self, channel: str) -> float | None:
        return self._post_budget(channel).tokens if self._post_budget is not None else None

    async def _poll(self) -> None:
        """The safety net: channels with work that no live replica works (a lost notification, a
        replica that died with its leases) are claimed here within a poll and a lease's time."""
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                channels = await self._inbox.channels_with_pending()
            except Exception as exc:
                log.warning("could not look for channels with work (%s); trying again", exc)
                continue
            for channel in channels:
                if channel not in self._tasks:
                    self.notify(channel)

    async def _renew(self, leases: ChannelLeases) -> None:
        """Renew the leases of the channels being worked, a few times per lease; a channel whose lease
        is lost, or every channel when renewals keep failing, stops its work before the lease expires."""
        last_renewed = time.monotonic()
        while True:
            await asyncio.sleep(leases.ttl / 4)
            held = sorted(self._held)
            try:
                kept = await leases.renew(held)
                last_renewed = time.monotonic()
            except Exception as exc:
                log.warning("could not renew this replica's channel leases (%s)", exc)
                if time.monotonic() - last_renewed < leases.ttl * SAFETY_MARGIN:
                    continue
                kept = set()
            for channel in set(held) - kept:
                self._lost(channel)
            metrics.LEASES_HELD.set(len(self._held))

    def _lost(self, channel: str) -> None:
        """The channel's lease is gone (or about to be): stop working it; its state is in the journal."""
        self._held.discard(channel)
        task = self._tasks.get(channel)
        if task is not None and not task.done():
            log.warning("channel %s: its lease was lost; another replica carries on with its work", channel)
            task.cancel()

    async def _sleep(self, seconds: float) -> None:
        """Wait before trying again, but not past a shutdown."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass
