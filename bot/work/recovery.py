"""A turn a failure or a crash left unfinished.

`answered`: the model's answer is journalled but not (all) in Slack — write it. `started`: the
request was sent and the answer never arrived — look in the conversation: if the turn's messages are
there with an answer, that answer is delivered; if it stopped between a tool call and its result, it
carries on from there; if the messages are not there, they are sent again. A user's message enters
the conversation exactly once either way.
"""

from __future__ import annotations

import logging

from bot.backends.base import BackendError
from bot.store import OpenTurn
from bot.work.decisions import Found, after_lookup, after_lookup_failure, place_turn
from bot.work.parts import Parts
from bot.work.retry import CONTINUE, Step
from bot.work.turn import Turns

log = logging.getLogger(__name__)


class Recovery:
    """Resolves and delivers unfinished turns."""

    def __init__(self, parts: Parts, turns: Turns) -> None:
        self._parts = parts
        self._turns = turns

    async def deliver(self, turn: OpenTurn) -> Step:
        """Write a reply the model gave before (Slack failed, or the process stopped, in between)."""
        items = await self._parts.journal.turn_items(turn.id)  # (pending until the reply is delivered; oldest first)
        reply = self._turns.reply(turn.channel, turn.id, turn.thread_ts, recipient=None, messages=turn.messages,
                                  stream=False, conversation_id=turn.conversation_id, look_first=True,
                                  since=items[0].ts if items else None)
        return await self._turns.finish(reply, turn.id, turn.reply_text or "", thread_ts=turn.thread_ts)

    async def resolve(self, turn: OpenTurn) -> Step | None:
        """A turn whose outcome is unknown: deliver its answer if the conversation has one; None if it
        has none (the turn stays `started` until it is sent again, so a crash in between brings us back
        here rather than to a blind resend)."""
        parts = self._parts
        state = parts.state(turn.channel)
        try:
            found = await parts.conversations.find_reply(turn.channel, turn.conversation_id, turn.input_texts)
        except BackendError as error:
            state.lookups_failed += 1
            log.warning("channel %s: cannot check turn %d yet (%s)", turn.channel, turn.id, error.message)
            return after_lookup_failure(error, state.lookups_failed, policy=parts.policy)
        state.lookups_failed = 0
        items = await parts.journal.turn_items(turn.id) if found is not None and found.pending_calls else []
        outcome = after_lookup(answered=found is not None, pending_calls=bool(found and found.pending_calls),
                               has_items=bool(items), silent=turn.silent)
        if outcome is Found.RESEND or found is None:
            return None
        if outcome is Found.CONTINUE_TOOLS:  # interrupted between a tool call and its result: carry on
            log.info("channel %s: turn %d continues with its %d unanswered tool call(s)", turn.channel,
                     turn.id, len(found.pending_calls))
            action = place_turn(items, turn, reply_in_thread=parts.reply_in_thread)
            return await self._turns.run(action, continue_with=found.pending_calls)
        log.info("channel %s: turn %d had completed before the interruption", turn.channel, turn.id)
        await parts.journal.answer_turn(turn.id, found.text, None, backend=parts.conversations.backend.name,
                                        last_item_id=found.last_item_id)
        if outcome is Found.FINISH:
            await parts.journal.finish_turn(turn.id)
            return CONTINUE
        return await self.deliver(await parts.journal.open_turn(turn.channel) or turn)
