"""Where a turn's messages were written: the thread note they carry, and a late-joined thread's past.

How a thread started comes from the first place that has it: the store's `threads` table, the inbox
(the first message was one we received), the assistant's own reply (recorded when it was delivered), or
— when none has it — Slack's `conversations.replies` with limit 1, once (the answer is stored). A turn
that answers a thread whose messages are not all in the conversation (the bot joined the channel after
the thread started) reads the thread once, and its earlier messages — those the inbox never received,
bounded in number and size — go into the turn's input just before the turn's own messages.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.conversation.prompt import OWN_MESSAGE, clip, speaker_text, thread_note
from bot.outbound.markup import mentioned_users, to_readable
from bot.outbound.people import NameDirectory, sanitize_name
from bot.outbound.thread_reader import SlackPost, ThreadPage, ThreadReader
from bot.store.threads import ThreadRecord

log = logging.getLogger(__name__)

THREAD_READ_LIMIT = 100  # messages one conversations.replies call for a thread's past asks for (one call)
MAX_EARLIER_MESSAGES = 20  # earlier messages of a late-joined thread added to a turn, at most (its first, the newest)
MAX_EARLIER_CHARS = 6000  # … and their characters, at most
MAX_EARLIER_MESSAGE_CHARS = 1500  # one earlier message is cut to this many characters
FAILED_READ_TTL = 60.0  # seconds before a thread Slack would not return is asked for again
MAX_WAITING_PASTS = 1000  # threads whose past was read but is not yet in the conversation (kept in memory)
APP_AUTHOR = "an app"  # the author of a first message written by an integration without a name


class ThreadStore(Protocol):
    """The store's `ThreadLog` (handed in by the wiring)."""

    async def thread(self, channel: str, thread_ts: str) -> ThreadRecord | None: ...

    async def remember_root(self, channel: str, thread_ts: str, *, user: str | None = None, name: str | None = None,
                            text: str, complete: bool = False) -> None: ...

    async def mark_answered(self, channel: str, thread_ts: str) -> None: ...

    async def mark_complete(self, channel: str, thread_ts: str) -> None: ...

    async def answered(self, channel: str, threads: Sequence[str]) -> frozenset[str]: ...

    async def stored(self, channel: str, timestamps: Sequence[str]) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Place:
    """Where a batch was written: `note` for each of its messages ("" at the top level), and the
    thread's `earlier` messages (speaker-marked, with their speakers' names) to send before them."""

    note: str = ""
    earlier: tuple[str, ...] = ()
    earlier_names: tuple[str, ...] = ()


TOP_LEVEL = Place()


@dataclass
class _Past:
    posts: tuple[SlackPost, ...] = field(default_factory=tuple)


class ThreadPlaces:
    """Finds each batch's place (see the module docstring) and remembers what the assistant did there."""

    def __init__(self, *, store: ThreadStore, reader: ThreadReader | None, names: NameDirectory,
                 bot_user_id: str | None) -> None:
        self._store = store
        self._reader = reader
        self._names = names
        self._bot_user_id = bot_user_id
        self._failed: dict[tuple[str, str], float] = {}  # thread → when Slack may be asked again
        self._waiting: OrderedDict[tuple[str, str], _Past] = OrderedDict()  # read, not yet in the conversation

    async def place(self, channel: str, thread_ts: str | None, *, before_ts: str, with_past: bool) -> Place:
        """The place of a batch in `thread_ts` whose first message is `before_ts`; `with_past`: the turn
        is answered, so a thread the conversation lacks the start of brings its earlier messages."""
        if thread_ts is None:
            return TOP_LEVEL
        key = (channel, thread_ts)
        record = await self._store.thread(channel, thread_ts)
        wants_past = with_past and not (record is not None and record.complete)
        past = self._waiting.get(key)
        if (wants_past and past is None) or record is None or not record.has_root:
            page = await self._read(channel, thread_ts, limit=THREAD_READ_LIMIT if wants_past else 1,
                                    latest=before_ts if wants_past else None)
            if page is not None:
                record = await self._remember(channel, thread_ts, page, record)
                if wants_past:
                    past = self._keep_past(key, await self._unseen(channel, page))
                    if page.has_more:
                        log.info("thread %s: Slack returned its first %d messages only", thread_ts, len(page.posts))
        note = await self._note(record, thread_ts)
        if not wants_past or past is None:
            return Place(note)
        earlier, names = await self._earlier(record, thread_ts, past.posts)
        return Place(note, earlier, names)

    async def entered(self, channel: str, thread_ts: str | None) -> None:
        """The turn's messages are in the conversation: a past read for it need not be read again."""
        if thread_ts is not None and self._waiting.pop((channel, thread_ts), None) is not None:
            await self._store.mark_complete(channel, thread_ts)

    async def delivered(self, channel: str, thread_ts: str | None, posted: Sequence[str], text: str) -> None:
        """The assistant's reply is in Slack: it answered in `thread_ts`; a reply at the top level may
        start threads of its own (its first message is the reply itself)."""
        await self.entered(channel, thread_ts)
        if thread_ts is not None:
            await self._store.mark_answered(channel, thread_ts)
            return
        for ts in posted:
            await self._store.remember_root(channel, ts, user=self._bot_user_id, text=text, complete=True)
            await self._store.mark_answered(channel, ts)

    async def answered(self, channel: str, threads: Sequence[str]) -> frozenset[str]:
        return await self._store.answered(channel, threads)

    async def _read(self, channel: str, thread_ts: str, *, limit: int, latest: str | None) -> ThreadPage | None:
        key = (channel, thread_ts)
        if self._reader is None or self._failed.get(key, 0.0) > time.monotonic():
            return None
        page = await self._reader.read(channel, thread_ts, limit=limit, latest=latest)
        if page is None or not page.posts or page.posts[0].ts != thread_ts:
            self._failed[key] = time.monotonic() + FAILED_READ_TTL
            return None
        self._failed.pop(key, None)
        return page

    async def _remember(self, channel: str, thread_ts: str, page: ThreadPage,
                        record: ThreadRecord | None) -> ThreadRecord:
        first = page.posts[0]
        name = None if first.user else (first.app or APP_AUTHOR)
        text = first.text or ", ".join(f.name for f in first.files)
        await self._store.remember_root(channel, thread_ts, user=first.user, name=name, text=text)
        return ThreadRecord(channel, thread_ts, first.user, name, text, record.answered if record else False,
                            record.complete if record else False)

    async def _unseen(self, channel: str, page: ThreadPage) -> tuple[SlackPost, ...]:
        """The messages the bridge never received (people's, not bots'), oldest first."""
        people = [post for post in page.posts if not post.is_bot and post.user != self._bot_user_id]
        stored = await self._store.stored(channel, [post.ts for post in people])
        return tuple(post for post in people if post.ts not in stored)

    def _keep_past(self, key: tuple[str, str], posts: tuple[SlackPost, ...]) -> _Past:
        if len(self._waiting) >= MAX_WAITING_PASTS:
            self._waiting.popitem(last=False)
        past = self._waiting[key] = _Past(posts)
        return past

    async def _note(self, record: ThreadRecord | None, thread_ts: str, *, earlier: bool = False) -> str:
        if record is None or not record.has_root:
            return thread_note(None, None, thread_ts)
        return thread_note(await self._author(record), await self._readable(record.root_text or ""), thread_ts,
                           earlier=earlier)

    async def _author(self, record: ThreadRecord) -> str:
        if record.root_user is not None and record.root_user == self._bot_user_id:
            return OWN_MESSAGE
        if record.root_user is not None:
            return await self._names.name(record.root_user)
        return sanitize_name(record.root_name or "") or APP_AUTHOR

    async def _readable(self, text: str) -> str:
        return to_readable(text, await self._names.names(mentioned_users(text)))

    async def _earlier(self, record: ThreadRecord | None, thread_ts: str,
                       posts: Sequence[SlackPost]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        kept = earlier_within(posts, MAX_EARLIER_MESSAGES, MAX_EARLIER_CHARS)
        if len(kept) < len(posts):
            log.info("thread %s: %d of its %d earlier messages fit in the turn", thread_ts, len(kept), len(posts))
        note = await self._note(record, thread_ts, earlier=True)
        users = [post.user for post in kept if post.user]
        for post in kept:
            users.extend(mentioned_users(post.text))
        names = await self._names.names(users)
        speakers = tuple(names[post.user] if post.user else APP_AUTHOR for post in kept)
        texts = tuple(speaker_text(speaker, clip(to_readable(post.text, names), MAX_EARLIER_MESSAGE_CHARS), post.files,
                                   note) for speaker, post in zip(speakers, kept, strict=True))
        return texts, speakers


def earlier_within(posts: Sequence[SlackPost], max_messages: int, max_chars: int) -> list[SlackPost]:
    """The earlier messages a turn takes: the thread's first (when among them) and then the newest that
    fit, oldest first, at most `max_messages` and about `max_chars` characters (a message counts up to
    MAX_EARLIER_MESSAGE_CHARS)."""
    if not posts or max_messages <= 0:
        return []
    first, rest = posts[0], list(posts[1:])
    kept: list[SlackPost] = []
    used = min(len(first.text), MAX_EARLIER_MESSAGE_CHARS)
    for post in reversed(rest):
        size = min(len(post.text), MAX_EARLIER_MESSAGE_CHARS)
        if len(kept) + 1 >= max_messages or used + size > max_chars:
            break
        kept.append(post)
        used += size
    return [first, *reversed(kept)]
