"""Delivering one assistant reply to Slack: a working indicator at once, then the text, split if long."""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.formatting import MARKDOWN_TEXT_LIMIT, split_markdown

log = logging.getLogger(__name__)

WORKING_TEXT = "_Thinking…_"


class SlackReply:
    """One reply in a channel (or a thread): `start()` shows that the assistant is working, `finish()`
    writes the answer into that same message (and more messages past Slack's length limit)."""

    def __init__(self, client: AsyncWebClient, *, channel: str, thread_ts: str | None,
                 message_ts: str | None = None, limit: int = MARKDOWN_TEXT_LIMIT) -> None:
        self._client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.message_ts = message_ts  # the working indicator, once posted (or resumed after a restart)
        self._limit = limit
        self.posted: list[str] = []

    async def start(self) -> str:
        if self.message_ts is None:
            self.message_ts = await self._post(WORKING_TEXT)
        return self.message_ts

    async def finish(self, text: str) -> list[str]:
        """Write the whole reply; return the ts of every message that holds it, in order."""
        pieces = split_markdown(text.strip() or "_(no answer)_", self._limit)
        first, rest = pieces[0], pieces[1:]
        if self.message_ts is None:
            self.message_ts = await self._post(first)
        else:
            await self._client.chat_update(channel=self.channel, ts=self.message_ts, markdown_text=first)
        timestamps = [self.message_ts]
        for piece in rest:
            timestamps.append(await self._post(piece))
        return timestamps

    async def fail(self, note: str) -> None:
        """Replace the working indicator with a short note (or post the note if there is none)."""
        if self.message_ts is None:
            await self._post(note)
        else:
            await self._client.chat_update(channel=self.channel, ts=self.message_ts, markdown_text=note)

    async def _post(self, markdown: str) -> str:
        kwargs = {"thread_ts": self.thread_ts} if self.thread_ts else {}
        response = await self._client.chat_postMessage(channel=self.channel, markdown_text=markdown, **kwargs)
        ts = response["ts"]
        self.posted.append(ts)
        return ts
