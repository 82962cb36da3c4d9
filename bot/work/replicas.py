"""This replica among the others on one database: a heartbeat, and the share of Slack's workspace-wide
budgets that comes with the number of replicas alive (rebalanced when one joins, stops or dies)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.outbound.writer import SlackWriter
from bot.store.leases import Replicas

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0  # seconds between two heartbeats
ALIVE_WITHIN = 3 * HEARTBEAT_INTERVAL  # a replica not heard of for this long counts as gone


class ReplicaPresence:
    """Beats every few seconds; divides the writer's budgets by the replicas alive."""

    def __init__(self, replicas: Replicas, writer: SlackWriter, *, interval: float = HEARTBEAT_INTERVAL) -> None:
        self._replicas = replicas
        self._writer = writer
        self._interval = interval
        self.alive = 1
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The first beat before any work (so a new replica never starts on the whole budget), then a loop."""
        await self._beat()
        self._task = asyncio.create_task(self._loop(), name="replica-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._replicas.leave()
        except Exception as exc:  # the others see this replica's heartbeat age instead
            log.warning("could not say goodbye to the other replicas (%s)", exc)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._beat()
            except Exception as exc:  # keep the current share; the leases decide about the work
                log.warning("replica heartbeat failed (%s)", exc)

    async def _beat(self) -> None:
        alive = await self._replicas.beat(ALIVE_WITHIN)
        if alive != self.alive:
            log.info("%d replica(s) alive: this one uses 1/%d of Slack's workspace-wide budgets", alive, alive)
        self.alive = alive
        self._writer.share(alive)
