"""BRIDGE_RETENTION_DAYS: erase message text answered longer ago than that, keep what exactly-once needs.

Erased: an inbox item's text and file notes, a finished turn's input texts and reply text, and the chat
backend's stored messages (that history *is* the channel's conversation for `chat`: past the retention
the model no longer sees those messages — a rolling window of the last N days). Kept: every inbox row
with its (channel, ts) key, so a Slack re-delivery of an old message still dies at the unique key, and
every journal row with its state and Slack message ids (rows go only with the 7-day pruning of
finished work, see `Store.prune`). Unfinished work is never touched.
"""

from __future__ import annotations

from bot.store.database import Database, literals
from bot.store.inbox import FINISHED_ITEMS
from bot.store.journal import FINISHED_STATES


async def erase_text(db: Database, cutoff: float) -> None:
    """Erase the text of everything finished before `cutoff` (a Unix time); run inside a transaction."""
    await db.execute(
        f"UPDATE inbox SET text = '', files = NULL WHERE state IN ({literals(FINISHED_ITEMS)}) AND done_at < ?"
        " AND (text <> '' OR files IS NOT NULL)", (cutoff,))
    await db.execute(
        f"UPDATE turns SET input_texts = NULL, reply_text = NULL WHERE state IN ({literals(FINISHED_STATES)})"
        " AND coalesce(finished_at, started_at) < ? AND (input_texts IS NOT NULL OR reply_text IS NOT NULL)",
        (cutoff,))
    # A turn's chat messages are written together (one created_at), so a tool call goes with its results.
    await db.execute("DELETE FROM chat_messages WHERE created_at < ?", (cutoff,))
