"""A reply streamed natively in a thread (`chat.startStream` / `appendStream` / `stopStream`).

If the stream expires or fails it becomes an `UpdatingReply` on the same message, so the reply still
completes. Past the length limit a stream is sealed (an open code block closed) and a new one starts.

`chat.startStream` and `chat.stopStream` have small workspace-wide budgets (Tier 2), so a stream is
started only when its stop's turn can be kept for it (see `SlackWriter.start_stream`); the rest of the
answer goes out with the stop itself, and progress appends still waiting for their budget when the
answer is complete are dropped — a finished answer waits for neither budget.
"""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError

from bot.outbound.formatting import MARKDOWN_TEXT_LIMIT, open_fence_at_end
from bot.outbound.live_text import INDICATOR_DELAY, WORKING_TEXT, LiveText, cancel_task, failure_text
from bot.outbound.pacing import Priority
from bot.outbound.posted import PostTag, find_stream, outcome_unknown
from bot.outbound.slack_errors import SLACK_FAILURES
from bot.outbound.updating_reply import OnPost, OnReplace, UpdatingReply
from bot.outbound.writer import SlackWriter

log = logging.getLogger(__name__)

APPEND_INTERVAL = 0.25  # at most four stream appends a second per reply
STREAM_HEADROOM = 64  # characters kept free in a streamed message for a closing code fence
# Slack errors meaning a native stream can no longer be appended to (expired, stopped, gone).
STREAM_GONE = frozenset({"message_not_in_streaming_state", "streaming_state_conflict", "message_not_found",
                         "invalid_stream", "stream_expired"})


class StreamingReply:
    """A reply streamed natively in a thread, falling back to `UpdatingReply` when the stream ends early."""

    def __init__(self, writer: SlackWriter, *, channel: str, thread_ts: str, recipient: str | None,
                 limit: int = MARKDOWN_TEXT_LIMIT, on_post: OnPost | None = None, on_replace: OnReplace | None = None,
                 tag: PostTag | None = None) -> None:
        self._writer = writer
        self.on_post = on_post
        self.on_replace = on_replace
        self._tag = tag  # on the messages posted (a stream's own message cannot carry metadata)
        self.channel = channel
        self.thread_ts = thread_ts
        self._recipient = recipient
        self._limit = limit
        self._live = LiveText()
        self.timestamps: list[str] = []  # one per stream (a new one past the length limit)
        self._sent = 0  # characters of the reply text already in a stream
        self._stream_start = 0  # where in the reply text the current stream began
        self._prefix = ""  # the code fence the current stream reopened
        self._content = ""  # what the current stream shows
        self._open = False
        self._stop_kept = False  # the open stream's stop has its turn of the budget (taken when it started)
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
        await self._end(failure_text(self._live.text, note))

    async def cancel(self) -> list[str]:
        await cancel_task(self._task)
        self._give_back_stop()
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
            self._give_back_stop()
            self._fallback = UpdatingReply(self._writer, channel=self.channel, thread_ts=self.thread_ts,
                                           messages=self.timestamps[-1:], limit=self._limit, shown=self._content,
                                           on_post=self.on_post, on_replace=self.on_replace, tag=self._tag,
                                           first_part=len(self.timestamps) - 1)
            self._fallback.feed(self._prefix + self._live.text[self._stream_start:])
            self._fallback.start()

    async def _catch_up(self, text: str, *, done: bool) -> None:
        """Bring the streams up to `text`: all of it when `done`, else up to the last clean boundary."""
        while True:
            pending = text[self._sent:]
            room = self._limit - STREAM_HEADROOM - len(self._prefix if not self._open else self._content)
            overflow = len(pending) > room
            chunk = pending[: clean_cut(pending, room)] if overflow else (
                pending if done else pending[: clean_cut(pending, len(pending), whole=False)])
            if not self._open:
                if not chunk and not done and self.timestamps:
                    return  # a later stream starts when there is text for it
                await self._open_stream(chunk)
                chunk = ""
            if overflow:
                if chunk:
                    await self._append(chunk, Priority.FINAL)
                await self._close_stream(seal=True)
                continue
            if done:
                await self._close_stream(seal=False, tail=chunk)  # the rest of the answer goes with the stop
            elif chunk:
                await self._append(chunk, Priority.PROGRESS)
            return

    async def _open_stream(self, first: str) -> None:
        markdown = self._prefix + first
        try:
            ts = await self._writer.start_stream(self.channel, thread_ts=self.thread_ts,
                                                 recipient=self._recipient, markdown=markdown)
        except SLACK_FAILURES as exc:  # the stream may have started all the same: find it, never start two
            found = await find_stream(self._writer.client, self.channel, self.thread_ts, markdown) \
                if outcome_unknown(exc) else None
            if found is None:
                self._writer.stops.put_back()  # (no stream: its stop's turn was never needed)
                raise
            ts = found
        if ts is None:  # streams are rate limited: finish in an ordinary message instead
            metadata = self._tag.metadata(len(self.timestamps)) if self._tag is not None else None
            ts = await self._writer.post(self.channel, markdown or WORKING_TEXT, thread_ts=self.thread_ts,
                                         priority=Priority.FINAL, metadata=metadata)
            self.timestamps.append(str(ts))
            if self.on_post is not None:
                await self.on_post(str(ts))
            self._stream_start, self._content = self._sent, markdown or WORKING_TEXT
            self._sent += len(first)
            raise SlackApiError("no stream available", {"ok": False, "error": "stream_expired"})
        self.timestamps.append(ts)
        self._stream_start, self._content, self._open, self._stop_kept = self._sent, markdown, True, True
        self._sent += len(first)
        if self.on_post is not None:
            await self.on_post(ts)

    async def _append(self, chunk: str, priority: Priority) -> None:
        # A progress append still waiting for the budget when the answer is complete is dropped: its text
        # goes out with the stop.
        unless = None if priority is Priority.FINAL else self._live.ended
        if await self._writer.append_stream(self.channel, self.timestamps[-1], chunk, priority=priority,
                                            unless=unless):
            self._content += chunk
            self._sent += len(chunk)

    async def _close_stream(self, *, seal: bool, tail: str = "") -> None:
        """Stop the current stream, adding `tail` (the rest of the text); when sealing it at the length
        limit, close an open code block and remember to reopen it in the next stream."""
        fence = open_fence_at_end(self._content) if seal else None
        closing = ("" if self._content.endswith("\n") else "\n") + fence.marker if fence else ""
        kept, self._stop_kept = self._stop_kept, False
        await self._writer.stop_stream(self.channel, self.timestamps[-1], tail + closing, reserved=kept)
        self._content += tail + closing
        self._sent += len(tail)
        self._open = False
        self._prefix = fence.opening_line + "\n" if fence else ""

    def _give_back_stop(self) -> None:
        if self._stop_kept:
            self._stop_kept = False
            self._writer.stops.put_back()


def clean_cut(text: str, limit: int, *, whole: bool = True) -> int:
    """Where to cut `text` at or before `limit`: after a line break or a space if there is one."""
    window = text[:limit]
    for separator in ("\n", " "):
        at = window.rfind(separator)
        if at > 0:
            return at + 1
    return limit if whole else 0
