"""Shared budgets for Slack's rate-limited methods.

Slack limits `chat.update` to about 50 calls a minute per workspace (Tier 3), for all channels
together; `chat.appendStream` (Tier 4) and `chat.startStream` (Tier 2) likewise; `chat.postMessage`
to about one message a second per channel. A `Pacer` is a token bucket that every live reply of the
process draws from. Waiters are served by priority (a reply's final text before its first text before
progress), then first come, first served — so replies streaming at once share the budget fairly, and
when it runs short, progress updates get sparser while final texts still go out first. Each reply still
to write its final text holds one call in reserve (`hold` / `release`): progress is written only from
what the bucket has beyond those, so the finals find their calls there instead of queueing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from enum import IntEnum

HANDOVER_MARGIN = 0.3  # calls held back when a budget is handed on between processes


class Priority(IntEnum):
    FINAL = 0  # the text a message keeps: always written
    FIRST = 1  # the first text of a reply: what makes it visible
    PROGRESS = 2  # a reply growing: may be skipped when the budget is short


class Pacer:
    """A token bucket: `burst` calls at once, then `per_minute` a minute; waiters by priority."""

    def __init__(self, *, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("a pacer needs a positive rate and a burst of at least one call")
        self._rate = self._full_rate = per_minute / 60.0
        self._capacity = self._full_capacity = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()
        self._paused_until = 0.0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._held = 0  # calls kept for final writes to come: progress may not take them

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, future in self._waiters if not future.done())

    def try_acquire(self) -> bool:
        """Take a call's turn only if it is free right now (nobody waiting, a token in the bucket)."""
        self._refill()
        if self._waiters or self._tokens < 1 or self._clock() < self._paused_until:
            return False
        self._tokens -= 1
        return True

    def hold(self) -> None:
        """A reply that will need a final write started: keep a call for it (from what progress may take)."""
        self._held += 1

    def release(self) -> None:
        """That reply's final write is done (or it ended otherwise): progress may have the call again."""
        self._held = max(0, self._held - 1)
        self._schedule(reschedule=True)

    def _needed(self, priority: int) -> float:
        """Tokens the bucket must hold for a call of `priority`: progress leaves the held calls alone (as
        many as the bucket can hold but one, so progress is never shut out for good)."""
        return 1 + min(self._held, self._capacity - 1) if priority >= Priority.PROGRESS else 1

    async def acquire(self, priority: Priority = Priority.PROGRESS, *, unless: asyncio.Event | None = None) -> bool:
        """Wait for a call's turn, then take it (True). With `unless`: give up waiting, without taking a
        turn, as soon as that event is set (False) — a progress write made pointless by the final one."""
        self._refill()
        if not self._waiters and self._tokens >= self._needed(priority) and self._clock() >= self._paused_until:
            self._tokens -= 1
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._order), future))
        self._schedule()
        try:
            if unless is None:
                await future  # cancelled waiters are skipped when their turn comes
                return True
            given_up = asyncio.ensure_future(unless.wait())
            try:
                await asyncio.wait({future, given_up}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                given_up.cancel()
        except asyncio.CancelledError:
            self._give_back(future)  # the caller is gone: its turn, granted or not, goes to the next one
            raise
        if future.done() and not future.cancelled():
            return True
        future.cancel()
        return False

    def _give_back(self, future: asyncio.Future[None]) -> None:
        """A waiter was cancelled: if its turn had been granted already, the token returns to the bucket."""
        if future.done() and not future.cancelled():
            self._refill()
            self._tokens = min(self._capacity, self._tokens + 1)
            self._schedule(reschedule=True)
        else:
            future.cancel()

    def put_back(self) -> None:
        """A turn taken with `try_acquire` and not used after all (no call was made) goes back."""
        self._refill()
        self._tokens = min(self._capacity, self._tokens + 1)
        self._schedule(reschedule=True)

    def delay(self, priority: Priority) -> float:
        """Seconds until a call of `priority` asked for now would get its turn, if no call of the same or a
        higher priority asks meanwhile (lower ones wait behind it)."""
        self._refill()
        ahead = sum(1 for level, _, future in self._waiters if level <= priority and not future.done())
        needed = ahead + 1 - self._tokens
        return max(needed / self._rate if needed > 0 else 0.0, self._paused_until - self._clock())

    @property
    def tokens(self) -> float:
        """Calls that could go out at once now."""
        self._refill()
        return self._tokens

    def resume_from(self, tokens: float, seconds_ago: float) -> None:
        """Go on from a budget another process left `seconds_ago` with `tokens` (refilled since), less a
        margin: its calls and ours reach Slack with different delays, and Slack counts arrivals."""
        self._refill()
        left = max(0.0, tokens - HANDOVER_MARGIN) + max(0.0, seconds_ago) * self._rate
        self._tokens = min(self._capacity, left)
        self._schedule(reschedule=True)

    def share(self, fraction: float) -> None:
        """Use only `fraction` of the budget (the rest belongs to the other replicas of the app)."""
        self._refill()
        self._rate = self._full_rate * fraction
        self._capacity = max(1.0, self._full_capacity * fraction)
        self._tokens = min(self._tokens, self._capacity)
        self._schedule(reschedule=True)

    def pause(self, seconds: float) -> None:
        """Slack answered 429 with Retry-After: nothing goes out until then, and the bucket is empty."""
        self._tokens = 0.0
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._schedule(reschedule=True)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def _schedule(self, reschedule: bool = False) -> None:
        if self._timer is not None:
            if not reschedule:
                return
            self._timer.cancel()
        self._timer = None
        if not self._waiters:
            return
        self._refill()
        now = self._clock()
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)
        if not self._waiters:
            return
        needed = self._needed(self._waiters[0][0])
        delay = max(0.0, (needed - self._tokens) / self._rate, self._paused_until - now)
        self._timer = asyncio.get_running_loop().call_later(delay, self._grant)

    def _grant(self) -> None:
        self._timer = None
        self._refill()
        if self._clock() >= self._paused_until:
            while self._waiters and self._tokens >= self._needed(self._waiters[0][0]):
                _, _, future = heapq.heappop(self._waiters)
                if future.done():
                    continue
                self._tokens -= 1
                future.set_result(None)
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)
        self._schedule()


class ChannelPacers:
    """One pacer per channel (for `chat.postMessage`'s per-channel limit), created on first use."""

    MAX_CHANNELS = 10_000

    def __init__(self, *, per_minute: float, burst: int) -> None:
        self._per_minute = per_minute
        self._burst = burst
        self._pacers: dict[str, Pacer] = {}

    def __call__(self, channel: str) -> Pacer:
        pacer = self._pacers.get(channel)
        if pacer is None:
            if len(self._pacers) >= self.MAX_CHANNELS:
                idle = [key for key, p in self._pacers.items() if not p.waiting]
                for key in idle[: len(idle) // 2 or 1]:
                    del self._pacers[key]
            pacer = self._pacers[channel] = Pacer(per_minute=self._per_minute, burst=self._burst)
        return pacer
