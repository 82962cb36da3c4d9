"""Reply messages found again after their post's answer was lost.

Slack has no idempotency key: a `chat.postMessage` that Slack carried out but whose answer never came
back (a 5xx from a load balancer, a dropped connection, a crash before the ts was journalled) would
become a second message if simply sent again. So every message of a reply carries its turn and part in
message metadata (`PostTag.metadata`), and a reply that an earlier attempt may have posted
(`PostTag.look_first`) looks for them among the channel's (or thread's) newest messages before it
posts anything; what it finds it edits instead (`chat.update` sets the same text again: harmless).

`conversations.history` is rate limited hard for some apps, so this runs only on that rare path; if
the lookup itself fails, the reply is posted (a message twice beats an answer never shown).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.slack_errors import SLACK_FAILURES, reason

log = logging.getLogger(__name__)

REPLY_EVENT = "assistant_bridge_reply"  # the metadata event_type of every reply message
LOOKUP_PAGE = 200  # messages per lookup request
LOOKUP_PAGES = 5  # how far back (in pages) to look for a reply's messages


@dataclass(frozen=True, slots=True)
class PostTag:
    """Which turn a reply belongs to. `turn`: the journal's id; `conversation`: the channel's
    conversation id (hashed into the tag, so a new database's turn 1 is not an old database's);
    `look_first`: an earlier attempt (or process) may have posted messages it never heard back about;
    `since`: the lookup reads only messages after it (one page, as a rule)."""

    turn: int
    conversation: str | None = None
    look_first: bool = False
    since: str | None = None  # the ts of the turn's first message: its reply can only be newer

    @property
    def key(self) -> str:
        scope = hashlib.sha256((self.conversation or "").encode()).hexdigest()[:12]
        return f"{scope}:{self.turn}"

    def metadata(self, part: int) -> dict[str, Any]:
        """The message metadata of the reply's `part`-th message."""
        return {"event_type": REPLY_EVENT, "event_payload": {"turn": self.key, "part": part}}


def notice_metadata(key: str) -> dict[str, Any]:
    """The metadata of a notice (a failure, a reset): `key` is the notice's own, made up when it is sent."""
    return {"event_type": REPLY_EVENT, "event_payload": {"turn": key, "part": 0}}


async def find_posted(client: AsyncWebClient, channel: str, thread_ts: str | None,
                      tag: PostTag) -> dict[int, list[str]]:
    """part → the ts of every message of `tag`'s reply already in the channel (or thread), oldest first
    (a part is in Slack twice when a replacement's stale message was not deleted yet, or a post whose
    answer was lost was sent again); {} if none, or if Slack could not be asked (logged)."""
    return await _find_all(client, channel, thread_ts, tag.key, tag.since)


async def find_tagged(client: AsyncWebClient, channel: str, thread_ts: str | None, key: str,
                      since: str | None = None) -> dict[int, str]:
    """part → ts of the newest message whose metadata carries `key`, after `since` (see `find_posted`)."""
    return {part: found[-1] for part, found in (await _find_all(client, channel, thread_ts, key, since)).items()}


def newest(timestamps: Iterable[str]) -> str:
    """The newest of some message timestamps (Slack's ts are seconds.micro: compared as numbers)."""
    return max(timestamps, key=lambda ts: (float(ts), ts))


async def _find_all(client: AsyncWebClient, channel: str, thread_ts: str | None, key: str,
                    since: str | None) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    cursor: str | None = None
    try:
        for _page in range(LOOKUP_PAGES):
            kwargs: dict[str, Any] = {"channel": channel, "limit": LOOKUP_PAGE, "include_all_metadata": True}
            if since:
                kwargs["oldest"] = since
            if cursor:
                kwargs["cursor"] = cursor
            response = await (client.conversations_replies(ts=thread_ts, **kwargs) if thread_ts
                              else client.conversations_history(**kwargs))
            for message in response.get("messages") or ():
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == REPLY_EVENT and payload.get("turn") == key:
                    found.setdefault(int(payload.get("part", 0)), []).append(str(message["ts"]))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
    except SLACK_FAILURES as exc:
        log.warning("channel %s: could not look for the messages an earlier attempt posted (%s); posting anew",
                    channel, reason(exc))
        return {}
    return {part: sorted(set(timestamps), key=lambda ts: (float(ts), ts)) for part, timestamps in found.items()}


# Calls that add something each time they are made: resent after a lost answer, they make it twice.
ADDS_EACH_TIME = frozenset({"chat.postMessage", "chat.startStream", "chat.appendStream", "chat.postEphemeral"})


class UnlessItAdds(AsyncRetryHandler):
    """slack_sdk's connection-error and server-error retry handlers resend a call blindly — after the
    request went out, so Slack may have carried it out. This wrapper lets them resend only calls that
    are the same when made twice (reads, `chat.update`, `chat.delete`, `chat.stopStream`); a post whose
    answer was lost fails instead, and the reply finds it (`find_posted`) before posting again."""

    def __init__(self, inner: AsyncRetryHandler) -> None:
        super().__init__(inner.max_retry_count, inner.interval_calculator)
        self._inner = inner

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:
        if api_method(request.url) in ADDS_EACH_TIME:
            return False
        return await self._inner._can_retry_async(state=state, request=request, response=response, error=error)

    async def prepare_for_next_attempt_async(self, *, state: RetryState, request: HttpRequest,
                                             response: HttpResponse | None = None,
                                             error: Exception | None = None) -> None:
        await self._inner.prepare_for_next_attempt_async(state=state, request=request, response=response, error=error)


def api_method(url: str) -> str:
    """`chat.postMessage` from https://slack.com/api/chat.postMessage?…"""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def outcome_unknown(exc: BaseException) -> bool:
    """Could Slack have carried out the call although it failed? A 5xx, a timeout or a lost connection
    say nothing either way (an `ok: false` answer says it did not)."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", None)  # (one we raise ourselves carries a plain dict)
        return isinstance(status, int) and status >= 500
    return isinstance(exc, SLACK_FAILURES)


async def find_stream(client: AsyncWebClient, channel: str, thread_ts: str, markdown: str) -> str | None:
    """The ts of the native stream a `chat.startStream` whose answer was lost may have started: a stream's
    message cannot carry metadata, so it is the newest untagged bot message in the thread after its
    newest human message that shows exactly what the stream was started with (nothing was appended
    yet). None if there is none, or Slack could not be asked."""
    try:
        response = await client.conversations_replies(channel=channel, ts=thread_ts, limit=LOOKUP_PAGE,
                                                      include_all_metadata=True)
    except SLACK_FAILURES as exc:
        log.warning("channel %s: could not look for a stream whose start went unanswered (%s)", channel, reason(exc))
        return None
    messages = list(response.get("messages") or ())
    humans = [index for index, message in enumerate(messages) if not message.get("bot_id")]
    after = humans[-1] + 1 if humans else 0
    for message in reversed(messages[after:]):
        if message.get("bot_id") and not message.get("metadata") and (message.get("text") or "") == markdown:
            return str(message["ts"])
    return None
