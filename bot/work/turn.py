"""One turn: the model request, its answer written live into Slack, each state journalled.

Every turn is journalled (see `TurnJournal`): `started` before the request is sent, `answered` once
the model's answer is in the conversation, `delivered` once it is in Slack. So after a crash, a cut
stream or a deadline, the bridge knows what happened — or, when the outcome is unknown, finds out
(see `recovery.py`). Messages nobody asked about enter the conversation the same way, as context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from slack_sdk.errors import SlackApiError

from bot import metrics
from bot.backends.base import (
    BackendError,
    FailureKind,
    TextDelta,
    TextDone,
    ToolCall,
    ToolsRunning,
    TurnCompleted,
    TurnRequest,
)
from bot.conversation.tools import tool_status
from bot.messages import InboxItem
from bot.outbound.replies import PostTag, Reply
from bot.outbound.slack_auth import AUTH_RETRY_DELAY
from bot.outbound.slack_errors import SLACK_FAILURES, reason, refused_token
from bot.work.decisions import Action, Undelivered, after_undelivered
from bot.work.effects import Effects
from bot.work.parts import Parts
from bot.work.retry import CONTINUE, Step, retry_in

log = logging.getLogger(__name__)

EARLY_WRITE_WAIT = 1.0  # seconds the rest of a stream waits for the answer, said final, to reach Slack


class Turns:
    """Runs turns (and context additions) and writes their replies."""

    def __init__(self, parts: Parts, effects: Effects, *, max_concurrent_turns: int) -> None:
        self._parts = parts
        self._effects = effects
        self._model_slots = asyncio.Semaphore(max_concurrent_turns)

    async def listen(self, action: Action) -> Step:
        """Messages that enter the conversation as context, without an answer."""
        parts, batch = self._parts, action.items
        channel = batch[0].channel
        if action.discard is not None:
            await self._effects.discard(action.discard)
        try:
            request = await parts.conversations.build_turn(channel, batch, attach=False)
        except BackendError as error:
            return await self._effects.failed(None, batch, None, error, silent=True)
        if not parts.auth.open:  # a lookup was refused: the speakers' names are not known now
            return retry_in(AUTH_RETRY_DELAY)
        turn_id = await parts.journal.start_turn(channel, [i.id for i in batch], thread_ts=None, silent=True,
                                                 conversation_id=request.conversation_id,
                                                 input_texts=request.messages)
        try:
            last_item = await parts.conversations.add_context(request)
        except BackendError as error:
            return await self._effects.failed(turn_id, batch, None, error, silent=True)
        await parts.journal.answer_turn(turn_id, "", None, backend=parts.conversations.backend.name,
                                        last_item_id=last_item)
        await parts.journal.finish_turn(turn_id)
        await parts.conversations.entered(channel, batch)
        parts.state(channel).settled = True
        parts.model_refusal = None
        metrics.TURNS.labels("context").inc()
        log.info("context channel=%s items=%d", channel, len(batch))
        return CONTINUE

    async def run(self, action: Action, continue_with: Sequence[ToolCall] = ()) -> Step:
        """A turn for `action.items` at `action.thread_ts`, rewriting `action.reuse`'s messages if given;
        `continue_with`: the tool calls an interrupted turn still owes results for."""
        parts, batch, reuse, thread_ts = self._parts, action.items, action.reuse, action.thread_ts
        channel = batch[0].channel
        timing = _Timing(time.monotonic())
        if not await parts.auth.usable() or not parts.auth.open:  # (also a continuation, from recovery)
            return retry_in(AUTH_RETRY_DELAY)  # Slack refuses the token: no tool or model call is paid for
        if action.discard is not None:
            await self._effects.discard(action.discard)
        try:
            request = await (parts.conversations.build_continuation(channel, batch, continue_with) if continue_with
                             else parts.conversations.build_turn(channel, batch))
        except BackendError as error:  # the conversation could not be created: nothing was sent
            return await self._effects.failed(None, batch, None, error)
        if not parts.auth.open:  # Slack refused the token while the turn was prepared: nothing is sent
            return retry_in(AUTH_RETRY_DELAY)
        turn_id = await parts.journal.start_turn(
            channel, [i.id for i in batch], thread_ts=thread_ts, conversation_id=request.conversation_id,
            input_texts=reuse.input_texts if continue_with and reuse else request.messages,
            messages=reuse.messages if reuse else (), turn_id=reuse.id if reuse else None)
        reply = self.reply(channel, turn_id, thread_ts, recipient=batch[-1].user,
                           messages=reuse.messages if reuse else (), conversation_id=request.conversation_id,
                           look_first=reuse is not None, since=batch[0].ts)
        try:
            async with self._model_slots:
                timing.sent = time.monotonic()
                _observe_arrivals(batch if not reuse else ())
                reply.start()
                completed = await self._stream(request, reply, timing)
        except BackendError as error:
            if timing.early is not None:  # (shown already; what the retry finds in the conversation replaces it)
                timing.early[1].add_done_callback(_quietly)
            return await self._effects.failed(turn_id, batch, reply, error)
        except BaseException:
            # Not a model failure (a store error, a bug, a shutdown): nobody will feed or finish this reply,
            # so its writer must not wait forever. What it posted is journalled: the next attempt rewrites it.
            await reply.cancel()
            raise
        parts.model_refusal = None
        # The answer goes to Slack while it is journalled: if we crash in between, the turn is still
        # `started`, and the answer is found in the conversation and written into the same message.
        writing = self._writing(reply, completed.text, timing, turn_id, thread_ts, request.conversation_id)
        await parts.journal.answer_turn(turn_id, completed.text, completed.response_id,
                                        backend=parts.conversations.backend.name, last_item_id=completed.last_item_id)
        if parts.budgets is not None:
            await parts.budgets.charge(channel, batch, completed.input_tokens, completed.output_tokens)
        state = parts.state(channel)
        state.solo, state.reported = False, None
        step = await self.finish(reply, turn_id, completed.text, writing, model_done=timing.done,
                                 thread_ts=thread_ts)
        metrics.TURNS.labels("answered" if step is CONTINUE else "undelivered").inc()
        log.info("turn channel=%s items=%d outcome=%s response_id=%s prepare_ms=%.0f first_token_ms=%s "
                 "total_ms=%.0f input_tokens=%s output_tokens=%s", channel, len(batch),
                 "answered" if step is CONTINUE else "undelivered", completed.response_id, timing.prepare_ms,
                 timing.first_token_ms, timing.total_ms, completed.input_tokens, completed.output_tokens)
        return step

    def reply(self, channel: str, turn_id: int, thread_ts: str | None, *, recipient: str | None,
              messages: Sequence[str], stream: bool = True, conversation_id: str | None = None,
              look_first: bool = False, since: str | None = None) -> Reply:
        """A reply for the turn whose every posted message is journalled as it is posted, and tagged with
        the turn. `look_first`: an earlier attempt may have posted messages whose answer was lost (or
        that a crash kept from the journal): find them in Slack (after `since`, the turn's first message)
        before posting anything."""
        async def remember(ts: str) -> None:
            await self._parts.journal.add_turn_message(turn_id, ts)

        async def replaced(old: Sequence[str], new: Sequence[str]) -> None:
            await self._parts.journal.replace_turn_messages(turn_id, old, new)

        tag = PostTag(turn_id, conversation_id, look_first=look_first, since=since)
        return self._parts.replies.create(channel=channel, thread_ts=thread_ts, recipient=recipient,
                                          messages=messages, on_post=remember, on_replace=replaced, stream=stream,
                                          tag=tag)

    def _writing(self, reply: Reply, text: str, timing: _Timing, turn_id: int, thread_ts: str | None,
                 conversation_id: str) -> asyncio.Future[list[str]]:
        """The reply being written with the turn's text: since the model said its text was final
        (TextDone), or from now. Should the completed text differ after all, it is written over it."""
        if timing.early is None:
            timing.done = time.monotonic()
            return asyncio.ensure_future(reply.finish(text))
        shown, writing = timing.early
        if shown == text:
            return writing

        async def correct() -> list[str]:
            log.warning("channel %s: the model's answer changed after it said it was final; rewriting it",
                        reply.channel)
            posted = await writing
            again = self.reply(reply.channel, turn_id, thread_ts, recipient=None, messages=posted, stream=False,
                               conversation_id=conversation_id)
            return await again.finish(text)

        return asyncio.ensure_future(correct())

    async def _stream(self, request: TurnRequest, reply: Reply, timing: _Timing) -> TurnCompleted:
        """The model turn, its text fed to the live reply as it arrives; abandoned past the deadline."""
        completed: TurnCompleted | None = None
        timeout = self._parts.policy.turn_timeout
        try:
            async with asyncio.timeout(timeout), \
                    contextlib.aclosing(self._parts.conversations.stream(request)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        timing.first_token = timing.first_token or time.monotonic()
                        reply.feed(event.text)
                    elif isinstance(event, TextDone) and timing.early is None:
                        timing.done = time.monotonic()  # the answer is complete: it goes to Slack now
                        writing = asyncio.ensure_future(reply.finish(event.text))
                        timing.early = (event.text, writing)
                        # ... before the rest of the stream is parsed (usage, the whole response again):
                        # nothing in it changes what the channel sees. (Its outcome is taken in `finish`.)
                        await asyncio.wait({writing}, timeout=EARLY_WRITE_WAIT)
                    elif isinstance(event, ToolsRunning):
                        reply.status(tool_status(event.names))
                    elif isinstance(event, TurnCompleted):
                        completed = event
        except TimeoutError:
            raise BackendError(f"the model did not finish within {timeout:.0f} seconds",
                               kind=FailureKind.TRANSIENT, code="turn_timeout", outcome_unknown=True) from None
        if completed is None:  # a backend must end with TurnCompleted or raise
            raise BackendError("the model's answer ended early", kind=FailureKind.TRANSIENT,
                               code="stream_cut", outcome_unknown=True)
        return completed

    async def finish(self, reply: Reply, turn_id: int, text: str,
                     writing: asyncio.Future[list[str]] | None = None, *, thread_ts: str | None,
                     model_done: float | None = None) -> Step:
        """Write the answer (or wait for `writing` it) at `thread_ts`; the turn is delivered once Slack has it.
        `model_done`: when the model finished (monotonic), to measure the wait for Slack."""
        state = self._parts.state(reply.channel)
        try:
            posted = await (writing if writing is not None else reply.finish(text))
        except SLACK_FAILURES as exc:
            if refused_token(exc, None):  # a token outage is not this reply's fault: it uses up no attempt
                return await self._undelivered(turn_id, reply.channel, exc, attempt=state.undelivered_tries + 1)
            state.undelivered_tries += 1
            return await self._undelivered(turn_id, reply.channel, exc, attempt=state.undelivered_tries)
        if model_done is not None:
            metrics.MODEL_TO_SLACK.observe(time.monotonic() - model_done)
        state.undelivered_tries = 0
        self._parts.auth.delivered()
        await self._parts.journal.finish_turn(turn_id)
        await self._parts.conversations.delivered(reply.channel, thread_ts, posted, text)
        state.settled = True
        return CONTINUE

    async def _undelivered(self, turn_id: int, channel: str, exc: BaseException, *, attempt: int) -> Step:
        error = reason(exc)
        code = exc.response.get("error") if isinstance(exc, SlackApiError) else None
        decision = after_undelivered(code, attempt, policy=self._parts.policy)
        metrics.UNDELIVERED.labels(decision.outcome.value).inc()
        if decision.outcome is Undelivered.PAUSED:
            assert code is not None
            self._parts.auth.refused(code)  # (says once what to do; the answer stays in the journal)
            log.info("channel %s: the reply of turn %d waits for Slack to take the token again (%s)",
                     channel, turn_id, error)
        elif decision.outcome is Undelivered.CANNOT_WRITE:
            await self._parts.journal.skip_turn(turn_id)
            log.error("channel %s: cannot write replies there (%s); the turn's messages are skipped. Invite the "
                      "bot to the channel, or remove the channel from BRIDGE_CHANNELS.", channel, error)
        elif decision.outcome is Undelivered.GAVE_UP:
            await self._parts.journal.skip_turn(turn_id)
            self._parts.state(channel).undelivered_tries = 0
            log.error("channel %s: gave up writing the reply of turn %d after %d attempts (%s)", channel, turn_id,
                      attempt, error)
        else:
            log.warning("channel %s: the reply of turn %d could not be written (%s); retrying in %.0fs",
                        channel, turn_id, error, decision.step.delay)
        return decision.step


class _Timing:
    """When a turn started, sent its request and got its first token (for the turn's log line)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.sent = started
        self.done = started
        self.first_token: float | None = None
        self.early: tuple[str, asyncio.Future[list[str]]] | None = None  # the text said final, being written

    @property
    def prepare_ms(self) -> float:
        return (self.sent - self.started) * 1000

    @property
    def first_token_ms(self) -> str:
        return f"{(self.first_token - self.sent) * 1000:.0f}" if self.first_token else "-"

    @property
    def total_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000


def _quietly(future: asyncio.Future[list[str]]) -> None:
    """A reply written early whose turn then failed: its own failure is not news (the turn's is)."""
    if not future.cancelled():
        future.exception()


def _observe_arrivals(batch: Sequence[InboxItem]) -> None:
    """Event → model request, for each message sent for the first time (a retry's wait is not overhead)."""
    now = time.time()
    for item in batch:
        if item.attempts == 0 and item.received_at:
            metrics.EVENT_TO_REQUEST.observe(max(0.0, now - item.received_at))
