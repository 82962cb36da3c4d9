"""What the runner does in Slack and the journal around a turn that did not simply succeed: carry out
the decision after a failure, post notices, remove an attempt's messages. Every Slack write goes
through the `SlackWriter`, paced with the replies; a notice or deletion that fails is logged, never
raised (the channel's work goes on either way)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot import metrics
from bot.backends.base import BackendError, FailureKind
from bot.messages import InboxItem
from bot.outbound.replies import Reply
from bot.outbound.slack_errors import SLACK_FAILURES, reason
from bot.store import OpenTurn
from bot.work.decisions import AfterFailure, TurnEffect, after_failure, attempt_of
from bot.work.parts import Parts
from bot.work.retry import Next, Step

log = logging.getLogger(__name__)


class Effects:
    """Carries out failure decisions, notices and deletions for the runner."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    async def failed(self, turn_id: int | None, batch: Sequence[InboxItem], reply: Reply | None,
                     error: BackendError, *, silent: bool = False) -> Step:
        """A failed attempt at `batch` (journalled as `turn_id`, if it got that far): decide, then do."""
        parts = self._parts
        channel = batch[0].channel
        if turn_id is None:  # failed before the turn was journalled: count the attempt all the same
            await parts.inbox.record_attempt([item.id for item in batch])
        log.warning("turn channel=%s items=%d outcome=failed kind=%s attempt=%d status=%s code=%s request_id=%s",
                    channel, len(batch), error.kind, attempt_of(batch), error.status, error.code, error.request_id)
        decision = after_failure(error, batch, policy=parts.policy, journalled=turn_id is not None, silent=silent,
                                 reported=parts.state(channel).reported)
        if error.kind is FailureKind.ACCOUNT:
            parts.model_refusal = error.code or error.message  # (/readyz says not ready until a turn works)
        metrics.TURNS.labels("failed").inc()
        metrics.FAILURES.labels(error.kind.value).inc()
        if decision.step.next is Next.RETRY:
            metrics.RETRIES.inc()
        await self._carry_out(decision, channel, turn_id, reply, error)
        return decision.step

    async def _carry_out(self, decision: AfterFailure, channel: str, turn_id: int | None, reply: Reply | None,
                         error: BackendError) -> None:
        parts = self._parts
        state = parts.state(channel)
        if turn_id is not None and decision.effect is TurnEffect.ABANDON:
            await parts.journal.abandon_turn(turn_id)
        elif turn_id is not None and decision.effect is TurnEffect.RETRY:
            await parts.journal.retry_turn(turn_id)
        if decision.reset:
            await parts.conversations.reset(channel, lost=True)
        if decision.solo is not None:
            state.solo = decision.solo
        if decision.skip:
            await parts.inbox.mark_skipped([item.id for item in decision.skip])
        if decision.quiet:
            await self.quiet(reply, turn_id)
        if decision.note is not None:
            await self.notice(channel, decision.note, thread_ts=decision.skip[0].thread_ts if decision.skip else None)
            log.warning("channel %s: %d message(s) skipped", channel, len(decision.skip))
        elif decision.skip:
            log.warning("channel %s: %d context message(s) skipped (%s)", channel, len(decision.skip), error.message)
        if decision.reported is not None:
            state.reported = decision.reported
        if decision.tell is not None:
            await self.tell(reply, channel, decision.tell)

    async def tell(self, reply: Reply | None, channel: str, text: str) -> None:
        """End the attempt's reply with `text` (or, without a reply, post it in the channel)."""
        if reply is None:
            await self.notice(channel, text)
            return
        try:
            await reply.fail(text)
        except SLACK_FAILURES as exc:
            log.warning("channel %s: could not tell the channel about a failure (%s)", reply.channel, reason(exc))

    async def quiet(self, reply: Reply | None, turn_id: int | None) -> None:
        """End an attempt without a word: remove what its reply showed."""
        if reply is None:
            return
        for ts in await reply.cancel():
            await self.delete(reply.channel, ts)
        if turn_id is not None:
            await self._parts.journal.set_turn_messages(turn_id, ())

    async def discard(self, turn: OpenTurn) -> None:
        """An earlier attempt's messages that the next reply cannot reuse (another thread): remove them."""
        await self._parts.journal.abandon_turn(turn.id)
        for ts in turn.messages:
            await self.delete(turn.channel, ts)

    async def delete(self, channel: str, ts: str) -> None:
        """Remove one message, paced with the replies' edits; logged if it cannot be removed."""
        try:
            await self._parts.writer.delete(channel, ts)
        except SLACK_FAILURES as exc:
            log.info("channel %s: could not delete message %s (%s)", channel, ts, reason(exc))

    async def notice(self, channel: str, text: str, thread_ts: str | None = None) -> None:
        """A plain-text notice (a failure, a reset), paced with the replies; logged if it cannot be posted."""
        try:
            await self._parts.writer.notice(channel, text, thread_ts=thread_ts)
        except SLACK_FAILURES as exc:
            log.warning("channel %s: could not post a notice (%s)", channel, reason(exc))
