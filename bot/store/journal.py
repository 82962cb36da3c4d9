"""The turn journal: every model request and its reply, so a crash or a failure is resolved exactly.

A turn is `started` before its request is sent, `answered` once the model's answer is in the
conversation, `delivered` once it is in Slack. `retry`: it failed before reaching the conversation (its
messages in Slack are reused by the next attempt); `failed`: closed without an answer (its items stay
pending for a new turn); `skipped`: given up (its items are skipped too).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.messages import InboxItem
from bot.store.database import Database, literals, marks
from bot.store.inbox import ITEM_COLUMNS, ItemState, item_from_row


class TurnState(StrEnum):
    STARTED = "started"
    RETRY = "retry"
    ANSWERED = "answered"
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    FAILED = "failed"


OPEN_STATES = (TurnState.STARTED, TurnState.RETRY, TurnState.ANSWERED)  # (as in the partial index turns_open)
FINISHED_STATES = (TurnState.DELIVERED, TurnState.SKIPPED, TurnState.FAILED)  # (as in turns_finished)


@dataclass(frozen=True, slots=True)
class OpenTurn:
    """A turn that did not finish: `started` (outcome unknown), `retry` (failed before reaching the
    conversation; its messages in Slack are reused) or `answered` (the reply still to be written)."""

    id: int
    channel: str
    thread_ts: str | None
    state: TurnState
    reply_text: str | None
    conversation_id: str | None
    input_texts: tuple[str, ...]
    messages: tuple[str, ...]
    silent: bool = False

    @property
    def message_ts(self) -> str | None:
        return self.messages[0] if self.messages else None


class TurnJournal:
    """Writes and reads the journal; each state change and its items' change commit together."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open_turn(self, channel: str) -> OpenTurn | None:
        """The channel's unfinished turn, if a crash or a failure left one."""
        row = await self._db.fetchone(
            "SELECT id, channel, thread_ts, state, reply_text, conversation_id, input_texts, messages, silent"
            f" FROM turns WHERE channel = ? AND state IN ({literals(OPEN_STATES)}) ORDER BY id DESC LIMIT 1",
            (channel,))
        if row is None:
            return None
        turn_id, channel, thread_ts, state, reply_text, conversation_id, input_texts, messages, silent = row
        return OpenTurn(turn_id, channel, thread_ts, TurnState(state), reply_text, conversation_id,
                        tuple(json.loads(input_texts or "[]")), tuple(json.loads(messages or "[]")), bool(silent))

    async def turn_items(self, turn_id: int, state: ItemState = ItemState.PENDING) -> list[InboxItem]:
        """The items a turn was started with that are still in `state`."""
        rows = await self._db.fetchall(
            f"SELECT {ITEM_COLUMNS} FROM inbox WHERE turn_id = ? AND state = ? ORDER BY order_ts, id",
            (turn_id, state))
        return [item_from_row(row) for row in rows]

    async def start_turn(self, channel: str, item_ids: Sequence[int], *, thread_ts: str | None,
                         conversation_id: str, input_texts: Sequence[str], messages: Sequence[str] = (),
                         turn_id: int | None = None, silent: bool = False) -> int:
        """Record that a model request for these items is about to be sent (reusing `turn_id` if given)."""
        fields = (thread_ts, conversation_id, json.dumps(list(input_texts)), json.dumps(list(messages)), int(silent),
                  time.time())
        async with self._db.transaction():
            if turn_id is None:
                row = await self._db.fetchone(
                    "INSERT INTO turns (channel, thread_ts, conversation_id, input_texts, messages, silent,"
                    " started_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (channel, *fields, TurnState.STARTED))
                assert row is not None
                turn_id = row[0]
            else:
                await self._db.execute(
                    "UPDATE turns SET state = ?, thread_ts = ?, conversation_id = ?, input_texts = ?,"
                    " messages = ?, silent = ?, started_at = ? WHERE id = ?", (TurnState.STARTED, *fields, turn_id))
                # A smaller batch than the turn's last attempt (one message at a time, hunting a refused
                # one): the items left out are not this turn's any more — its end must not end them.
                await self._db.execute(
                    "UPDATE inbox SET turn_id = NULL WHERE turn_id = ? AND state = ?"
                    f" AND id NOT IN ({marks(item_ids)})",
                    (turn_id, ItemState.PENDING, *item_ids))
            await self._db.execute(
                f"UPDATE inbox SET turn_id = ?, attempts = attempts + 1 WHERE id IN ({marks(item_ids)})",
                (turn_id, *item_ids))
        assert turn_id is not None
        return turn_id

    async def add_turn_message(self, turn_id: int, ts: str) -> None:
        """A message of the turn's reply was posted: remember it, so it is reused, never posted twice."""
        await self._db.execute(
            f"UPDATE turns SET messages = {self._db.json_append('messages')} WHERE id = ?",
            (ts, turn_id))

    async def replace_turn_messages(self, turn_id: int, old: Sequence[str], new: Sequence[str]) -> None:
        """Messages `new` were posted in place of `old` (about to be deleted): they take their place."""
        async with self._db.transaction():
            row = await self._db.fetchone("SELECT messages FROM turns WHERE id = ?", (turn_id,))
            if row is None:
                return
            messages = json.loads(row[0] or "[]")
            at = next((index for index, ts in enumerate(messages) if ts in old), len(messages))
            kept = [ts for ts in messages if ts not in old]
            await self.set_turn_messages(turn_id, [*kept[:at], *new, *kept[at:]])

    async def set_turn_messages(self, turn_id: int, messages: Sequence[str]) -> None:
        await self._db.execute("UPDATE turns SET messages = ? WHERE id = ?", (json.dumps(list(messages)), turn_id))

    async def answer_turn(self, turn_id: int, reply_text: str, response_id: str | None, *,
                          backend: str | None = None, last_item_id: str | None = None) -> None:
        """The model answered: its reply is now part of the conversation and must be delivered.
        With `backend`, the conversation's newest item becomes `last_item_id` in the same transaction."""
        async with self._db.transaction():
            await self._db.execute("UPDATE turns SET state = ?, reply_text = ?, response_id = ? WHERE id = ?",
                                   (TurnState.ANSWERED, reply_text, response_id, turn_id))
            if backend is not None:
                await self._db.execute(
                    "UPDATE conversations SET last_item_id = ? WHERE backend = ? AND conversation_id ="
                    " (SELECT conversation_id FROM turns WHERE id = ?)", (last_item_id, backend, turn_id))
            await self._db.execute("UPDATE inbox SET state = ? WHERE turn_id = ? AND state = ?",
                                   (ItemState.ANSWERED, turn_id, ItemState.PENDING))

    async def finish_turn(self, turn_id: int) -> None:
        """The reply is in Slack: the turn and its items are done."""
        await self._end_turn(turn_id, TurnState.DELIVERED, ItemState.DONE)

    async def skip_turn(self, turn_id: int) -> None:
        """Give up on the turn: its items are skipped (reported in the channel by the caller)."""
        await self._end_turn(turn_id, TurnState.SKIPPED, ItemState.SKIPPED)

    async def retry_turn(self, turn_id: int) -> None:
        """The request failed before reaching the conversation: the items stay pending, and the next
        attempt reuses the turn's messages in Slack."""
        await self._db.execute("UPDATE turns SET state = ? WHERE id = ?", (TurnState.RETRY, turn_id))

    async def abandon_turn(self, turn_id: int) -> None:
        """Close the turn without answering; its items stay pending for a new turn."""
        await self._db.execute("UPDATE turns SET state = ?, finished_at = ? WHERE id = ?",
                               (TurnState.FAILED, time.time(), turn_id))

    async def prune(self, cutoff: float) -> None:
        """Forget finished turns older than `cutoff` (a Unix time)."""
        await self._db.execute(
            f"DELETE FROM turns WHERE state IN ({literals(FINISHED_STATES)}) AND coalesce(finished_at, started_at) < ?",
            (cutoff,))

    async def _end_turn(self, turn_id: int, turn_state: TurnState, item_state: ItemState) -> None:
        now = time.time()
        async with self._db.transaction():
            await self._db.execute("UPDATE turns SET state = ?, finished_at = ? WHERE id = ?",
                                   (turn_state, now, turn_id))
            await self._db.execute("UPDATE inbox SET state = ?, done_at = ? WHERE turn_id = ? AND state IN (?, ?)",
                                   (item_state, now, turn_id, ItemState.PENDING, ItemState.ANSWERED))
