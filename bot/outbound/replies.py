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

from collections.abc import Sequence
from typing import Protocol

from bot.outbound.live_text import INDICATOR_DELAY, WORKING_TEXT
from bot.outbound.mentions import MentionGuard, escape_broadcasts
from bot.outbound.posted import PostTag
from bot.outbound.streaming_reply import APPEND_INTERVAL, StreamingReply
from bot.outbound.updating_reply import FIRST_GATHER, UPDATE_INTERVAL, OnPost, OnReplace, UpdatingReply
from bot.outbound.writer import SlackWriter

__all__ = ["APPEND_INTERVAL", "FIRST_GATHER", "INDICATOR_DELAY", "UPDATE_INTERVAL", "WORKING_TEXT", "OnPost",
           "OnReplace", "PostTag", "QuietReply", "Reply", "ReplyFactory", "StreamingReply", "UpdatingReply"]


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


class ReplyFactory:
    """Makes the right kind of reply for a turn: streamed natively in threads when so configured."""

    def __init__(self, writer: SlackWriter, *, stream_in_threads: bool, allow_broadcast_mentions: bool = False) -> None:
        self.writer = writer
        self._stream_in_threads = stream_in_threads
        self._allow_broadcast_mentions = allow_broadcast_mentions

    def create(self, *, channel: str, thread_ts: str | None, recipient: str | None, messages: Sequence[str] = (),
               on_post: OnPost | None = None, on_replace: OnReplace | None = None, stream: bool = True,
               tag: PostTag | None = None) -> Reply:
        """A new reply; or, given the `messages` an earlier attempt posted, one that rewrites those.
        `on_post` is told every message posted; `on_replace` (old, new) of messages posted in place of
        others, before those are deleted. `stream=False`: never a native stream (an answer known in full
        is simply written). `tag`: the turn on every message posted, and whether to look for ones posted
        before (see posted.py) — such a reply is written as an ordinary message: it may have to edit one
        found. Every reply the model's text reaches Slack through is made here, so here its broadcast
        mentions are defused (unless BRIDGE_ALLOW_BROADCAST_MENTIONS)."""
        reply: Reply
        if stream and self._stream_in_threads and thread_ts and not messages and recipient \
                and not (tag is not None and tag.look_first):
            reply = StreamingReply(self.writer, channel=channel, thread_ts=thread_ts, recipient=recipient,
                                   on_post=on_post, on_replace=on_replace, tag=tag)
        else:
            reply = UpdatingReply(self.writer, channel=channel, thread_ts=thread_ts, messages=messages,
                                  on_post=on_post, on_replace=on_replace, tag=tag)
        return reply if self._allow_broadcast_mentions else QuietReply(reply)


class QuietReply:
    """A reply whose text — streamed, final or failed — notifies no channel or group (see mentions.py)."""

    def __init__(self, inner: Reply) -> None:
        self._inner = inner
        self._guard = MentionGuard()
        self.channel = inner.channel

    @property
    def message_ts(self) -> str | None:
        return self._inner.message_ts

    def start(self) -> None:
        self._inner.start()

    def feed(self, delta: str) -> None:
        self._inner.feed(self._guard.feed(delta))

    def status(self, text: str | None) -> None:
        self._inner.status(text)

    async def finish(self, text: str) -> list[str]:
        return await self._inner.finish(escape_broadcasts(text))

    async def fail(self, note: str) -> None:
        self._inner.feed(self._guard.flush())
        await self._inner.fail(escape_broadcasts(note))

    async def cancel(self) -> list[str]:
        return await self._inner.cancel()
