"""Channel facts the instructions mention (name, direct message or not), known ahead where they can be."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.slack_errors import SLACK_FAILURES, reason, refused_token
from bot.outbound.under_way import Found, Kept

log = logging.getLogger(__name__)

CHANNEL_TTL = 3600.0  # after an hour a channel's facts are asked again, in the background (renames come as events)
FAILED_LOOKUP_TTL = 60.0
PAGE_SIZE = 200  # users.conversations per call (Slack asks for no more than 200 per page)
CHANNEL_TYPES = "public_channel,private_channel"  # (a direct message needs no lookup: see `known`)


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: str
    name: str | None
    is_direct: bool

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> ChannelInfo:
        """From Slack's conversation object (conversations.info, users.conversations)."""
        return cls(str(data["id"]), data.get("name"), bool(data.get("is_im") or data.get("is_mpim")))


class ChannelDirectory:
    """A channel's facts, known before its first message where Slack lets the bridge: every channel the bot
    is in is listed at start (`learn`), a channel it joins is looked up as it joins (`joined`), a rename
    comes as an event (`renamed`), a direct message needs no lookup. Otherwise `conversations.info`, once
    for every caller at once. A fact older than an hour is still given while it is asked again."""

    def __init__(self, client: AsyncWebClient, *, ttl: float = CHANNEL_TTL,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self._client = client
        self._on_refused = on_refused  # told when Slack refuses the bot's token (SlackAuthGate.refused)
        self._ttl = ttl
        self._kept = Kept(self._look_up, retry_after=FAILED_LOOKUP_TTL)  # conversations.info once for all callers
        self._learning: asyncio.Task[int] | None = None

    def known(self, channel: str) -> ChannelInfo | None:
        """The channel's facts if known (no wait). Facts past their hour are given all the same while they
        are asked again in the background; after a failed first lookup, facts without a name for a minute."""
        if channel.startswith("D"):  # a direct message has no name: all the instructions need is that it is one
            return ChannelInfo(channel, None, True)
        return self._kept.now(channel)

    async def info(self, channel: str) -> ChannelInfo:
        known = self.known(channel)
        return known if known is not None else await self._kept.get(channel)

    def look_up_ahead(self, channel: str) -> bool:
        """Start looking the channel up now, in the background, unless it is known or being looked up.
        True if it is not known yet."""
        return not channel.startswith("D") and self._kept.ahead(channel)  # (`known` without asking twice)

    def joined(self, channel: str) -> None:
        """The bot joined the channel (`member_joined_channel`): its facts are asked now, before anyone
        there writes (afresh if it was here before: it may have been renamed meanwhile)."""
        self._kept.again(channel)

    def renamed(self, data: Mapping[str, Any]) -> None:
        """A `channel_rename` or `group_rename` event's channel object: its new name, no lookup (Slack tells
        every app of a public channel's rename; one the bridge does not know is no news to it)."""
        channel, name = data.get("id"), data.get("name")
        if isinstance(channel, str) and isinstance(name, str) and channel in self._kept:
            self._kept.put(channel, ChannelInfo(channel, name, False), self._ttl)

    def start_learning(self) -> None:
        """`learn` in the background (the first messages need not wait for it); `close` stops it."""
        self._learning = asyncio.create_task(self.learn(), name="learn-channels")
        self._learning.add_done_callback(_log_failure)

    async def close(self) -> None:
        if self._learning is not None:
            self._learning.cancel()
            await asyncio.wait({self._learning})

    async def learn(self) -> int:
        """Every channel the bot is a member of, from `users.conversations` (a call per 200): their first
        messages then wait for no lookup. How many were learned; a failure is logged (those channels are
        looked up as their messages come)."""
        learned, cursor = 0, None
        try:
            while True:
                response = await self._client.users_conversations(
                    types=CHANNEL_TYPES, exclude_archived=True, limit=PAGE_SIZE, cursor=cursor)
                for data in response.get("channels") or ():
                    if isinstance(data.get("id"), str) and data["id"] not in self._kept:  # (a lookup's is as new)
                        self._kept.put(data["id"], ChannelInfo.of(data), self._ttl)
                        learned += 1
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    log.info("the names of the bot's %d channels are known", learned)
                    return learned
        except SLACK_FAILURES as exc:
            log.warning("users.conversations failed: %s; channels are looked up as their messages come",
                        reason(exc))
            refused_token(exc, self._on_refused)
            return learned

    async def _look_up(self, channel: str) -> Found[ChannelInfo]:
        try:
            response = await self._client.conversations_info(channel=channel)
        except SLACK_FAILURES as exc:
            log.warning("conversations.info failed for %s: %s", channel, reason(exc))
            ttl = 0.0 if refused_token(exc, self._on_refused) else FAILED_LOOKUP_TTL
            return Found(ChannelInfo(channel, None, False), ttl, from_slack=False)
        return Found(ChannelInfo.of(response["channel"]), self._ttl)


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:  # (Slack's failures are logged by `learn`)
        log.warning("listing the bot's channels failed: %r; they are looked up as their messages come",
                    task.exception())
