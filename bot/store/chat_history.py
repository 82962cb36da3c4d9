"""The `chat` backend's conversations: Chat Completions is stateless, so each channel's messages live here."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.store.database import Database

HISTORY_PAGE = 200  # records read at a time, newest first, while filling a prompt's history
RECENT_RECORDS = 500  # records an unanchored look for an unfinished turn reads


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """One stored chat message: its id, the OpenAI chat message dict, its size in characters."""

    id: int
    message: dict[str, Any]
    chars: int


class ChatHistory:
    """Stored chat messages per conversation id, oldest first."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def chat_history(self, conversation_id: str, *, max_chars: int | None = None) -> list[ChatRecord]:
        """The conversation's messages, oldest first; with `max_chars`, only the newest that fit
        (counting each message's characters) — the caller keeps tool calls with their results. Read
        backwards a page at a time, so a turn costs the same in a channel used for a year as in one
        used for a day."""
        if max_chars is None:
            rows = await self._db.fetchall(
                "SELECT id, message, chars FROM chat_messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,))
            return [_record(row) for row in rows]
        newest_first: list[ChatRecord] = []
        used, before = 0, None
        while True:
            page = await self._page_before(conversation_id, before)
            for row in page:
                if used + row[2] > max_chars:
                    return newest_first[::-1]
                used += row[2]
                newest_first.append(_record(row))
            if len(page) < HISTORY_PAGE:
                return newest_first[::-1]
            before = page[-1][0]

    async def chat_since(self, conversation_id: str, anchor: int | None, *,
                         limit: int = RECENT_RECORDS) -> list[ChatRecord]:
        """The records from `anchor` on (the last record of the turn before), oldest first; without an
        anchor, the newest `limit`. What looking for an unfinished turn needs, and no more."""
        if anchor is not None:
            rows = await self._db.fetchall(
                "SELECT id, message, chars FROM chat_messages WHERE conversation_id = ? AND id >= ? ORDER BY id",
                (conversation_id, anchor))
            return [_record(row) for row in rows]
        rows = await self._db.fetchall(
            "SELECT id, message, chars FROM chat_messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
            (conversation_id, limit))
        return [_record(row) for row in reversed(rows)]

    async def _page_before(self, conversation_id: str, before: int | None) -> list[tuple]:
        if before is None:
            return await self._db.fetchall(
                "SELECT id, message, chars FROM chat_messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
                (conversation_id, HISTORY_PAGE))
        return await self._db.fetchall(
            "SELECT id, message, chars FROM chat_messages WHERE conversation_id = ? AND id < ?"
            " ORDER BY id DESC LIMIT ?", (conversation_id, before, HISTORY_PAGE))

    async def append_chat(self, conversation_id: str, messages: Sequence[dict[str, Any]]) -> int | None:
        """Add messages (OpenAI chat message dicts) in one transaction; return the id of the last."""
        last: int | None = None
        now = time.time()
        async with self._db.transaction():
            for message in messages:
                text = json.dumps(message, ensure_ascii=False)
                row = await self._db.fetchone(
                    "INSERT INTO chat_messages (conversation_id, message, chars, created_at) VALUES (?, ?, ?, ?)"
                    " RETURNING id", (conversation_id, text, len(text), now))
                last = row[0] if row else None
        return last


def _record(row: tuple) -> ChatRecord:
    return ChatRecord(row[0], json.loads(row[1]), row[2])
