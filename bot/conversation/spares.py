"""Conversations made ahead, so that a channel's first message does not wait for one to be created.

Where conversations live at the model service (the Responses backend), creating one is a round trip that
a new channel's first message — and the first after a /reset — would otherwise wait for: as much of the
bridge's own work as the turn's whole request (bench/README.md, "A channel's first message"), and a
network round trip to the service. A few are made ahead, empty, and kept in the store (shared by
replicas, kept over restarts); such a message takes the oldest in one database transaction. The pool is
topped up, and the conversations taken labelled with their channel (their metadata, as one created for a
channel has it), after a turn has been delivered — when the bridge has nothing more urgent to do — and
at start; what fails then is tried again after the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from bot.backends.base import BackendError, FailureKind, MakesSpares

log = logging.getLogger(__name__)

SPARE_CONVERSATIONS = 3  # kept ready; more new channels at once than that have theirs created, as before


class SpareStore(Protocol):
    """Where the spares are kept (the store's `ConversationMap`)."""

    async def add_spare(self, backend: str, conversation_id: str) -> None: ...

    async def spare_count(self, backend: str) -> int: ...

    async def take_spare(self, channel: str, backend: str) -> str | None: ...


class SpareConversations:
    """A few empty conversations ready for channels still to come."""

    def __init__(self, store: SpareStore, backend: MakesSpares, *, size: int = SPARE_CONVERSATIONS) -> None:
        self._store = store
        self._backend = backend
        self._size = size
        self._to_label: dict[str, str] = {}  # conversation id → the channel that took it
        self._wanted = True  # the pool may be short: look at the next quiet moment
        self._task: asyncio.Task[None] | None = None

    async def take(self, channel: str) -> str | None:
        """The channel's conversation, a spare if it had none (see `ConversationMap.take_spare`); None
        when no spare is left."""
        self._wanted = True
        taken = await self._store.take_spare(channel, self._backend.name)
        if taken is not None:
            self._to_label[taken] = channel  # (one it had already is labelled so: harmless)
        return taken

    def top_up(self) -> None:
        """A quiet moment: label the conversations taken and fill the pool, in the background."""
        if self._wanted and (self._task is None or self._task.done()):
            self._wanted = False
            self._task = asyncio.create_task(self._top_up(), name="spare-conversations")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _top_up(self) -> None:
        try:
            await self._label()
            for _ in range(self._size - await self._store.spare_count(self._backend.name)):
                await self._store.add_spare(self._backend.name, await self._backend.create_spare())
        except Exception as exc:  # noqa: BLE001 - a channel without a spare has its conversation created
            self._wanted = True
            log.info("no spare conversation made now (%s); trying again after the next turn", exc)

    async def _label(self) -> None:
        while self._to_label:
            conversation_id, channel = next(iter(self._to_label.items()))
            try:
                await self._backend.label_conversation(conversation_id, channel)
            except BackendError as error:
                if error.kind is not FailureKind.REQUEST:
                    raise  # (tried again later)
                log.info("conversation %s of channel %s not labelled (%s)", conversation_id, channel, error)
            del self._to_label[conversation_id]
