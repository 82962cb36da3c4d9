"""The durable store: the inbox of every channel, the turn journal and each channel's conversation.

SQLite in WAL mode, used directly from the event loop: with `synchronous=NORMAL` a commit appends to
the write-ahead log without waiting for the disk (tens of microseconds), and a committed row survives a
crash of the process; the bridge acks Slack only after the commit. The one slow operation, copying the
log into the database (a checkpoint, which does wait for the disk), runs every few seconds in a worker
thread instead of inside a commit. (A thread hop per query — aiosqlite — cost ~250 µs each, more than the
queries themselves.) One process owns a SQLite file; several replicas need a server database.
The schema is owned here (`bot/schema.py`) and upgraded on open by numbered migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bot.messages import FileNote, InboxItem, IncomingMessage, ItemKind, ResetRequest
from bot.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

PENDING, DONE, SKIPPED = "pending", "done", "skipped"
CHECKPOINT_INTERVAL = 5.0  # seconds between copies of the write-ahead log into the database
RETENTION = 7 * 24 * 3600.0  # finished inbox items and turns are kept this long (for operators), then pruned
PRUNE_INTERVAL = 3600.0


class StoreInUse(RuntimeError):
    """Another process has the database open (SQLite serves one bridge process)."""


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """One stored chat message: its id, the OpenAI chat message dict, its size in characters."""

    id: int
    message: dict[str, Any]
    chars: int


@dataclass(frozen=True, slots=True)
class OpenTurn:
    """A turn that did not finish: `started` (outcome unknown), `retry` (failed before reaching the
    conversation; its messages in Slack are reused) or `answered` (the reply still to be written)."""

    id: int
    channel: str
    thread_ts: str | None
    state: str
    reply_text: str | None
    conversation_id: str | None
    input_texts: tuple[str, ...]
    messages: tuple[str, ...]
    silent: bool = False

    @property
    def message_ts(self) -> str | None:
        return self.messages[0] if self.messages else None


class Store:
    """Inbox, turn journal, conversation map and chat history.

    Create with `await Store.open(path)`; close with `await close()`. Methods are coroutines so a
    store over a network database can keep the same interface.
    """

    def __init__(self, db: sqlite3.Connection, path: str, lock: IO[bytes] | None) -> None:
        self._db = db
        self._path = path
        self._lock = lock
        self._checkpoints: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        """Open (creating and upgrading as needed). Raises StoreInUse if another process has it, and
        OSError or sqlite3.Error if it cannot be opened."""
        lock = None
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            lock = _lock(Path(f"{path}.lock"))
        try:
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in a thread (see _checkpoint_forever)
            store = cls(db, str(path), lock)
            store._migrate()
            store._prune()
        except BaseException:
            db.close()
            if lock is not None:
                lock.close()
            raise
        if lock is not None:
            store._checkpoints = asyncio.create_task(store._checkpoint_forever(), name="sqlite-checkpoints")
        return store

    async def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            await asyncio.to_thread(_checkpoint, self._path)
        self._db.close()
        if self._lock is not None:
            self._lock.close()  # releases the lock

    async def _checkpoint_forever(self) -> None:
        last_prune = time.monotonic()
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            try:
                await asyncio.to_thread(_checkpoint, self._path)
                if time.monotonic() - last_prune > PRUNE_INTERVAL:
                    last_prune = time.monotonic()
                    self._prune()
            except sqlite3.Error as exc:
                log.warning("sqlite checkpoint failed (will try again): %s", exc)

    def _prune(self) -> None:
        """Forget finished work older than RETENTION (conversations and chat history are kept)."""
        cutoff = time.time() - RETENTION
        with self._transaction():
            self._db.execute("DELETE FROM inbox WHERE state IN ('done', 'skipped') AND done_at < ?", (cutoff,))
            self._db.execute("DELETE FROM turns WHERE state IN ('delivered', 'skipped', 'failed')"
                             " AND coalesce(finished_at, started_at) < ?", (cutoff,))

    def _migrate(self) -> None:
        (version,) = self._fetchone("PRAGMA user_version")
        if version > len(MIGRATIONS):
            raise RuntimeError(f"the database was written by a newer version (schema {version})")
        for number in range(version, len(MIGRATIONS)):
            with self._transaction():
                for statement in _statements(MIGRATIONS[number]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number + 1}")

    # --- inbox -------------------------------------------------------------------------------------

    async def add_message(self, message: IncomingMessage) -> bool:
        """Store a message; False if (channel, ts) was already stored (a duplicate delivery)."""
        files = json.dumps([[f.name, f.mimetype, f.size] for f in message.files]) if message.files else None
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO inbox (channel, dedupe_key, kind, order_ts, user_id, text, thread_ts, files,"
            " mentions_bot, received_at) VALUES (?, ?, 'message', ?, ?, ?, ?, ?, ?, ?)",
            (message.channel, message.ts, message.ts, message.user, message.text, message.thread_ts, files,
             int(message.mentions_bot), time.time()),
        )
        return cursor.rowcount == 1

    async def add_reset(self, reset: ResetRequest) -> bool:
        """Store a reset in the channel's log; False if this invocation was already stored.

        A slash command carries no message ts, so the reset is placed right after the newest message
        of the channel stored so far: it applies between the messages Slack delivered before it and
        those it delivers after (a late re-delivery of an older message still sorts before it).
        """
        row = self._fetchone("SELECT max(order_ts) FROM inbox WHERE channel = ?", (reset.channel,))
        order_ts = _just_after(row[0]) if row and row[0] else reset.order_ts
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO inbox (channel, dedupe_key, kind, order_ts, user_id, received_at)"
            " VALUES (?, ?, 'reset', ?, ?, ?)",
            (reset.channel, f"reset:{reset.key}", order_ts, reset.user, time.time()),
        )
        return cursor.rowcount == 1

    async def pending(self, channel: str, limit: int = 500) -> list[InboxItem]:
        """The channel's pending items in Slack order."""
        rows = self._fetchall(
            f"SELECT {_ITEM_COLUMNS} FROM inbox WHERE channel = ? AND state = 'pending' ORDER BY order_ts, id LIMIT ?",
            (channel, limit),
        )
        return [_item(row) for row in rows]

    async def pending_count(self, channel: str) -> int:
        (count,) = self._fetchone(
            "SELECT count(*) FROM inbox WHERE channel = ? AND state = 'pending'", (channel,))
        return int(count)

    async def channels_with_pending(self) -> list[str]:
        """Channels with work: pending items, or answered ones whose reply is not yet in Slack."""
        rows = self._fetchall(
            "SELECT DISTINCT channel FROM inbox WHERE state IN ('pending', 'answered') ORDER BY channel")
        return [row[0] for row in rows]

    async def mark_done(self, ids: Sequence[int]) -> None:
        await self._set_state(ids, DONE)

    async def mark_skipped(self, ids: Sequence[int]) -> None:
        await self._set_state(ids, SKIPPED)

    async def record_attempt(self, ids: Sequence[int]) -> None:
        if ids:
            self._db.execute(
                f"UPDATE inbox SET attempts = attempts + 1 WHERE id IN ({_marks(ids)})", tuple(ids))

    async def _set_state(self, ids: Sequence[int], state: str) -> None:
        if ids:
            self._db.execute(
                f"UPDATE inbox SET state = ?, done_at = ? WHERE id IN ({_marks(ids)})",
                (state, time.time(), *ids),
            )

    # --- turns: the journal of each model request and its reply ---------------------------------------

    async def open_turn(self, channel: str) -> OpenTurn | None:
        """The channel's unfinished turn, if a crash or a failure left one."""
        row = self._fetchone(
            "SELECT id, channel, thread_ts, state, reply_text, conversation_id, input_texts, messages, silent"
            " FROM turns WHERE channel = ? AND state IN ('started', 'retry', 'answered') ORDER BY id DESC LIMIT 1",
            (channel,))
        if row is None:
            return None
        *head, conversation_id, input_texts, messages, silent = row
        return OpenTurn(*head, conversation_id, tuple(json.loads(input_texts or "[]")),
                        tuple(json.loads(messages or "[]")), bool(silent))

    async def turn_items(self, turn_id: int, state: str = PENDING) -> list[InboxItem]:
        """The items a turn was started with that are still in `state`."""
        rows = self._fetchall(
            f"SELECT {_ITEM_COLUMNS} FROM inbox WHERE turn_id = ? AND state = ? ORDER BY order_ts, id",
            (turn_id, state))
        return [_item(row) for row in rows]

    async def start_turn(self, channel: str, item_ids: Sequence[int], *, thread_ts: str | None,
                         conversation_id: str, input_texts: Sequence[str], messages: Sequence[str] = (),
                         turn_id: int | None = None, silent: bool = False) -> int:
        """Record that a model request for these items is about to be sent (reusing `turn_id` if given)."""
        fields = (thread_ts, conversation_id, json.dumps(list(input_texts)), json.dumps(list(messages)), int(silent),
                  time.time())
        with self._transaction():
            if turn_id is None:
                cursor = self._db.execute(
                    "INSERT INTO turns (channel, thread_ts, conversation_id, input_texts, messages, silent,"
                    " started_at) VALUES (?, ?, ?, ?, ?, ?, ?)", (channel, *fields))
                turn_id = cursor.lastrowid
            else:
                self._db.execute(
                    "UPDATE turns SET state = 'started', thread_ts = ?, conversation_id = ?, input_texts = ?,"
                    " messages = ?, silent = ?, started_at = ? WHERE id = ?", (*fields, turn_id))
                # A smaller batch than the turn's last attempt (one message at a time, hunting a refused
                # one): the items left out are not this turn's any more — its end must not end them.
                self._db.execute(
                    f"UPDATE inbox SET turn_id = NULL WHERE turn_id = ? AND state = 'pending'"
                    f" AND id NOT IN ({_marks(item_ids)})", (turn_id, *item_ids))
            self._db.execute(
                f"UPDATE inbox SET turn_id = ?, attempts = attempts + 1 WHERE id IN ({_marks(item_ids)})",
                (turn_id, *item_ids))
        assert turn_id is not None
        return turn_id

    async def add_turn_message(self, turn_id: int, ts: str) -> None:
        """A message of the turn's reply was posted: remember it, so it is reused, never posted twice."""
        self._db.execute(
            "UPDATE turns SET messages = json_insert(coalesce(messages, '[]'), '$[#]', ?) WHERE id = ?",
            (ts, turn_id))

    async def set_turn_messages(self, turn_id: int, messages: Sequence[str]) -> None:
        self._db.execute("UPDATE turns SET messages = ? WHERE id = ?", (json.dumps(list(messages)), turn_id))

    async def answer_turn(self, turn_id: int, reply_text: str, response_id: str | None, *,
                          backend: str | None = None, last_item_id: str | None = None) -> None:
        """The model answered: its reply is now part of the conversation and must be delivered.
        With `backend`, the conversation's newest item becomes `last_item_id` in the same transaction."""
        with self._transaction():
            self._db.execute(
                "UPDATE turns SET state = 'answered', reply_text = ?, response_id = ? WHERE id = ?",
                (reply_text, response_id, turn_id))
            if backend is not None:
                self._db.execute(
                    "UPDATE conversations SET last_item_id = ? WHERE backend = ? AND conversation_id ="
                    " (SELECT conversation_id FROM turns WHERE id = ?)", (last_item_id, backend, turn_id))
            self._db.execute(
                "UPDATE inbox SET state = 'answered' WHERE turn_id = ? AND state = 'pending'", (turn_id,))

    async def finish_turn(self, turn_id: int) -> None:
        """The reply is in Slack: the turn and its items are done."""
        await self._end_turn(turn_id, "delivered", DONE)

    async def skip_turn(self, turn_id: int) -> None:
        """Give up on the turn: its items are skipped (reported in the channel by the caller)."""
        await self._end_turn(turn_id, "skipped", SKIPPED)

    async def _end_turn(self, turn_id: int, turn_state: str, item_state: str) -> None:
        now = time.time()
        with self._transaction():
            self._db.execute(
                "UPDATE turns SET state = ?, finished_at = ? WHERE id = ?", (turn_state, now, turn_id))
            self._db.execute(
                "UPDATE inbox SET state = ?, done_at = ? WHERE turn_id = ? AND state IN ('pending', 'answered')",
                (item_state, now, turn_id))

    async def retry_turn(self, turn_id: int) -> None:
        """The request failed before reaching the conversation: the items stay pending, and the next
        attempt reuses the turn's messages in Slack."""
        self._db.execute("UPDATE turns SET state = 'retry' WHERE id = ?", (turn_id,))

    async def abandon_turn(self, turn_id: int) -> None:
        """Close the turn without answering; its items stay pending for a new turn."""
        self._db.execute(
            "UPDATE turns SET state = 'failed', finished_at = ? WHERE id = ?", (time.time(), turn_id))

    # --- conversations -----------------------------------------------------------------------------

    async def conversation(self, channel: str, backend: str) -> str | None:
        row = self._fetchone(
            "SELECT conversation_id FROM conversations WHERE channel = ? AND backend = ?", (channel, backend))
        return row[0] if row else None

    async def set_conversation(self, channel: str, backend: str, conversation_id: str) -> None:
        self._db.execute(
            "INSERT INTO conversations (channel, backend, conversation_id, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (channel, backend) DO UPDATE SET conversation_id = excluded.conversation_id,"
            " created_at = excluded.created_at, last_item_id = NULL",
            (channel, backend, conversation_id, time.time()),
        )

    async def last_item(self, channel: str, backend: str) -> str | None:
        row = self._fetchone(
            "SELECT last_item_id FROM conversations WHERE channel = ? AND backend = ?", (channel, backend))
        return row[0] if row else None

    async def set_last_item(self, channel: str, backend: str, item_id: str | None) -> None:
        self._db.execute("UPDATE conversations SET last_item_id = ? WHERE channel = ? AND backend = ?",
                          (item_id, channel, backend))

    async def forget_conversation(self, channel: str, backend: str) -> None:
        self._db.execute("DELETE FROM conversations WHERE channel = ? AND backend = ?", (channel, backend))

    async def conversation_count(self) -> int:
        (count,) = self._fetchone("SELECT count(*) FROM conversations")
        return int(count)

    # --- chat history (the `chat` backend) ----------------------------------------------------------

    async def chat_history(self, conversation_id: str, *, max_chars: int | None = None) -> list[ChatRecord]:
        """The conversation's messages, oldest first; with `max_chars`, only the newest that fit
        (counting each message's characters) — the caller keeps tool calls with their results."""
        if max_chars is None:
            rows = self._fetchall(
                "SELECT id, message, chars FROM chat_messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,))
        else:
            rows = self._fetchall(
                "SELECT id, message, chars FROM (SELECT id, message, chars, sum(chars) OVER (ORDER BY id DESC)"
                " AS running FROM chat_messages WHERE conversation_id = ?) WHERE running <= ? ORDER BY id",
                (conversation_id, max_chars))
        return [ChatRecord(row[0], json.loads(row[1]), row[2]) for row in rows]

    async def append_chat(self, conversation_id: str, messages: Sequence[dict[str, Any]]) -> int | None:
        """Add messages (OpenAI chat message dicts) in one transaction; return the id of the last."""
        last: int | None = None
        now = time.time()
        with self._transaction():
            for message in messages:
                text = json.dumps(message, ensure_ascii=False)
                cursor = self._db.execute(
                    "INSERT INTO chat_messages (conversation_id, message, chars, created_at) VALUES (?, ?, ?, ?)",
                    (conversation_id, text, len(text), now))
                last = cursor.lastrowid
        return last

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _fetchone(self, sql: str, params: Iterable[object] = ()) -> tuple | None:
        return self._db.execute(sql, tuple(params)).fetchone()

    def _fetchall(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        return self._db.execute(sql, tuple(params)).fetchall()


_ITEM_COLUMNS = "id, channel, kind, order_ts, user_id, text, thread_ts, files, mentions_bot, attempts"


def _lock(path: Path) -> IO[bytes]:
    """Hold an exclusive lock beside the database for as long as the store is open."""
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreInUse(f"another assistant-bridge process is using {path.with_suffix('')}") from None
    return handle


def _checkpoint(path: str) -> None:
    """Copy the write-ahead log into the database file (waits for the disk; run in a thread)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _item(row: tuple) -> InboxItem:
    item_id, channel, kind, order_ts, user, text, thread_ts, files, mentions_bot, attempts = row
    notes = tuple(FileNote(name, mimetype, size) for name, mimetype, size in json.loads(files)) if files else ()
    return InboxItem(id=item_id, channel=channel, kind=ItemKind(kind), order_ts=order_ts, user=user, text=text,
                     thread_ts=thread_ts, files=notes, mentions_bot=bool(mentions_bot), attempts=attempts)


def _just_after(ts: str) -> str:
    """The Slack ts one microsecond after `ts` ("1732600000.000100" → "1732600000.000101")."""
    seconds, _, micros = ts.partition(".")
    total = int(seconds) * 1_000_000 + int((micros or "0").ljust(6, "0")[:6]) + 1
    return f"{total // 1_000_000}.{total % 1_000_000:06d}"


def _marks(ids: Sequence[int]) -> str:
    return ",".join("?" * len(ids))


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
