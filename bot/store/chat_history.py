"""The `chat` backend's conversations: Chat Completions is stateless, so each channel's messages live here."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.store.database import Database


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
        (counting each message's characters) — the caller keeps tool calls with their results."""
        if max_chars is None:
            rows = self._db.fetchall(
                "SELECT id, message, chars FROM chat_messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,))
        else:
            rows = self._db.fetchall(
                "SELECT id, message, chars FROM (SELECT id, message, chars, sum(chars) OVER (ORDER BY id DESC)"
                " AS running FROM chat_messages WHERE conversation_id = ?) WHERE running <= ? ORDER BY id",
                (conversation_id, max_chars))
        return [ChatRecord(row[0], json.loads(row[1]), row[2]) for row in rows]

    async def append_chat(self, conversation_id: str, messages: Sequence[dict[str, Any]]) -> int | None:
        """Add messages (OpenAI chat message dicts) in one transaction; return the id of the last."""
        last: int | None = None
        now = time.time()
        with self._db.transaction():
            for message in messages:
                text = json.dumps(message, ensure_ascii=False)
                cursor = self._db.execute(
                    "INSERT INTO chat_messages (conversation_id, message, chars, created_at) VALUES (?, ?, ?, ?)",
                    (conversation_id, text, len(text), now))
                last = cursor.lastrowid
        return last
