"""Finding a turn in a conversation after the fact (its outcome was unknown): the one rule every backend
applies to its own API's items, read into `Entry` values by a per-API hook.

The turn's window starts after `after_item` (the previous turn's last item) when that item is there,
else it is every item read. Its user messages must be the turn's messages: all of the window's when it
is bounded (anchored, or from the conversation's start), else the newest ones. The answer is the
assistant text after them, joined by ROUND_SEPARATOR as it was shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.backends.base import ROUND_SEPARATOR


@dataclass(frozen=True, slots=True)
class Entry:
    """One conversation item as the search reads it."""

    id: str | None
    role: str  # "user", "assistant", or anything else (tool calls, their results)
    text: str = ""
    final: bool = True  # False: text cut short by its run's end or still being written (not part of the answer)


@dataclass(frozen=True, slots=True)
class Located:
    """Where a turn stands: `present` its messages found (all, or with `complete` False only the first few);
    `answer_from` the index in the entries where its answer begins."""

    present: tuple[str, ...]
    complete: bool
    answer: str
    newest_id: str | None
    answer_from: int


def locate(entries: Sequence[Entry], messages: Sequence[str], after_item: str | None, *,
           from_start: bool = False, exact_from_start: bool = False, partial: bool = False) -> Located | None:
    """Find the turn whose input was `messages` in `entries` (the conversation's newest, oldest first).

    `from_start`: the entries begin with the conversation's first item. `exact_from_start`: with no
    `after_item`, the turn is then the conversation's first, so its messages must be all the user
    messages (Chat: every stored turn has an id). `partial`: also report a turn of which only the
    first messages are there, alone at the end of a bounded window (a context turn cut short).
    """
    expected = list(messages)
    if not expected:
        return None
    ids = [entry.id for entry in entries]
    anchored = after_item is not None and after_item in ids
    start = ids.index(after_item) + 1 if anchored else 0
    window = entries[start:]
    users = [start + index for index, entry in enumerate(window) if entry.role == "user"]
    texts = [entries[index].text for index in users]
    bounded = anchored or (after_item is None and from_start)
    newest = ids[-1] if ids else None
    exact = anchored or (bounded and exact_from_start)
    if texts == expected or (not exact and texts[-len(expected):] == expected):
        begins = users[-1] + 1
        answer = [entry.text for entry in entries[begins:] if entry.role == "assistant" and entry.final and entry.text]
        return Located(tuple(expected), True, ROUND_SEPARATOR.join(answer), newest, begins)
    if partial and bounded and 0 < len(texts) < len(expected) and texts == expected[:len(texts)] \
            and all(entry.role == "user" for entry in window):
        return Located(tuple(texts), False, "", newest, len(entries))
    return None


def content_text(content: Any) -> str:
    """The text of a message's `content`: a string, or parts of which the text ones count."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content or () if isinstance(part, dict))
