"""Channel workers: each channel's items, one turn at a time, in Slack order.

A worker exists only while its channel has work. It takes every pending item of the channel at the
start of a turn (messages that arrived while the previous reply was written are answered together),
applies a reset exactly where it sits in the log, and marks items done only after their reply is in
Slack. One model request at most is in flight per channel, so per conversation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from slack_sdk.web.async_client import AsyncWebClient

from bot import notes
from bot.backends.base import BackendError, TextDelta, TurnCompleted, TurnRequest
from bot.conversation import ConversationService
from bot.items import InboxItem, ItemKind
from bot.reply import Reply, ReplyFactory
from bot.slack.errors import SLACK_FAILURES, reason
from bot.store import OpenTurn, Store

log = logging.getLogger(__name__)

MAX_CONCURRENT_TURNS = 64  # model requests in flight across all channels of this process
MAX_ITEMS_PER_TURN = 50


class ChannelWorkers:
    """Starts a worker for a channel when it has work; the worker ends when the channel is idle."""

    def __init__(self, *, store: Store, conversations: ConversationService, slack: AsyncWebClient,
                 replies: ReplyFactory, reply_in_thread: bool = False,
                 max_concurrent_turns: int = MAX_CONCURRENT_TURNS) -> None:
        self._store = store
        self._replies = replies
        self._reply_in_thread = reply_in_thread
        self._conversations = conversations
        self._slack = slack
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._turns = asyncio.Semaphore(max_concurrent_turns)
        self._stopping = False

    @property
    def active_channels(self) -> int:
        return len(self._tasks)

    def notify(self, channel: str) -> None:
        """The channel has new work: make sure a worker will see it."""
        if self._stopping:
            return
        self._dirty.add(channel)
        if channel not in self._tasks:
            task = asyncio.create_task(self._work(channel), name=f"channel-{channel}")
            self._tasks[channel] = task
            task.add_done_callback(lambda _t, c=channel: self._tasks.pop(c, None))

    async def resume(self) -> int:
        """At start-up: restart every channel that has pending items or an undelivered reply."""
        channels = await self._store.channels_with_pending()
        for channel in channels:
            self.notify(channel)
        return len(channels)

    async def stop(self, grace: float) -> None:
        """Take no new work; let running turns finish for up to `grace` seconds, then cancel them.
        Whatever is not finished stays in the store for the next start."""
        self._stopping = True
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _work(self, channel: str) -> None:
        try:
            while not self._stopping:
                self._dirty.discard(channel)
                progressed = await self._step(channel)
                if not progressed and channel not in self._dirty:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not kill the channel silently; the items stay pending
            log.exception("channel %s: worker failed; its items stay pending", channel)

    async def _step(self, channel: str) -> bool:
        """Do the channel's next piece of work; False when there is none or it cannot progress now."""
        open_turn = await self._store.open_turn(channel)
        if open_turn is not None and open_turn.state == "answered":
            return await self._deliver(open_turn)
        items = await self._store.pending(channel, limit=MAX_ITEMS_PER_TURN)
        if not items:
            return False
        if items[0].kind is ItemKind.RESET:
            return await self._reset(items[0])
        return await self._turn(channel, _next_batch(items), open_turn)

    async def _turn(self, channel: str, batch: Sequence[InboxItem], interrupted: OpenTurn | None) -> bool:
        started = time.monotonic()
        # In a thread when the user wrote in one; with BRIDGE_REPLY_IN=thread, always.
        thread_ts = batch[0].thread_ts or (batch[0].ts if self._reply_in_thread else None)
        # A turn a crash interrupted: reuse its message if it is in the same place.
        reuse = interrupted if interrupted is not None and interrupted.thread_ts == thread_ts else None
        if interrupted is not None and reuse is None:
            await self._discard(interrupted)
        reply = self._replies.create(channel=channel, thread_ts=thread_ts, recipient=batch[-1].user,
                                     message_ts=reuse.message_ts if reuse else None)
        turn_id = await self._store.start_turn(channel, [i.id for i in batch], thread_ts=thread_ts,
                                               message_ts=reply.message_ts, turn_id=reuse.id if reuse else None)
        async with self._turns:
            timing = _Timing(started)
            try:
                request = await self._conversations.build_turn(channel, batch)
                timing.sent = time.monotonic()
                reply.start()
                completed = await self._stream(request, reply, timing)
            except BackendError as error:
                await self._store.abandon_turn(turn_id)
                log.warning("turn channel=%s items=%d outcome=failed transient=%s status=%s code=%s "
                            "request_id=%s", channel, len(batch), error.transient, error.status, error.code,
                            error.request_id)
                await self._tell(reply, notes.model_failed(error))
                return False
        await self._store.answer_turn(turn_id, completed.text, completed.response_id)
        delivered = await self._finish(reply, turn_id, completed.text)
        log.info("turn channel=%s items=%d outcome=%s response_id=%s prepare_ms=%.0f first_token_ms=%s "
                 "total_ms=%.0f input_tokens=%s output_tokens=%s", channel, len(batch),
                 "answered" if delivered else "undelivered", completed.response_id, timing.prepare_ms,
                 timing.first_token_ms, timing.total_ms, completed.input_tokens, completed.output_tokens)
        return delivered

    async def _stream(self, request: TurnRequest, reply: Reply, timing: _Timing) -> TurnCompleted:
        """Run the model turn, feeding its text to the live reply as it arrives."""
        completed: TurnCompleted | None = None
        async for event in self._conversations.stream(request):
            if isinstance(event, TextDelta):
                timing.first_token = timing.first_token or time.monotonic()
                reply.feed(event.text)
            elif isinstance(event, TurnCompleted):
                completed = event
        if completed is None:  # a backend must end with TurnCompleted or raise
            raise BackendError("the model's answer ended without completing", transient=True)
        return completed

    async def _finish(self, reply: Reply, turn_id: int, text: str) -> bool:
        try:
            await reply.finish(text)
        except SLACK_FAILURES as exc:
            log.warning("channel %s: the reply of turn %d could not be written (%s); will retry",
                        reply.channel, turn_id, reason(exc))
            return False
        await self._store.finish_turn(turn_id)
        return True

    async def _deliver(self, turn: OpenTurn) -> bool:
        """Write a reply the model gave before (Slack failed, or the process stopped, in between)."""
        reply = self._replies.create(channel=turn.channel, thread_ts=turn.thread_ts, recipient=None,
                                     message_ts=turn.message_ts)
        return await self._finish(reply, turn.id, turn.reply_text or "")

    async def _discard(self, turn: OpenTurn) -> None:
        await self._store.abandon_turn(turn.id)
        if turn.message_ts:
            try:
                await self._slack.chat_delete(channel=turn.channel, ts=turn.message_ts)
            except SLACK_FAILURES as exc:
                log.info("channel %s: stale working indicator not deleted (%s)", turn.channel,
                         reason(exc))

    async def _reset(self, item: InboxItem) -> bool:
        await self._conversations.reset(item.channel)
        try:
            await self._slack.chat_postMessage(channel=item.channel, text=notes.reset_announcement(item.user))
        except SLACK_FAILURES as exc:
            log.warning("channel %s: reset done but not announced (%s)", item.channel, reason(exc))
        await self._store.mark_done([item.id])
        log.info("reset channel=%s", item.channel)
        return True

    async def _tell(self, reply: Reply, text: str) -> None:
        try:
            await reply.fail(text)
        except SLACK_FAILURES as exc:
            log.warning("channel %s: could not tell the channel about a failure (%s)",
                        reply.channel, reason(exc))


class _Timing:
    """When a turn started, sent its request and got its first token (for the turn's log line)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.sent = started
        self.first_token: float | None = None

    @property
    def prepare_ms(self) -> float:
        return (self.sent - self.started) * 1000

    @property
    def first_token_ms(self) -> str:
        return f"{(self.first_token - self.sent) * 1000:.0f}" if self.first_token else "-"

    @property
    def total_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000


def _next_batch(items: Sequence[InboxItem]) -> list[InboxItem]:
    """The leading run of messages in one place (the channel, or one thread), up to the next reset."""
    batch: list[InboxItem] = []
    for item in items:
        if item.kind is not ItemKind.MESSAGE or item.thread_ts != items[0].thread_ts:
            break
        batch.append(item)
    return batch
