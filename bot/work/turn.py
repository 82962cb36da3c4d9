"""One channel's next piece of work: a turn (model request + live reply), a reset, or a recovery.

Every turn is journalled (see `Store`): `started` before the request is sent, `answered` once the
model's answer is in the conversation, `delivered` once it is in Slack. So after a crash, a cut
stream or a deadline, the bridge knows what happened — or, when the outcome is unknown (the request
was sent, the answer never arrived), it looks in the conversation: if the turn's messages are there
with an answer, that answer is delivered; if not, the turn is sent again. A user's message enters the
conversation exactly once either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.backends.base import (
    CONVERSATION_GONE,
    BackendError,
    FailureKind,
    TextDelta,
    ToolCall,
    ToolsRunning,
    TurnCompleted,
    TurnRequest,
)
from bot.conversation.service import ConversationService
from bot.conversation.tools import tool_status
from bot.messages import InboxItem, ItemKind
from bot.outbound import sentences
from bot.outbound.replies import Reply, ReplyFactory
from bot.outbound.slack_errors import SLACK_FAILURES, SLACK_PERMANENT, reason
from bot.store import Inbox, OpenTurn, TurnJournal, TurnState
from bot.work.retry import CONTINUE, WAIT, RetryPolicy, Step, retry_in

log = logging.getLogger(__name__)

MAX_ITEMS_PER_TURN = 50
MAX_DELIVERY_ATTEMPTS = 12  # tries to write an answer to Slack (about 20 minutes with backoff) before giving up


class TurnRunner:
    """Runs a channel's work one step at a time (the worker decides when to call `step` again)."""

    def __init__(self, *, inbox: Inbox, journal: TurnJournal, conversations: ConversationService, replies: ReplyFactory,
                 slack: AsyncWebClient, policy: RetryPolicy, reply_in_thread: bool,
                 max_concurrent_turns: int, respond_to: Callable[[str], str] = lambda _channel: "all") -> None:
        self._inbox = inbox
        self._journal = journal
        self._respond_to = respond_to
        self._conversations = conversations
        self._replies = replies
        self._slack = slack
        self._policy = policy
        self._reply_in_thread = reply_in_thread
        self._model_slots = asyncio.Semaphore(max_concurrent_turns)
        self._solo: set[str] = set()  # channels whose next turn takes one message (hunting a poison one)
        self._reported: dict[str, str] = {}  # channel → the account failure already told to it
        self._undelivered_tries: dict[str, int] = {}  # channel → failed attempts to write its last reply
        self._settled: set[str] = set()  # channels whose last turn finished here (no unfinished turn left)
        self._lookups_failed: dict[str, int] = {}  # channel → failed looks for an unfinished turn's answer

    async def step(self, channel: str) -> Step:
        # An unfinished turn exists only after a failure or a restart: skip the lookup when we know.
        open_turn = None if channel in self._settled else await self._journal.open_turn(channel)
        self._settled.discard(channel)
        if open_turn is not None and open_turn.state is TurnState.ANSWERED:
            return await self._deliver(open_turn)
        if open_turn is not None and open_turn.state is TurnState.STARTED:
            outcome = await self._resolve(open_turn)
            if outcome is not None:
                return outcome
            # It never completed: send exactly its messages again (newer ones wait for the next turn),
            # so that a request of ours still running somewhere cannot make the lookup miss.
            own = await self._journal.turn_items(open_turn.id)
            if own:
                return await (self._listen(channel, own, open_turn) if open_turn.silent
                              else self._turn(channel, own, open_turn))
        items = await self._inbox.pending(channel, limit=MAX_ITEMS_PER_TURN)
        if not items:
            if open_turn is not None:
                await self._discard(open_turn)
            return WAIT
        if items[0].kind is ItemKind.RESET:
            return await self._reset(items[0])
        batch = next_batch(items, solo=channel in self._solo)
        if not self._answers(channel, batch):
            return await self._listen(channel, batch, open_turn)
        return await self._turn(channel, batch, open_turn)

    def _answers(self, channel: str, batch: Sequence[InboxItem]) -> bool:
        """In a mention-only channel, only a mention (or a direct message) asks for an answer."""
        if self._respond_to(channel) != "mentions" or channel.startswith("D"):
            return True
        return any(item.mentions_bot for item in batch)

    async def _listen(self, channel: str, batch: Sequence[InboxItem], earlier: OpenTurn | None) -> Step:
        """Messages that enter the conversation as context, without an answer."""
        if earlier is not None:
            await self._discard(earlier)
        try:
            request = await self._conversations.build_turn(channel, batch)
        except BackendError as error:
            return await self._failed(None, batch, None, error, silent=True)
        turn_id = await self._journal.start_turn(channel, [i.id for i in batch], thread_ts=None, silent=True,
                                               conversation_id=request.conversation_id,
                                               input_texts=request.messages)
        try:
            last_item = await self._conversations.add_context(request)
        except BackendError as error:
            return await self._failed(turn_id, batch, None, error, silent=True)
        await self._journal.answer_turn(turn_id, "", None, backend=self._conversations.backend.name,
                                      last_item_id=last_item)
        await self._journal.finish_turn(turn_id)
        self._settled.add(channel)
        log.info("context channel=%s items=%d", channel, len(batch))
        return CONTINUE

    # --- a turn ------------------------------------------------------------------------------------

    async def _turn(self, channel: str, batch: Sequence[InboxItem], earlier: OpenTurn | None,
                    continue_with: Sequence[ToolCall] = ()) -> Step:
        started = time.monotonic()
        thread_ts = batch[0].thread_ts or (batch[0].ts if self._reply_in_thread else None)
        reuse = earlier if earlier is not None and earlier.thread_ts == thread_ts else None
        if earlier is not None and reuse is None:
            await self._discard(earlier)
        try:
            request = await (self._conversations.build_continuation(channel, batch, continue_with) if continue_with
                             else self._conversations.build_turn(channel, batch))
        except BackendError as error:  # the conversation could not be created: nothing was sent
            return await self._failed(None, batch, None, error)
        turn_id = await self._journal.start_turn(
            channel, [i.id for i in batch], thread_ts=thread_ts, conversation_id=request.conversation_id,
            input_texts=reuse.input_texts if continue_with and reuse else request.messages,
            messages=reuse.messages if reuse else (), turn_id=reuse.id if reuse else None)

        async def remember(ts: str) -> None:
            await self._journal.add_turn_message(turn_id, ts)

        reply = self._replies.create(channel=channel, thread_ts=thread_ts, recipient=batch[-1].user,
                                     messages=reuse.messages if reuse else (), on_post=remember)
        timing = _Timing(started)
        try:
            async with self._model_slots:
                timing.sent = time.monotonic()
                reply.start()
                completed = await self._stream(request, reply, timing)
        except BackendError as error:
            return await self._failed(turn_id, batch, reply, error)
        # The answer goes to Slack while it is journalled: if we crash in between, the turn is still
        # `started`, and the answer is found in the conversation and written into the same message.
        writing = asyncio.ensure_future(reply.finish(completed.text))
        await self._journal.answer_turn(turn_id, completed.text, completed.response_id,
                                      backend=self._conversations.backend.name, last_item_id=completed.last_item_id)
        self._solo.discard(channel)
        self._reported.pop(channel, None)
        step = await self._finish(reply, turn_id, completed.text, writing)
        log.info("turn channel=%s items=%d outcome=%s response_id=%s prepare_ms=%.0f first_token_ms=%s "
                 "total_ms=%.0f input_tokens=%s output_tokens=%s", channel, len(batch),
                 "answered" if step is CONTINUE else "undelivered", completed.response_id, timing.prepare_ms,
                 timing.first_token_ms, timing.total_ms, completed.input_tokens, completed.output_tokens)
        return step

    async def _stream(self, request: TurnRequest, reply: Reply, timing: _Timing) -> TurnCompleted:
        """The model turn, its text fed to the live reply as it arrives; abandoned past the deadline."""
        completed: TurnCompleted | None = None
        try:
            async with asyncio.timeout(self._policy.turn_timeout), \
                    contextlib.aclosing(self._conversations.stream(request)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        timing.first_token = timing.first_token or time.monotonic()
                        reply.feed(event.text)
                    elif isinstance(event, ToolsRunning):
                        reply.status(tool_status(event.names))
                    elif isinstance(event, TurnCompleted):
                        completed = event
        except TimeoutError:
            raise BackendError(f"the model did not finish within {self._policy.turn_timeout:.0f} seconds",
                               kind=FailureKind.TRANSIENT, code="turn_timeout", outcome_unknown=True) from None
        if completed is None:  # a backend must end with TurnCompleted or raise
            raise BackendError("the model's answer ended early", kind=FailureKind.TRANSIENT,
                               code="stream_cut", outcome_unknown=True)
        return completed

    async def _failed(self, turn_id: int | None, batch: Sequence[InboxItem], reply: Reply | None,
                      error: BackendError, *, silent: bool = False) -> Step:
        channel = batch[0].channel
        attempt = max(item.attempts for item in batch) + 1
        if turn_id is None:  # failed before the turn was journalled: count the attempt all the same
            await self._inbox.record_attempt([item.id for item in batch])
        log.warning("turn channel=%s items=%d outcome=failed kind=%s attempt=%d status=%s code=%s request_id=%s",
                    channel, len(batch), error.kind, attempt, error.status, error.code, error.request_id)
        if turn_id is not None and not error.outcome_unknown:
            # Not in the conversation. The next attempt rewrites this one's messages — except after an
            # account failure, whose notice stays for people to read.
            await (self._journal.abandon_turn(turn_id) if error.kind is FailureKind.ACCOUNT
                   else self._journal.retry_turn(turn_id))
        if error.code == CONVERSATION_GONE and attempt <= 2:  # (a conversation that keeps vanishing: retry)
            await self._conversations.reset(channel)
            await self._quiet(reply, turn_id)
            return CONTINUE
        if silent:
            return await self._failed_quietly(batch, error, attempt)
        if error.kind is FailureKind.TRANSIENT:
            return await self._transient(turn_id, batch, reply, error, attempt)
        if error.kind is FailureKind.REQUEST:
            if len(batch) > 1:  # which message is refused? one at a time until it is found
                self._solo.add(channel)
                await self._quiet(reply, turn_id)
                return CONTINUE
            self._solo.discard(channel)
            return await self._skip(batch, reply, turn_id, sentences.refused([batch[0].user], error.message))
        if self._reported.get(channel) == (error.code or error.message):
            await self._quiet(reply, turn_id)  # already told; the messages wait for the next try
        else:
            self._reported[channel] = error.code or error.message
            await self._tell(reply, channel, sentences.model_failed(error.message))
        return WAIT

    async def _failed_quietly(self, batch: Sequence[InboxItem], error: BackendError, attempt: int) -> Step:
        """Messages nobody asked about (context in a mention-only channel): retry, or give up, quietly."""
        if error.kind is FailureKind.ACCOUNT:
            return WAIT
        if error.kind is FailureKind.REQUEST or self._policy.exhausted(attempt):
            await self._inbox.mark_skipped([item.id for item in batch])
            log.warning("channel %s: %d context message(s) skipped (%s)", batch[0].channel, len(batch), error.message)
            return CONTINUE
        return retry_in(self._policy.delay(attempt, error.retry_after))

    async def _transient(self, turn_id: int | None, batch: Sequence[InboxItem], reply: Reply | None,
                         error: BackendError, attempt: int) -> Step:
        """Try again later; messages that have had every attempt are reported and skipped."""
        # A busy conversation is not the messages' fault: wait for it however long it takes.
        patient = error.code == "conversation_locked"
        exhausted = [item for item in batch if not patient and self._policy.exhausted(item.attempts + 1)]
        if exhausted:
            return await self._skip(exhausted, reply, turn_id,
                                    sentences.gave_up([i.user for i in exhausted], error.message, attempt))
        if attempt == 1:
            await self._tell(reply, batch[0].channel, sentences.model_trouble(error.message))
        else:
            await self._quiet(reply, turn_id)
        return retry_in(self._policy.delay(attempt, error.retry_after))

    async def _skip(self, items: Sequence[InboxItem], reply: Reply | None, turn_id: int | None, note: str) -> Step:
        """Give up on these messages: say so (mentioning whose they were) and move on."""
        await self._inbox.mark_skipped([item.id for item in items])
        await self._quiet(reply, turn_id)
        await self._post_text(items[0].channel, note, thread_ts=items[0].thread_ts)
        log.warning("channel %s: %d message(s) skipped", items[0].channel, len(items))
        return CONTINUE

    # --- delivery, recovery, resets ----------------------------------------------------------------

    async def _finish(self, reply: Reply, turn_id: int, text: str,
                      writing: asyncio.Future[list[str]] | None = None) -> Step:
        try:
            await (writing if writing is not None else reply.finish(text))
        except SLACK_FAILURES as exc:
            self._undelivered_tries[reply.channel] = self._undelivered_tries.get(reply.channel, 0) + 1
            return await self._undelivered(turn_id, reply.channel, exc,
                                           attempt=self._undelivered_tries[reply.channel])
        self._undelivered_tries.pop(reply.channel, None)
        await self._journal.finish_turn(turn_id)
        self._settled.add(reply.channel)
        return CONTINUE

    async def _deliver(self, turn: OpenTurn) -> Step:
        """Write a reply the model gave before (Slack failed, or the process stopped, in between)."""
        async def remember(ts: str) -> None:
            await self._journal.add_turn_message(turn.id, ts)

        reply = self._replies.create(channel=turn.channel, thread_ts=turn.thread_ts, recipient=None,
                                     messages=turn.messages, on_post=remember, stream=False)
        return await self._finish(reply, turn.id, turn.reply_text or "")

    async def _undelivered(self, turn_id: int, channel: str, exc: BaseException, *, attempt: int) -> Step:
        error = reason(exc)
        if isinstance(exc, SlackApiError) and exc.response.get("error") in SLACK_PERMANENT:
            await self._journal.skip_turn(turn_id)
            log.error("channel %s: cannot write replies there (%s); the turn's messages are skipped. Invite the "
                      "bot to the channel, or remove the channel from BRIDGE_CHANNELS.", channel, error)
            return CONTINUE
        if attempt >= MAX_DELIVERY_ATTEMPTS:
            await self._journal.skip_turn(turn_id)
            self._undelivered_tries.pop(channel, None)
            log.error("channel %s: gave up writing the reply of turn %d after %d attempts (%s)", channel, turn_id,
                      attempt, error)
            return CONTINUE
        delay = self._policy.delay(attempt)
        log.warning("channel %s: the reply of turn %d could not be written (%s); retrying in %.0fs",
                    channel, turn_id, error, delay)
        return retry_in(delay)

    async def _resolve(self, turn: OpenTurn) -> Step | None:
        """A turn whose outcome is unknown: deliver its answer if the conversation has one."""
        try:
            found = await self._conversations.find_reply(turn.channel, turn.conversation_id, turn.input_texts)
        except BackendError as error:
            tries = self._lookups_failed[turn.channel] = self._lookups_failed.get(turn.channel, 0) + 1
            log.warning("channel %s: cannot check turn %d yet (%s)", turn.channel, turn.id, error.message)
            if error.kind is FailureKind.ACCOUNT:
                return WAIT  # nothing works until an admin acts; the next message tries again
            return retry_in(self._policy.delay(tries, error.retry_after))
        self._lookups_failed.pop(turn.channel, None)
        if found is None:
            # It never completed: send it again. The turn stays `started` until then, so a crash in
            # between brings us back here rather than to a blind resend.
            return None
        if found.pending_calls:  # interrupted between a tool call and its result: carry on from there
            items = await self._journal.turn_items(turn.id)
            if items:
                log.info("channel %s: turn %d continues with its %d unanswered tool call(s)", turn.channel,
                         turn.id, len(found.pending_calls))
                return await self._turn(turn.channel, items, turn, continue_with=found.pending_calls)
        log.info("channel %s: turn %d had completed before the interruption", turn.channel, turn.id)
        await self._journal.answer_turn(turn.id, found.text, None, backend=self._conversations.backend.name,
                                      last_item_id=found.last_item_id)
        if turn.silent:
            await self._journal.finish_turn(turn.id)
            return CONTINUE
        return await self._deliver(await self._journal.open_turn(turn.channel) or turn)

    async def _reset(self, item: InboxItem) -> Step:
        await self._conversations.reset(item.channel)
        await self._post_text(item.channel, sentences.reset_announcement(item.user))
        await self._inbox.mark_done([item.id])
        log.info("reset channel=%s", item.channel)
        return CONTINUE

    async def _discard(self, turn: OpenTurn) -> None:
        """An earlier attempt's messages that the next reply cannot reuse (another thread): remove them."""
        await self._journal.abandon_turn(turn.id)
        for ts in turn.messages:
            await self._delete(turn.channel, ts)

    async def _tell(self, reply: Reply | None, channel: str, text: str) -> None:
        if reply is None:
            await self._post_text(channel, text)
            return
        try:
            await reply.fail(text)
        except SLACK_FAILURES as exc:
            log.warning("channel %s: could not tell the channel about a failure (%s)", reply.channel, reason(exc))

    async def _quiet(self, reply: Reply | None, turn_id: int | None) -> None:
        """End an attempt without a word: remove what its reply showed."""
        if reply is None:
            return
        for ts in await reply.cancel():
            await self._delete(reply.channel, ts)
        if turn_id is not None:
            await self._journal.set_turn_messages(turn_id, ())

    async def _delete(self, channel: str, ts: str) -> None:
        try:
            await self._slack.chat_delete(channel=channel, ts=ts)
        except SLACK_FAILURES as exc:
            log.info("channel %s: could not delete message %s (%s)", channel, ts, reason(exc))

    async def _post_text(self, channel: str, text: str, thread_ts: str | None = None) -> None:
        try:
            kwargs = {"thread_ts": thread_ts} if thread_ts else {}
            await self._slack.chat_postMessage(channel=channel, text=text, **kwargs)
        except SLACK_FAILURES as exc:
            log.warning("channel %s: could not post a notice (%s)", channel, reason(exc))


def next_batch(items: Sequence[InboxItem], *, solo: bool = False) -> list[InboxItem]:
    """The leading run of messages in one place (the channel, or one thread), up to the next reset."""
    batch: list[InboxItem] = []
    for item in items:
        if item.kind is not ItemKind.MESSAGE or item.thread_ts != items[0].thread_ts:
            break
        batch.append(item)
        if solo:
            break
    return batch


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
