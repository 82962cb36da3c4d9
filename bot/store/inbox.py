"""The inbox: every channel's items (messages and resets) in Slack order, unique on (channel, ts)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Sequence
from enum import StrEnum

from bot.messages import FileNote, InboxItem, IncomingMessage, ItemKind, ResetRequest
from bot.store.database import Database, literals, marks


class ItemState(StrEnum):
    """Where an inbox item stands: `answered` once its turn's answer is in the conversation."""

    PENDING = "pending"
    ANSWERED = "answered"
    DONE = "done"
    SKIPPED = "skipped"
    REFUSED = "refused"  # over a budget: never sent to the model (its author was told; see store/usage.py)


OPEN_ITEMS = (ItemState.PENDING, ItemState.ANSWERED)  # (as in the partial index inbox_open)
FINISHED_ITEMS = (ItemState.DONE, ItemState.SKIPPED, ItemState.REFUSED)  # (as in inbox_finished)
ITEM_COLUMNS = "id, channel, kind, order_ts, user_id, text, thread_ts, files, mentions_bot, attempts, received_at"
MAX_PENDING = 500  # items one look at a channel's queue returns at most
# Pending, said so that SQLite uses the partial index inbox_open (it sees that a query's condition implies
# the index's only when the query names the index's condition itself).
IS_PENDING = f"state = '{ItemState.PENDING}' AND state IN ({literals(OPEN_ITEMS)})"


class Inbox:
    """Items in, items out: a duplicate delivery dies at the unique (channel, ts) key."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_message(self, message: IncomingMessage, *, durable: bool = True) -> bool:
        """Store a message; False if (channel, ts) was already stored (a duplicate delivery). Without
        `durable`, the message is stored (seen at once) but on the disk only after `sync()`."""
        files = json.dumps([_file_fields(f) for f in message.files]) if message.files else None
        async with self._db.durable() if durable else contextlib.nullcontext():
            added = await self._db.execute(
                "INSERT INTO inbox (channel, dedupe_key, kind, order_ts, user_id, text, thread_ts, files,"
                f" mentions_bot, received_at) VALUES (?, ?, 'message', ?, ?, ?, ?, ?, ?, {self._db.now_sql})"
                " ON CONFLICT DO NOTHING",  # (stored when the database says: the replicas' order of storing)
                (message.channel, message.ts, message.ts, message.user, message.text, message.thread_ts, files,
                 int(message.mentions_bot)),
            )
        return added == 1

    async def sync(self, *, at_once: bool = False) -> None:
        """What was stored so far is on the disk (it survives a power loss): what Slack is acked for.
        `at_once`: start the disk's sync now (see group_sync.py)."""
        await self._db.sync(at_once=at_once)

    async def add_reset(self, reset: ResetRequest) -> bool:
        """Store a reset in the channel's log; False if this invocation was already stored.

        A slash command carries no message ts, so the reset is placed right after the newest message
        of the channel stored so far: it applies between the messages Slack delivered before it and
        those it delivers after (a late re-delivery of an older message still sorts before it).
        """
        async with self._db.durable(), self._db.transaction():
            row = await self._db.fetchone("SELECT max(order_ts) FROM inbox WHERE channel = ?", (reset.channel,))
            order_ts = just_after(row[0]) if row and row[0] else reset.order_ts
            added = await self._db.execute(
                "INSERT INTO inbox (channel, dedupe_key, kind, order_ts, user_id, received_at)"
                " VALUES (?, ?, 'reset', ?, ?, ?) ON CONFLICT DO NOTHING",
                (reset.channel, f"reset:{reset.key}", order_ts, reset.user, time.time()),
            )
        return added == 1

    async def pending(self, channel: str, limit: int = MAX_PENDING) -> list[InboxItem]:
        """The channel's pending items in Slack order."""
        rows = await self._db.fetchall(
            f"SELECT {ITEM_COLUMNS} FROM inbox WHERE channel = ? AND {IS_PENDING} ORDER BY order_ts, id LIMIT ?",
            (channel, limit))
        return [item_from_row(row) for row in rows]

    async def pending_count(self, channel: str) -> int:
        (count,) = await self._db.fetchone(
            f"SELECT count(*) FROM inbox WHERE channel = ? AND {IS_PENDING}", (channel,)) or (0,)
        return int(count)

    async def waiting(self) -> int:
        """Messages stored and not yet answered, in every channel (the queue depth an operator watches)."""
        (count,) = await self._db.fetchone(f"SELECT count(*) FROM inbox WHERE {IS_PENDING}") or (0,)
        return int(count)

    async def channels_with_pending(self) -> list[str]:
        """Channels with work: pending items, or answered ones whose reply is not yet in Slack."""
        rows = await self._db.fetchall(
            f"SELECT DISTINCT channel FROM inbox WHERE state IN ({literals(OPEN_ITEMS)}) ORDER BY channel")
        return [row[0] for row in rows]

    async def mark_done(self, ids: Sequence[int]) -> None:
        await self._set_state(ids, ItemState.DONE)

    async def mark_skipped(self, ids: Sequence[int]) -> None:
        await self._set_state(ids, ItemState.SKIPPED)

    async def record_attempt(self, ids: Sequence[int]) -> None:
        """An attempt failed before its turn was journalled: count it all the same."""
        if ids:
            await self._db.execute(f"UPDATE inbox SET attempts = attempts + 1 WHERE id IN ({marks(ids)})", ids)

    async def prune(self, cutoff: float) -> None:
        """Forget finished items older than `cutoff` (a Unix time)."""
        await self._db.execute(f"DELETE FROM inbox WHERE state IN ({literals(FINISHED_ITEMS)}) AND done_at < ?",
                               (cutoff,))

    async def _set_state(self, ids: Sequence[int], state: ItemState) -> None:
        if ids:
            await self._db.execute(f"UPDATE inbox SET state = ?, done_at = ? WHERE id IN ({marks(ids)})",
                                   (state, time.time(), *ids))


def item_from_row(row: tuple) -> InboxItem:
    """An InboxItem from the columns of ITEM_COLUMNS."""
    item_id, channel, kind, order_ts, user, text, thread_ts, files, mentions_bot, attempts, received_at = row
    notes = tuple(_file_note(entry) for entry in json.loads(files)) if files else ()
    return InboxItem(id=item_id, channel=channel, kind=ItemKind(kind), order_ts=order_ts, user=user, text=text,
                     thread_ts=thread_ts, files=notes, mentions_bot=bool(mentions_bot), attempts=attempts,
                     received_at=received_at)


def _file_fields(note: FileNote) -> dict[str, object]:
    return {key: value for key, value in dataclasses.asdict(note).items() if value not in ("", None)}


def _file_note(entry: list | dict) -> FileNote:
    """A stored file: [name, mimetype, size] (stored before files were read), or its fields by name."""
    if isinstance(entry, list):
        name, mimetype, size = entry
        return FileNote(name, mimetype, size)
    return FileNote(**{key: entry[key] for key in FILE_FIELDS if key in entry})


FILE_FIELDS = tuple(field.name for field in dataclasses.fields(FileNote))


def just_after(ts: str) -> str:
    """The Slack ts one microsecond after `ts` ("1732600000.000100" → "1732600000.000101")."""
    seconds, _, micros = ts.partition(".")
    total = int(seconds) * 1_000_000 + int((micros or "0").ljust(6, "0")[:6]) + 1
    return f"{total // 1_000_000}.{total % 1_000_000:06d}"
