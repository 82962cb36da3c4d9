"""What of a channel's stored history one Chat Completions request carries: the newest whole messages
that fit the prompt budget (sizes estimated from characters, calibrated by the server's usage), from a
start that stays put for a while so the server's prompt cache keeps the prefix."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

DEFAULT_CHARS_PER_TOKEN = 4.0  # until the server reports usage (tokenizers can't be fetched at run time)
MIN_CHARS_PER_TOKEN, MAX_CHARS_PER_TOKEN = 1.5, 8.0  # a calibration outside these is a server's odd count


class ChatRecord(Protocol):
    """One stored chat message: its id, the OpenAI chat message dict, its size in characters."""

    @property
    def id(self) -> int: ...

    @property
    def message(self) -> dict[str, Any]: ...

    @property
    def chars(self) -> int: ...


IMAGE_CHARS = 3000  # an image part counted as this many characters (~765 tokens: a 1024×1024 image at OpenAI)


def message_chars(message: dict[str, Any]) -> int:
    """A message's size as the store counts it (its JSON text); an image as IMAGE_CHARS, not its base64."""
    content = message.get("content")
    if isinstance(content, list) and any(part.get("type") == "image_url" for part in content):
        images = [part for part in content if part.get("type") == "image_url"]
        rest = {**message, "content": [part for part in content if part.get("type") != "image_url"]}
        return len(json.dumps(rest, ensure_ascii=False)) + IMAGE_CHARS * len(images)
    return len(json.dumps(message, ensure_ascii=False))


def calibrated(prompt_chars: int, prompt_tokens: int | None, current: float) -> float:
    """Characters per token, from a request of `prompt_chars` the server counted as `prompt_tokens`;
    `current` when the server said nothing usable."""
    if not prompt_tokens or prompt_tokens <= 0 or prompt_chars <= 0:
        return current
    return min(max(prompt_chars / prompt_tokens, MIN_CHARS_PER_TOKEN), MAX_CHARS_PER_TOKEN)


WINDOW_MOVE_AT = 0.9  # a history this full of its budget starts a window (see window_start) …
WINDOW_KEEP = 0.6  # … that keeps the newest this much of it, then stays put until the history is full again
MAX_WINDOWS = 10_000  # conversations whose window start is remembered (in memory; lost on restart: one miss)


def history_budget(context_tokens: int, chars_per_token: float, fixed_chars: int) -> int:
    """Characters of history that fit beside what every request carries anyway (`fixed_chars`)."""
    return max(int(context_tokens * chars_per_token) - fixed_chars, 0)


def window_start(records: Sequence[ChatRecord], previous: int | None, budget: int) -> int | None:
    """Where the history sent to the model starts: None for all of `records` (the newest that fit
    `budget`, oldest first). A window that slid by one message every turn would change the start of
    every prompt, and a server's prompt cache would miss every time; so the start stays where it was
    (`previous`) while the history from there still fits, and when it no longer does it moves at once
    to where the newest WINDOW_KEEP of the budget begins — a cache miss every few turns, not every turn."""
    if not records:
        return None
    if previous is not None and records[0].id <= previous:
        return previous
    if previous is None and sum(record.chars for record in records) < budget * WINDOW_MOVE_AT:
        return None  # far from the limit: everything there is
    used = 0
    for record in reversed(records):
        used += record.chars
        if used > budget * WINDOW_KEEP:
            return record.id + 1 if record is not records[-1] else record.id
    return records[0].id


def trim_history(records: Sequence[ChatRecord], max_chars: int) -> list[dict[str, Any]]:
    """The newest whole units of `records` (oldest first) whose characters fit `max_chars`.

    A unit is one message, or an assistant message with tool calls together with all their results:
    a call is never sent without its result, nor a result without its call.
    """
    kept: list[list[ChatRecord]] = []
    used = 0
    for unit in reversed(_units(records)):
        size = sum(record.chars for record in unit)
        if used + size > max_chars:
            break
        kept.append(unit)
        used += size
    return [record.message for unit in reversed(kept) for record in unit]


def _units(records: Sequence[ChatRecord]) -> list[list[ChatRecord]]:
    """Records grouped into units, oldest first; broken ones (a result whose call is gone, calls
    missing a result) are left out."""
    units: list[list[ChatRecord]] = []
    index = 0
    while index < len(records):
        head = records[index]
        index += 1
        if head.message.get("role") == "tool":
            continue  # its call is older than the window
        unit = [head]
        wanted = {call.get("id") for call in head.message.get("tool_calls") or ()}
        while (wanted and index < len(records) and records[index].message.get("role") == "tool"
               and records[index].message.get("tool_call_id") in wanted):
            unit.append(records[index])
            index += 1
        if {record.message.get("tool_call_id") for record in unit[1:]} == wanted:
            units.append(unit)
    return units
