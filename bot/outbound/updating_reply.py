"""A reply posted at once (its first words, or a working indicator) and then edited as it grows.

The message grows through paced `chat.update` calls and ends with exactly the final text. Past
12,000 characters the message is closed at a clean boundary (a code block is closed and reopened)
and the reply continues in a new message.

The workspace's `chat.update` budget (about 50 a minute for every channel together) is what replies
streaming at once share; the final text must not queue behind it. So when the final edit would wait
longer than `FINAL_EDIT_WAIT`, the final text is posted as a new message instead (`chat.postMessage`'s
budget is per channel) and the partial message is deleted: a replacement, journalled before the
delete, so a crash in between still leaves one message (`_adopt` keeps the newest of a part, deletes
the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.outbound.formatting import MARKDOWN_TEXT_LIMIT, split_markdown
from bot.outbound.live_text import INDICATOR_DELAY, WORKING_TEXT, LiveText, balanced, cancel_task, failure_text
from bot.outbound.pacing import Priority
from bot.outbound.posted import PostTag, find_posted, newest
from bot.outbound.writer import MESSAGE_GONE, SlackWriter

FIRST_GATHER = 0.25  # after the first text, wait this long for more (or the end) before posting it
UPDATE_INTERVAL = 1.0  # at most one progress update of a message per second
STATUS_ROOM = 200  # characters kept free in a growing message for a status line ("Using a tool…")
FINAL_EDIT_WAIT = 1.0  # seconds a final edit may wait for the edit budget; beyond, the final is posted anew
STILL_STREAMING = "streaming_state_conflict"  # chat.update on a message that is still a native stream

OnPost = Callable[[str], Awaitable[None]]  # told the ts of every message a reply posts, when it posts it
OnReplace = Callable[[Sequence[str], Sequence[str]], Awaitable[None]]  # (old, new): messages posted in place of


class UpdatingReply:
    """A reply that is posted, then edited as it grows (see the module docstring)."""

    def __init__(self, writer: SlackWriter, *, channel: str, thread_ts: str | None,
                 messages: Sequence[str] = (), limit: int = MARKDOWN_TEXT_LIMIT, shown: str | None = None,
                 on_post: OnPost | None = None, on_replace: OnReplace | None = None, tag: PostTag | None = None,
                 first_part: int = 0) -> None:
        self._writer = writer
        self.channel = channel
        self.thread_ts = thread_ts
        self._limit = limit
        self._live = LiveText()
        self.timestamps: list[str] = list(messages)  # messages already posted (a resumed reply) and new ones
        self._shown: list[str | None] = [shown] + [None] * (len(messages) - 1) if messages else []  # None: rewrite
        self.on_post = on_post
        self.on_replace = on_replace  # told before the old messages are deleted (without it: on_post, new ones)
        self._tag = tag  # every message posted carries it (see posted.py); `first_part`: this reply's first
        self._first_part = first_part  # message's place among its turn's (a stream's fallback goes on from it)
        self._task: asyncio.Task[None] | None = None

    @property
    def message_ts(self) -> str | None:
        return self.timestamps[0] if self.timestamps else None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"reply-{self.channel}")

    def feed(self, delta: str) -> None:
        self._live.feed(delta)

    def status(self, text: str | None) -> None:
        self._live.set_status(text)

    async def finish(self, text: str) -> list[str]:
        """Write exactly `text`; return the ts of every message holding it, in order."""
        self._live.end(text)
        await self._wait_done()
        return list(self.timestamps)

    async def fail(self, note: str) -> None:
        """End the reply with what was written so far (marked as cut off) and `note`."""
        self._live.end(failure_text(self._live.text.strip(), note))
        await self._wait_done()

    async def cancel(self) -> list[str]:
        await cancel_task(self._task)
        return list(self.timestamps)

    async def _wait_done(self) -> None:
        if self._task is None:
            self.start()
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        live = self._live
        if self._tag is not None and self._tag.look_first:  # an earlier attempt may have posted unheard of
            await self._adopt(await find_posted(self._writer.client, self.channel, self.thread_ts, self._tag))
        await live.wait(0 if self.timestamps else INDICATOR_DELAY)
        if live.final is None and not self.timestamps:
            if live.text:
                # Let the first words gather a moment: a quick answer then goes out whole in one post,
                # sparing the workspace's shared chat.update budget for the replies that need it.
                await live.pause(FIRST_GATHER)
        growing = live.final is None  # a message shown before the end will need a final edit: keep it a call
        if growing:
            self._writer.updates.hold()
        try:
            while live.final is None:
                live.changed.clear()
                had_text = bool(live.text)
                await self._show_progress()
                if had_text:
                    await live.pause(UPDATE_INTERVAL)  # (the first words after an indicator go out at once)
                if live.final is None:
                    await live.changed.wait()
            await self._finish(split_markdown(live.final.strip() or "_(no answer)_", self._limit - STATUS_ROOM))
        finally:
            if growing:
                self._writer.updates.release()

    async def _adopt(self, found: dict[int, list[str]]) -> None:
        """Take the messages an earlier attempt posted as this reply's (part → every ts tagged with it,
        oldest first): of each part the newest, since a replacement is newer than what it replaced and a
        journalled message may have been replaced before the journal heard of it. The others are stale
        (a replacement's old message not deleted yet, a post resent after a lost answer): deleted."""
        stale: list[str] = []
        for index, journalled in enumerate(self.timestamps):
            tagged = found.get(self._first_part + index, [])
            keep = newest([journalled, *tagged])
            if keep != journalled:
                await self._replaced([journalled], [keep])
                self.timestamps[index], self._shown[index] = keep, None
            stale += [ts for ts in {journalled, *tagged} if ts != keep]
        index = len(self.timestamps)
        while self._first_part + index in found:
            *older, keep = found[self._first_part + index]
            self.timestamps.append(keep)
            self._shown.append(None)  # rewritten with this attempt's text
            if self.on_post is not None:
                await self.on_post(keep)
            stale += older
            index += 1
        await self._delete(stale)

    def _metadata(self, index: int) -> dict[str, Any] | None:
        return self._tag.metadata(self._first_part + index) if self._tag is not None else None

    async def _show_progress(self) -> None:
        live = self._live
        if not live.text:
            pieces = [f"_{live.status}_" if live.status else WORKING_TEXT]
        else:
            pieces = split_markdown(live.text.lstrip(), self._limit - STATUS_ROOM)  # cut as the final text is
            pieces[-1] = balanced(pieces[-1]) + (f"\n\n_{live.status}_" if live.status else "")
        first = not any(self._shown)
        await self._show(pieces, Priority.FIRST if first else Priority.PROGRESS, final_upto=len(pieces) - 1)

    async def _show(self, pieces: list[str], priority: Priority, final_upto: int | None = None) -> None:
        """Make message i show pieces[i]; pieces before `final_upto` are settled and written as FINAL."""
        settled = len(pieces) if final_upto is None else final_upto
        for index, piece in enumerate(pieces):
            level = Priority.FINAL if index < settled else priority
            # A progress write still waiting for the budget is dropped once the answer is complete.
            unless = None if level is Priority.FINAL else self._live.ended
            if index < len(self.timestamps):
                if self._shown[index] != piece and await self._update(index, piece, level, unless):
                    self._shown[index] = piece
            elif not await self._post(piece, level, unless):
                return  # rate limited: the next write posts it

    async def _finish(self, pieces: list[str]) -> None:
        """Make the reply's messages show exactly `pieces`, the final text. Each is edited — unless the
        edit would wait longer than FINAL_EDIT_WAIT for the workspace's budget: then it and every message
        after it are posted anew and the old ones deleted. Messages beyond the final text are deleted."""
        for index, piece in enumerate(pieces):
            if index >= len(self.timestamps):
                await self._post(piece, Priority.FINAL)
            elif self._shown[index] != piece:
                if self._writer.updates.delay(Priority.FINAL) > FINAL_EDIT_WAIT:
                    await self._replace(pieces, index)
                    return
                if await self._update(index, piece, Priority.FINAL):
                    self._shown[index] = piece
        await self._delete(self.timestamps[len(pieces):])  # the final text is shorter than what was shown
        del self.timestamps[len(pieces):], self._shown[len(pieces):]

    async def _post(self, piece: str, level: Priority, unless: asyncio.Event | None = None) -> bool:
        """Post the reply's next message; False if skipped (rate limited, or `unless` set while waiting)."""
        ts = await self._writer.post(self.channel, piece, thread_ts=self.thread_ts, priority=level, unless=unless,
                                     metadata=self._metadata(len(self.timestamps)))
        if ts is None:
            return False
        self.timestamps.append(ts)
        self._shown.append(piece)
        if self.on_post is not None:
            await self.on_post(ts)
        return True

    async def _replace(self, pieces: list[str], start: int) -> None:
        """Post pieces[start:] as new messages, journal them in place of the reply's messages from `start`
        on, then delete those (the journal first: a crash in between leaves the old ones stale, not ours)."""
        old, new = self.timestamps[start:], []
        for index in range(start, len(pieces)):
            ts = await self._writer.post(self.channel, pieces[index], thread_ts=self.thread_ts,
                                         priority=Priority.FINAL, metadata=self._metadata(index))
            assert ts is not None  # (a final post waits its turn: it is never skipped)
            new.append(ts)
        await self._replaced(old, new)
        self.timestamps[start:], self._shown[start:] = new, list(pieces[start:])
        await self._writer.delete_later(self.channel, old)  # the final text shows: nothing waits for the delete

    async def _replaced(self, old: list[str], new: list[str]) -> None:
        if self.on_replace is not None:
            await self.on_replace(old, new)
        elif self.on_post is not None:
            for ts in new:
                await self.on_post(ts)

    async def _delete(self, timestamps: Sequence[str]) -> None:
        for ts in timestamps:
            try:
                await self._writer.delete(self.channel, ts)
            except SlackApiError as exc:
                if exc.response.get("error") not in MESSAGE_GONE:
                    raise

    async def _update(self, index: int, piece: str, level: Priority, unless: asyncio.Event | None = None) -> bool:
        try:
            return await self._writer.update(self.channel, self.timestamps[index], piece, priority=level,
                                             unless=unless)
        except SlackApiError as exc:
            if exc.response.get("error") == STILL_STREAMING:
                # An earlier attempt's stream was left open (its append's answer was lost): end it, then edit.
                await self._writer.stop_stream(self.channel, self.timestamps[index])
                return await self._writer.update(self.channel, self.timestamps[index], piece, priority=level,
                                                 unless=unless)
            if exc.response.get("error") not in MESSAGE_GONE:
                raise
        # Someone deleted the message (or it is not ours any more): post the text anew in its place.
        ts = await self._writer.post(self.channel, piece, thread_ts=self.thread_ts, priority=Priority.FINAL,
                                     metadata=self._metadata(index))
        if ts is None:
            return False
        await self._replaced([self.timestamps[index]], [ts])
        self.timestamps[index] = ts
        return True
