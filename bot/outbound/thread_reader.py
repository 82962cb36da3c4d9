"""Reading a thread back from Slack (`conversations.replies`), for a thread the bridge never saw start.

Only when the store cannot tell how a thread started, or a mention arrives in a thread from before the
bot joined: `conversations.replies` is rate limited hard for some apps (one call a minute for commercial
apps outside the Marketplace), so it is never on the path of an ordinary message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import FileNote
from bot.outbound.slack_errors import SLACK_FAILURES, reason, refused_token

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SlackPost:
    """One message of a thread as Slack returns it: `user` (a person, or a bot user), else `app` (an
    integration's name); `is_bot` for any bot's or app's message."""

    ts: str
    text: str
    user: str | None = None
    app: str | None = None
    is_bot: bool = False
    files: tuple[FileNote, ...] = ()


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """The thread's first message and the replies Slack returned (oldest first); `has_more`: Slack holds
    more replies than were asked for."""

    posts: tuple[SlackPost, ...]
    has_more: bool = False


class ThreadReader:
    """`conversations.replies` for one thread; a failure is logged and answered with None."""

    def __init__(self, client: AsyncWebClient, *, on_refused: Callable[[str], None] | None = None) -> None:
        self._client = client
        self._on_refused = on_refused  # told when Slack refuses the bot's token (SlackAuthGate.refused)

    async def read(self, channel: str, thread_ts: str, *, limit: int, latest: str | None = None) -> ThreadPage | None:
        """The thread's first `limit` messages (its first message first), written before `latest`."""
        bounds = {"latest": latest} if latest else {}
        try:
            response = await self._client.conversations_replies(channel=channel, ts=thread_ts, limit=limit, **bounds)
        except SLACK_FAILURES as exc:
            log.warning("conversations.replies failed for %s/%s: %s", channel, thread_ts, reason(exc))
            refused_token(exc, self._on_refused)
            return None
        posts = tuple(post_from(m) for m in response.get("messages") or () if isinstance(m, Mapping) and m.get("ts"))
        return ThreadPage(posts, has_more=bool(response.get("has_more")))


def post_from(message: Mapping[str, Any]) -> SlackPost:
    """A SlackPost from one message object of a Web API answer."""
    profile = message.get("bot_profile") if isinstance(message.get("bot_profile"), Mapping) else {}
    app = message.get("username") or profile.get("name")
    files = tuple(FileNote(name=str(f.get("name") or f.get("title") or "file"), mimetype=str(f.get("mimetype") or ""),
                           size=f.get("size") if isinstance(f.get("size"), int) else None)
                  for f in message.get("files") or () if isinstance(f, Mapping))
    return SlackPost(ts=str(message["ts"]), text=str(message.get("text") or ""), user=message.get("user") or None,
                     app=str(app) if app else None, is_bot=bool(message.get("bot_id") or message.get("subtype")
                                                                 == "bot_message"), files=files)
