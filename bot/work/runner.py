"""A channel's next step: gather the values, ask `decisions.next_step`, carry out its answer."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.conversation.service import ConversationService
from bot.messages import InboxItem
from bot.outbound import sentences
from bot.outbound.replies import ReplyFactory
from bot.outbound.slack_auth import AUTH_RETRY_DELAY, SlackAuthGate
from bot.outbound.writer import SlackWriter
from bot.store import Inbox, TurnJournal, TurnState
from bot.work.budget_gate import BudgetGate
from bot.work.decisions import Action, Do, followup_threads, mentions_only, next_step
from bot.work.effects import Effects
from bot.work.parts import Parts
from bot.work.recovery import Recovery
from bot.work.retry import CONTINUE, WAIT, RetryPolicy, Step, retry_in
from bot.work.turn import Turns

log = logging.getLogger(__name__)

MAX_ITEMS_PER_TURN = 50
WRITES_TO_SLACK = frozenset({Do.DELIVER, Do.TURN, Do.LISTEN, Do.RESET})  # steps that wait for the token


class TurnRunner:
    """Runs a channel's work one step at a time (the worker decides when to call `step` again)."""

    def __init__(self, *, inbox: Inbox, journal: TurnJournal, conversations: ConversationService, replies: ReplyFactory,
                 writer: SlackWriter, policy: RetryPolicy, reply_in_thread: bool,
                 max_concurrent_turns: int, respond_to: Callable[[str], str] = lambda _channel: "all",
                 auth: SlackAuthGate | None = None, budgets: BudgetGate | None = None,
                 followups: Callable[[str], bool] = lambda _channel: True) -> None:
        self._parts = Parts(inbox=inbox, journal=journal, conversations=conversations, replies=replies,
                            writer=writer, policy=policy, reply_in_thread=reply_in_thread,
                            auth=auth or SlackAuthGate(writer.client.auth_test), budgets=budgets)
        self._respond_to = respond_to
        self._followups = followups  # does a reply in a thread the assistant answered in need no mention?
        self._effects = Effects(self._parts)
        self._turns = Turns(self._parts, self._effects, max_concurrent_turns=max_concurrent_turns)
        self._recovery = Recovery(self._parts, self._turns)

    @property
    def model_refusal(self) -> str | None:
        """Why the model service refuses every request (a key, a quota, a missing API), until a turn works."""
        return self._parts.model_refusal

    def forget(self, channel: str) -> None:
        """Drop what this process remembers of the channel (another replica worked it meanwhile: its
        unfinished turn, its conversation, are to be read from the store again)."""
        self._parts.channels.pop(channel, None)
        self._parts.conversations.forget_cached(channel)

    async def step(self, channel: str) -> Step:
        """One step of the channel's work; the answer says when to take the next one. The pending items
        are read every step (one indexed read) even when the open turn alone decides it, so that
        `next_step` sees every value at once."""
        parts = self._parts
        state = parts.state(channel)
        # An unfinished turn exists only after a failure or a restart: skip the lookup when we know.
        turn = None if state.settled else await parts.journal.open_turn(channel)
        own: list[InboxItem] | None = None
        while True:  # at most twice: a `started` turn the conversation has no answer for is decided again
            pending = await parts.inbox.pending(channel, limit=MAX_ITEMS_PER_TURN)
            if parts.budgets is not None and (turn is None or turn.state is TurnState.RETRY):
                # Messages over a budget never reach the model (a `started` turn's may have already).
                pending = await parts.budgets.admit(pending)
            only_mentions = mentions_only(self._respond_to(channel), channel)
            threads = followup_threads(pending, mentions_only=only_mentions, followups_on=self._followups(channel))
            action = next_step(turn, pending, own=own, solo=state.solo, mentions_only=only_mentions,
                               reply_in_thread=parts.reply_in_thread,
                               followups=await parts.conversations.answered_threads(channel, threads))
            if action.do is not Do.RESOLVE or turn is None:
                # What starts a turn (or writes an open one's reply) may leave it unfinished: looked up
                # next time unless it ends well. Waiting, or a reset, leaves none.
                state.settled = turn is None and action.do in (Do.WAIT, Do.RESET)
                return await self._perform(action)
            outcome = await self._recovery.resolve(turn)
            if outcome is not None:
                return outcome
            # It never completed: send exactly its messages again (newer ones wait for the next turn),
            # so that a request of ours still running somewhere cannot make the lookup miss.
            own = await parts.journal.turn_items(turn.id)

    async def _perform(self, action: Action) -> Step:
        if action.do in WRITES_TO_SLACK and not await self._parts.auth.usable():
            # Slack refuses the token: a reply could not be written, so no model turn is paid for meanwhile.
            return retry_in(AUTH_RETRY_DELAY)
        if action.do in WRITES_TO_SLACK - {Do.DELIVER} and not self._parts.auth.open:
            # (a scope refusal: only delivering a reply that waits tells whether it is fixed)
            return retry_in(AUTH_RETRY_DELAY)
        if action.do is Do.DELIVER and action.reuse is not None:
            return await self._recovery.deliver(action.reuse)
        if action.do is Do.RESET:
            return await self._reset(action.items[0])
        if action.do is Do.LISTEN:
            return await self._turns.listen(action)
        if action.do is Do.TURN:
            return await self._turns.run(action)
        if action.discard is not None:
            await self._effects.discard(action.discard)
        return WAIT

    async def _reset(self, item: InboxItem) -> Step:
        await self._parts.conversations.reset(item.channel)
        await self._effects.notice(item.channel, sentences.reset_announcement(item.user))
        await self._parts.inbox.mark_done([item.id])
        log.info("reset channel=%s", item.channel)
        return CONTINUE
