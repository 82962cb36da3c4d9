"""Finding a turn in an Assistants thread after the fact (its outcome was unknown)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.backends.lookup import Entry, locate

ENDED_MESSAGE = frozenset({"run_failed", "run_cancelled", "run_expired"})  # a message cut by its run's end


@dataclass(frozen=True)
class TurnInThread:
    """Where a turn's messages stand in a thread (see `locate_turn`)."""

    present: tuple[str, ...]  # the turn's messages found there: all of them, or the first few
    complete: bool
    answer: str  # the assistant's text after them
    newest_id: str | None


def thread_message(message: Any) -> dict[str, Any]:
    """A thread message as `locate_turn` reads it: id, role, status, why it ended, its text."""
    details = getattr(message, "incomplete_details", None)
    return {"id": message.id, "role": message.role, "status": getattr(message, "status", None),
            "reason": getattr(details, "reason", None),
            "text": "".join(part.text.value for part in message.content if part.type == "text")}


def locate_turn(items: Sequence[dict[str, Any]], messages: Sequence[str], after_item: str | None, *,
                whole_thread: bool = False) -> TurnInThread | None:
    """Find a turn's `messages` in a thread's newest `items` (oldest first: id, role, text, status,
    reason) after `after_item` (the newest message when the turn before ended). With `after_item`
    found, the user messages after it must be the turn's; else the newest ones must end with them. The
    answer: the assistant's text after them, without messages cut short by their run's end. A context
    turn cut short shows as its first messages alone after `after_item` (or in a `whole_thread`)."""
    entries = [Entry(item["id"], item["role"], item["text"],
                     final=item["status"] != "in_progress" and item["reason"] not in ENDED_MESSAGE) for item in items]
    found = locate(entries, messages, after_item, from_start=whole_thread, partial=True)
    return None if found is None else TurnInThread(found.present, found.complete, found.answer, found.newest_id)
