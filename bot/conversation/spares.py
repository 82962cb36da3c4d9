"""Conversations made ahead, so that a channel's first message does not wait for one to be created.

Where conversations live at the model service (the Responses backend), creating one is a round trip that
a new channel's first message — and the first after a /reset — would otherwise wait for: as much of the
bridge's own work as the turn's whole request (bench/README.md, "A channel's first message"), and a
network round trip to the service. A few are made ahead, empty, and kept in the store (shared by
replicas, kept over restarts); such a message takes the oldest in one database transaction. The pool is
topped up, and the conversations taken labelled with their channel (their metadata, as one created for a
channel has it; the store remembers which are still to label), after a turn has been delivered — when
the bridge has nothing more urgent to do — at start, and once a minute after a turn (another replica may
have taken some); what fails is tried again half a minute later. A pool belongs to one server and account
(a new API key on the same database starts another), and is dropped if the service loses a conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from bot.backends.base import BackendError, FailureKind, MakesSpares

log = logging.getLogger(__name__)

SPARE_CONVERSATIONS = 3  # kept ready; more new channels at once than that have theirs created, as before
LOOK_EVERY = 60.0  # seconds between looks at a pool this process took nothing from (other replicas may have)
RETRY_AFTER = 30.0  # seconds before a top-up that failed is tried again


class SpareStore(Protocol):
    """Where the spares are kept (the store's `ConversationMap`)."""

    async def add_spare(self, pool: str, conversation_id: str) -> None: ...

    async def spare_count(self, pool: str) -> int: ...

    async def take_spare(self, channel: str, backend: str, pool: str) -> str | None: ...

    async def taken_spares(self, pool: str) -> list[tuple[str, str]]: ...

    async def labelled(self, conversation_id: str) -> None: ...

    async def drop_spares(self, pool: str) -> None: ...


class SpareConversations:
    """A few empty conversations ready for channels still to come."""

    def __init__(self, store: SpareStore, backend: MakesSpares, *, size: int = SPARE_CONVERSATIONS,
                 retry_after: float = RETRY_AFTER) -> None:
        self._store = store
        self._backend = backend
        self._size = size
        self._retry_after = retry_after
        self._wanted = True  # the pool may be short, or hold spares to label: top up at the next quiet moment
        self._not_before = 0.0  # (monotonic) after a failure
        self._next_look = 0.0  # (monotonic) when to look anyway
        self._task: asyncio.Task[None] | None = None

    async def take(self, channel: str) -> str | None:
        """The channel's conversation, a spare if it had none (see `ConversationMap.take_spare`); None
        when no spare is left."""
        self._wanted = True
        return await self._store.take_spare(channel, self._backend.name, self._backend.spare_pool)

    async def discard(self) -> None:
        """The service lost a conversation of ours: the spares may be lost too; new ones are made."""
        self._wanted = True
        await self._store.drop_spares(self._backend.spare_pool)

    def top_up(self) -> None:
        """A quiet moment: fill the pool and label the spares taken, in the background."""
        now = time.monotonic()
        if (self._task is not None and not self._task.done()) or now < self._not_before \
                or not (self._wanted or now >= self._next_look):
            return
        self._wanted, self._next_look = False, now + LOOK_EVERY
        self._task = asyncio.create_task(self._top_up(), name="spare-conversations")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _top_up(self) -> None:
        pool = self._backend.spare_pool
        try:
            for _ in range(self._size - await self._store.spare_count(pool)):
                await self._store.add_spare(pool, await self._backend.create_spare())
            for conversation_id, channel in await self._store.taken_spares(pool):
                await self._label(conversation_id, channel)
        except Exception as exc:  # noqa: BLE001 - a channel without a spare has its conversation created
            self._wanted, self._not_before = True, time.monotonic() + self._retry_after
            log.info("spare conversations: %s; trying again in %.0f s or later", exc, self._retry_after)

    async def _label(self, conversation_id: str, channel: str) -> None:
        try:
            await self._backend.label_conversation(conversation_id, channel)
        except BackendError as error:
            if error.kind is not FailureKind.REQUEST:
                raise  # (the service is down: tried again later)
            log.info("conversation %s of channel %s not labelled (%s)", conversation_id, channel, error)
        await self._store.labelled(conversation_id)
