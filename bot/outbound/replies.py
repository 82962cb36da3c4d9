"""Live replies: the answer appears in Slack as the model writes it.

A reply is fed text deltas while the model streams, then finished with the model's final text (or
failed with a note). Two shapes share that interface:

- `UpdatingReply` (channel mode, and the fallback): the first text (or, if the model is slow, a
  working indicator) is posted at once; the message then grows through paced `chat.update` calls and
  ends with exactly the final text. Past 12,000 characters the message is closed at a clean boundary
  (a code block is closed and reopened) and the reply continues in a new message.
- `StreamingReply` (thread mode): Slack's native streaming (`chat.startStream` / `appendStream` /
  `stopStream`) in the thread; if the stream expires or fails it becomes an `UpdatingReply` on the
  same message, so the reply still completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from slack_sdk.errors import SlackApiError

from bot.outbound.formatting import MARKDOWN_TEXT_LIMIT, open_fence_at_end, split_markdown
from bot.outbound.pacing import Priority
from bot.outbound.writer import SlackWriter

log = logging.getLogger(__name__)

WORKING_TEXT = "_Thinking…_"
INDICATOR_DELAY = 0.5  # post a working indicator if the model has written nothing by then
FIRST_GATHER = 0.25  # after the first text, wait this long for more (or the end) before posting it
UPDATE_INTERVAL = 1.0  # at most one progress update of a message per second
APPEND_INTERVAL = 0.25  # at most four stream appends a second per reply
STREAM_HEADROOM = 64  # characters kept free in a streamed message for a closing code fence
STATUS_ROOM = 200  # characters kept free in a growing message for a status line ("Using a tool…")
CUT_OFF_NOTE = "_…the answer was cut off here._"
# Slack errors meaning a message to update is gone.
MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message"})
# Slack errors meaning a native stream can no longer be appended to (expired, stopped, gone).
STREAM_GONE = frozenset({"message_not_in_streaming_state", "streaming_state_conflict", "message_not_found",
                         "invalid_stream", "stream_expired"})


OnPost = Callable[[str], Awaitable[None]]  # told the ts of every message a reply posts, when it posts it


class Reply(Protocol):
    """One assistant reply in Slack."""

    channel: str

    @property
    def message_ts(self) -> str | None: ...

    def start(self) -> None: ...

    def feed(self, delta: str) -> None: ...

    def status(self, text: str | None) -> None: ...

    async def finish(self, text: str) -> list[str]: ...

    async def fail(self, note: str) -> None: ...

    async def cancel(self) -> list[str]:
        """Stop writing; return the ts of the messages posted so far."""
        ...


class _LiveText:
    """What a reply has to show, and the signal that it changed."""

    def __init__(self) -> None:
        self.text = ""
        self.status: str | None = None
        self.final: str | None = None
        self.changed = asyncio.Event()
        self.ended = asyncio.Event()

    def feed(self, delta: str) -> None:
        if delta:
            self.text += delta
            self.status = None
            self.changed.set()

    def set_status(self, status: str | None) -> None:
        self.status = status
        self.changed.set()

    def end(self, final: str) -> None:
        self.final = final
        self.changed.set()
        self.ended.set()

    async def pause(self, seconds: float) -> None:
        """Let text gather for `seconds` (the pacing of progress writes); the end cuts it short."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.ended.wait()

    async def wait(self, seconds: float) -> None:
        """Until the text changes, or `seconds` pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.changed.wait()


class UpdatingReply:
    """A reply that is posted, then edited as it grows (see the module docstring)."""

    def __init__(self, writer: SlackWriter, *, channel: str, thread_ts: str | None,
                 messages: Sequence[str] = (), limit: int = MARKDOWN_TEXT_LIMIT, shown: str | None = None,
                 on_post: OnPost | None = None) -> None:
        self._writer = writer
        self.channel = channel
        self.thread_ts = thread_ts
        self._limit = limit
        self._live = _LiveText()
        self.timestamps: list[str] = list(messages)  # messages already posted (a resumed reply) and new ones
        self._shown: list[str | None] = [shown] + [None] * (len(messages) - 1) if messages else []  # None: rewrite
        self.on_post = on_post
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
        partial = self._live.text.strip()
        self._live.end(f"{_balanced(partial)}\n\n{CUT_OFF_NOTE}\n\n{note}" if partial else note)
        await self._wait_done()

    async def cancel(self) -> list[str]:
        await _cancel(self._task)
        return list(self.timestamps)

    async def _wait_done(self) -> None:
        if self._task is None:
            self.start()
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        live = self._live
        await live.wait(0 if self.timestamps else INDICATOR_DELAY)
        if live.final is None and not self.timestamps:
            if live.text:
                # Let the first words gather a moment: a quick answer then goes out whole in one post,
                # sparing the workspace's shared chat.update budget for the replies that need it.
                await live.pause(FIRST_GATHER)
            if live.final is None and self._writer.updates.congested:
                # The workspace's edit budget is spent: a message posted now could not be finished for a
                # while. Post the answer whole when it is complete instead.
                await live.ended.wait()
        while live.final is None:
            live.changed.clear()
            had_text = bool(live.text)
            await self._show_progress()
            if had_text:
                await live.pause(UPDATE_INTERVAL)  # (the first words after an indicator go out at once)
            if live.final is None:
                await live.changed.wait()
        final = split_markdown(live.final.strip() or "_(no answer)_", self._limit - STATUS_ROOM)
        await self._show(final, Priority.FINAL)

    async def _show_progress(self) -> None:
        live = self._live
        if not live.text:
            pieces = [f"_{live.status}_" if live.status else WORKING_TEXT]
        else:
            pieces = split_markdown(live.text.lstrip(), self._limit - STATUS_ROOM)  # cut as the final text is
            pieces[-1] = _balanced(pieces[-1]) + (f"\n\n_{live.status}_" if live.status else "")
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
            else:
                ts = await self._writer.post(self.channel, piece, thread_ts=self.thread_ts, priority=level,
                                             unless=unless)
                if ts is None:
                    return  # rate limited: the next write posts it
                self.timestamps.append(ts)
                self._shown.append(piece)
                if self.on_post is not None:
                    await self.on_post(ts)
        if final_upto is None:
            for ts in self.timestamps[len(pieces):]:  # the final text is shorter than what was shown
                try:
                    await self._writer.delete(self.channel, ts)
                except SlackApiError as exc:
                    if exc.response.get("error") not in MESSAGE_GONE:
                        raise
            del self.timestamps[len(pieces):], self._shown[len(pieces):]


    async def _update(self, index: int, piece: str, level: Priority, unless: asyncio.Event | None = None) -> bool:
        try:
            return await self._writer.update(self.channel, self.timestamps[index], piece, priority=level,
                                             unless=unless)
        except SlackApiError as exc:
            if exc.response.get("error") not in MESSAGE_GONE:
                raise
        # Someone deleted the message (or it is not ours any more): post the text anew in its place.
        ts = await self._writer.post(self.channel, piece, thread_ts=self.thread_ts, priority=Priority.FINAL)
        if ts is None:
            return False
        self.timestamps[index] = ts
        if self.on_post is not None:
            await self.on_post(ts)
        return True


class ReplyFactory:
    """Makes the right kind of reply for a turn: streamed natively in threads when so configured."""

    def __init__(self, writer: SlackWriter, *, stream_in_threads: bool) -> None:
        self.writer = writer
        self._stream_in_threads = stream_in_threads

    def create(self, *, channel: str, thread_ts: str | None, recipient: str | None, messages: Sequence[str] = (),
               on_post: OnPost | None = None, stream: bool = True) -> Reply:
        """A new reply; or, given the `messages` an earlier attempt posted, one that rewrites those.
        `stream=False`: never a native stream (an answer known in full is simply written)."""
        if stream and self._stream_in_threads and thread_ts and not messages and recipient:
            return StreamingReply(self.writer, channel=channel, thread_ts=thread_ts, recipient=recipient,
                                  on_post=on_post)
        return UpdatingReply(self.writer, channel=channel, thread_ts=thread_ts, messages=messages, on_post=on_post)


class StreamingReply:
    """A reply streamed natively in a thread, falling back to `UpdatingReply` when the stream ends early."""

    def __init__(self, writer: SlackWriter, *, channel: str, thread_ts: str, recipient: str | None,
                 limit: int = MARKDOWN_TEXT_LIMIT, on_post: OnPost | None = None) -> None:
        self._writer = writer
        self.on_post = on_post
        self.channel = channel
        self.thread_ts = thread_ts
        self._recipient = recipient
        self._limit = limit
        self._live = _LiveText()
        self.timestamps: list[str] = []  # one per stream (a new one past the length limit)
        self._sent = 0  # characters of the reply text already in a stream
        self._stream_start = 0  # where in the reply text the current stream began
        self._prefix = ""  # the code fence the current stream reopened
        self._content = ""  # what the current stream shows
        self._open = False
        self._fallback: UpdatingReply | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def message_ts(self) -> str | None:
        return self.timestamps[0] if self.timestamps else None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"stream-{self.channel}")

    def feed(self, delta: str) -> None:
        self._live.feed(delta)
        if self._fallback is not None:
            self._fallback.feed(delta)

    def status(self, text: str | None) -> None:
        self._live.set_status(text)

    async def finish(self, text: str) -> list[str]:
        return await self._end(text)

    async def fail(self, note: str) -> None:
        # Only appends are possible: close an open code block, then say the answer was cut off.
        partial = self._live.text
        await self._end(f"{_balanced(partial)}\n\n{CUT_OFF_NOTE}\n\n{note}" if partial.strip() else note)

    async def cancel(self) -> list[str]:
        await _cancel(self._task)
        if self._fallback is not None:
            return self.timestamps[:-1] + await self._fallback.cancel()
        return list(self.timestamps)

    async def _end(self, final: str) -> list[str]:
        self._live.end(final)
        if self._task is None:
            self.start()
        assert self._task is not None
        await self._task
        if self._fallback is not None:
            return self.timestamps[:-1] + await self._fallback.finish(self._prefix + final[self._stream_start:])
        return list(self.timestamps)

    async def _run(self) -> None:
        live = self._live
        await live.wait(INDICATOR_DELAY)
        try:
            while True:
                live.changed.clear()
                final = live.final
                await self._catch_up(final if final is not None else live.text, done=final is not None)
                if final is not None:
                    return
                await live.pause(APPEND_INTERVAL)
                if live.final is None:
                    await live.changed.wait()
        except SlackApiError as exc:
            if exc.response.get("error") not in STREAM_GONE or not self.timestamps:
                raise
            log.info("channel %s: the stream ended early (%s); finishing with chat.update", self.channel,
                     exc.response.get("error"))
            self._fallback = UpdatingReply(self._writer, channel=self.channel, thread_ts=self.thread_ts,
                                           messages=self.timestamps[-1:], limit=self._limit, shown=self._content,
                                           on_post=self.on_post)
            self._fallback.feed(self._prefix + self._live.text[self._stream_start:])
            self._fallback.start()

    async def _catch_up(self, text: str, *, done: bool) -> None:
        """Bring the streams up to `text`: all of it when `done`, else up to the last clean boundary."""
        while True:
            pending = text[self._sent:]
            room = self._limit - STREAM_HEADROOM - len(self._prefix if not self._open else self._content)
            overflow = len(pending) > room
            chunk = pending[: _clean_cut(pending, room)] if overflow else (
                pending if done else pending[: _clean_cut(pending, len(pending), whole=False)])
            if not self._open:
                if not chunk and not done and self.timestamps:
                    return  # a later stream starts when there is text for it
                await self._open_stream(chunk)
            elif chunk:
                await self._append(chunk, Priority.FINAL if overflow or done else Priority.PROGRESS)
            if overflow:
                await self._close_stream(seal=True)
                continue
            if done:
                await self._close_stream(seal=False)
            return

    async def _open_stream(self, first: str) -> None:
        markdown = self._prefix + first
        ts = await self._writer.start_stream(self.channel, thread_ts=self.thread_ts, recipient=self._recipient,
                                             markdown=markdown)
        if ts is None:  # streams are rate limited: finish in an ordinary message instead
            ts = await self._writer.post(self.channel, markdown or WORKING_TEXT, thread_ts=self.thread_ts,
                                         priority=Priority.FINAL)
            self.timestamps.append(str(ts))
            if self.on_post is not None:
                await self.on_post(str(ts))
            self._stream_start, self._content = self._sent, markdown or WORKING_TEXT
            self._sent += len(first)
            raise SlackApiError("no stream available", {"ok": False, "error": "stream_expired"})
        self.timestamps.append(ts)
        if self.on_post is not None:
            await self.on_post(ts)
        self._stream_start, self._content, self._open = self._sent, markdown, True
        self._sent += len(first)

    async def _append(self, chunk: str, priority: Priority) -> None:
        if await self._writer.append_stream(self.channel, self.timestamps[-1], chunk, priority=priority):
            self._content += chunk
            self._sent += len(chunk)

    async def _close_stream(self, *, seal: bool) -> None:
        """Stop the current stream; when sealing it at the length limit, close an open code block and
        remember to reopen it in the next stream."""
        fence = open_fence_at_end(self._content) if seal else None
        closing = ("" if self._content.endswith("\n") else "\n") + fence.marker if fence else ""
        await self._writer.stop_stream(self.channel, self.timestamps[-1], closing)
        self._content += closing
        self._open = False
        self._prefix = fence.opening_line + "\n" if fence else ""


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Stop a reply's writer task; a failure it already had is not news any more."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _balanced(markdown: str) -> str:
    """Close a code block left open at the end, so a partial text renders as Markdown."""
    fence = open_fence_at_end(markdown)
    if fence is None:
        return markdown
    return markdown + ("" if markdown.endswith("\n") else "\n") + fence.marker


def _clean_cut(text: str, limit: int, *, whole: bool = True) -> int:
    """Where to cut `text` at or before `limit`: after a line break or a space if there is one."""
    window = text[:limit]
    for separator in ("\n", " "):
        at = window.rfind(separator)
        if at > 0:
            return at + 1
    return limit if whole else 0
