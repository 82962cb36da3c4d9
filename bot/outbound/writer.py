"""Every Slack write a reply makes, paced by the shared budgets and retried after a 429 when it must."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.pacing import ChannelPacers, Pacer, Priority
from bot.outbound.posted import find_tagged, notice_metadata, outcome_unknown
from bot.outbound.slack_errors import SLACK_FAILURES, reason

log = logging.getLogger(__name__)

# Slack's limits (per workspace unless said otherwise), with headroom: a burst plus a steady rate that
# together stay under the tier's calls per minute in any 60-second window.
UPDATE_PER_MINUTE, UPDATE_BURST = 40, 10  # chat.update, Tier 3 (50+/min)
APPEND_PER_MINUTE, APPEND_BURST = 80, 20  # chat.appendStream, Tier 4 (100+/min)
START_PER_MINUTE, START_BURST = 15, 5  # chat.startStream and (separately) chat.stopStream, Tier 2 (20+/min)
POST_PER_MINUTE, POST_BURST = 55, 3  # chat.postMessage, 1/s per channel (Slack counts arrivals: headroom)
DEFAULT_RETRY_AFTER = 1.0
MAX_FINAL_ATTEMPTS = 20  # a final write retried after this many 429s in a row is given up (and logged)
NOTICE_TRIES = 3  # a notice whose post went unanswered (and is not in the channel) is sent at most this often
NOTICE_CLOCK_SLACK = 300.0  # seconds: how far before sending a notice its lookup starts (clocks differ)
MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message"})  # Slack: a message to edit is gone


class CleanupLog(Protocol):
    """Where messages still to delete are kept across restarts (the store's StaleMessages)."""

    async def add(self, channel: str, timestamps: Sequence[str]) -> None: ...

    async def done(self, channel: str, ts: str) -> None: ...

    async def pending(self) -> list[tuple[str, str]]: ...


@dataclass
class SlackWriter:
    """The client replies write through (no built-in 429 retry: waits go through the pacers)."""

    client: AsyncWebClient
    updates: Pacer
    deletes: Pacer
    appends: Pacer
    starts: Pacer
    stops: Pacer
    posts: ChannelPacers
    team_id: str | None = None
    cleanup_log: CleanupLog | None = None  # deletes promised survive a restart (see resume_cleanup)
    _cleanup: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)  # deletes in the background

    def share(self, replicas: int) -> None:
        """`replicas` of the app are alive: this one keeps to its share of every workspace-wide budget.
        (`chat.postMessage`'s limit is per channel, and a channel is worked by one replica at a time.)"""
        for pacer in (self.updates, self.deletes, self.appends, self.starts, self.stops):
            pacer.share(1 / max(1, replicas))

    @classmethod
    def create(cls, client: AsyncWebClient, *, team_id: str | None = None) -> SlackWriter:
        return cls(
            client=client,
            updates=Pacer(per_minute=UPDATE_PER_MINUTE, burst=UPDATE_BURST),
            deletes=Pacer(per_minute=UPDATE_PER_MINUTE, burst=UPDATE_BURST),  # chat.delete: Tier 3 as well
            appends=Pacer(per_minute=APPEND_PER_MINUTE, burst=APPEND_BURST),
            starts=Pacer(per_minute=START_PER_MINUTE, burst=START_BURST),
            stops=Pacer(per_minute=START_PER_MINUTE, burst=START_BURST),
            posts=ChannelPacers(per_minute=POST_PER_MINUTE, burst=POST_BURST),
            team_id=team_id,
        )

    async def post(self, channel: str, markdown: str, *, thread_ts: str | None, priority: Priority,
                   unless: asyncio.Event | None = None, metadata: dict[str, Any] | None = None) -> str | None:
        """Post a message (with message `metadata`, if given); None if skipped (rate limited, or `unless`
        was set while waiting)."""
        kwargs: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        if metadata:
            kwargs["metadata"] = metadata
        response = await self._call(self.posts(channel), priority, self.client.chat_postMessage, unless,
                                    channel=channel, markdown_text=markdown, **kwargs)
        return response["ts"] if response else None

    async def update(self, channel: str, ts: str, markdown: str, *, priority: Priority,
                     unless: asyncio.Event | None = None) -> bool:
        """Edit a message; False if skipped (rate limited, or `unless` was set while waiting)."""
        response = await self._call(self.updates, priority, self.client.chat_update, unless,
                                    channel=channel, ts=ts, markdown_text=markdown)
        return response is not None

    async def delete(self, channel: str, ts: str) -> None:
        await self._call(self.deletes, Priority.FINAL, self.client.chat_delete, None, channel=channel, ts=ts)

    async def delete_later(self, channel: str, timestamps: Sequence[str], *, logged: bool = False) -> None:
        """Delete messages in the background, as `chat.delete`'s budget allows: messages a reply replaced
        (their text shows in the new ones, so no turn waits for this). Written to the cleanup log first
        (unless `logged` already), so a process that stops before it gets to them, the next one deletes."""
        if not timestamps:
            return
        if self.cleanup_log is not None and not logged:
            await self.cleanup_log.add(channel, timestamps)
        task = asyncio.create_task(self._delete_all(channel, list(timestamps)), name=f"delete-{channel}")
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def resume_cleanup(self) -> int:
        """At start: delete what an earlier process left to delete; how many messages that is."""
        if self.cleanup_log is None:
            return 0
        by_channel: dict[str, list[str]] = {}
        for channel, ts in await self.cleanup_log.pending():
            by_channel.setdefault(channel, []).append(ts)
        for channel, timestamps in by_channel.items():
            await self.delete_later(channel, timestamps, logged=True)
        return sum(map(len, by_channel.values()))

    async def _delete_all(self, channel: str, timestamps: list[str]) -> None:
        for ts in timestamps:
            try:
                await self.delete(channel, ts)
            except SlackApiError as exc:  # Slack said no: asking again would not change that
                if exc.response.get("error") not in MESSAGE_GONE:
                    log.warning("channel %s: could not delete a replaced reply message (%s)", channel, reason(exc))
            except SLACK_FAILURES as exc:  # (no answer: the next start tries again)
                log.warning("channel %s: could not delete a replaced reply message (%s)", channel, reason(exc))
                continue
            if self.cleanup_log is not None:
                try:
                    await self.cleanup_log.done(channel, ts)
                except Exception as exc:  # noqa: BLE001 - the store failing here: the next start deletes it again
                    log.warning("channel %s: could not note a deleted message (%s)", channel, type(exc).__name__)

    async def settle(self, grace: float) -> int:
        """Wait up to `grace` seconds for the background deletes (at shutdown); how many were left."""
        if self._cleanup:
            await asyncio.wait(set(self._cleanup), timeout=grace)  # (not cancelled: they go on if there is time)
        return len(self._cleanup)

    async def start_stream(self, channel: str, *, thread_ts: str, recipient: str | None,
                           markdown: str) -> str | None:
        """Start a native stream — only if Slack's small budgets allow both its start and its stop right
        now (else None: the reply is written as an ordinary message instead of waiting seconds for a
        stream). The stop's turn is taken now and kept for the stream's end (`stop_stream(reserved=True)`),
        so a finished answer never waits for the budget to close its stream; a stream that never gets to
        its stop gives the turn back (`stops.put_back()`)."""
        kwargs: dict[str, Any] = {"channel": channel, "thread_ts": thread_ts}
        if recipient and self.team_id and not channel.startswith("D"):
            kwargs |= {"recipient_user_id": recipient, "recipient_team_id": self.team_id}
        if markdown:
            kwargs["markdown_text"] = markdown
        if not self.starts.try_acquire():
            return None
        if not self.stops.try_acquire():
            self.starts.put_back()
            return None
        try:
            response = await self.client.chat_startStream(**kwargs)
        except SlackApiError as exc:
            if exc.response.status_code != 429:
                raise
            self.starts.pause(_retry_after(exc))
            self.stops.put_back()
            return None
        return response["ts"]

    async def append_stream(self, channel: str, ts: str, markdown: str, *, priority: Priority,
                            unless: asyncio.Event | None = None) -> bool:
        """Append to a stream; False if skipped (rate limited, or `unless` was set while waiting)."""
        response = await self._call(self.appends, priority, self.client.chat_appendStream, unless,
                                    channel=channel, ts=ts, markdown_text=markdown)
        return response is not None

    async def stop_stream(self, channel: str, ts: str, markdown: str = "", *, reserved: bool = False) -> None:
        """End a stream, adding `markdown` last. `reserved`: the turn kept by `start_stream` is spent."""
        kwargs = {"markdown_text": markdown} if markdown else {}
        if reserved:
            try:
                await self.client.chat_stopStream(channel=channel, ts=ts, **kwargs)
                return
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                self.stops.pause(_retry_after(exc))  # then it waits its turn like any final write
        await self._call(self.stops, Priority.FINAL, self.client.chat_stopStream, None, channel=channel, ts=ts,
                         **kwargs)

    async def _call(self, pacer: Pacer, priority: Priority, method: Any, unless: asyncio.Event | None,
                    **kwargs: Any) -> Any:
        """Call when the budget allows. On 429 the pacer pauses for Retry-After; a FINAL write then
        tries again, anything else is skipped (returns None) — a later write carries its text. A write
        whose `unless` event is set while it waits for the budget is skipped too."""
        for _attempt in range(MAX_FINAL_ATTEMPTS):
            if not await pacer.acquire(priority, unless=unless):
                return None
            try:
                return await method(**kwargs)
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                pacer.pause(_retry_after(exc))
                log.info("slack rate limit on %s; waiting %.0fs", getattr(method, "__name__", "call"),
                         _retry_after(exc))
                if priority is not Priority.FINAL:
                    return None
        raise SlackApiError("rate limited too many times in a row", {"ok": False, "error": "ratelimited"})

    async def notice(self, channel: str, text: str, *, thread_ts: str | None = None) -> str | None:
        """Post a plain-text notice (a failure, a reset), paced with the replies as a final write. A post
        whose answer is lost is looked for (by its own tag) and sent again only if it is not there."""
        kwargs: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        key = f"notice-{secrets.token_hex(8)}"
        since = f"{time.time() - NOTICE_CLOCK_SLACK:.6f}"  # (the lookup reads only the newest messages)
        for attempt in range(NOTICE_TRIES):
            try:
                response = await self._call(self.posts(channel), Priority.FINAL, self.client.chat_postMessage, None,
                                            channel=channel, text=text, metadata=notice_metadata(key), **kwargs)
            except SLACK_FAILURES as exc:
                if attempt == NOTICE_TRIES - 1 or not outcome_unknown(exc):
                    raise
                found = await find_tagged(self.client, channel, thread_ts, key, since)
                if found:
                    return found[0]
                continue
            return response["ts"] if response else None
        return None


def _retry_after(exc: SlackApiError) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else DEFAULT_RETRY_AFTER
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
