"""Channel facts the instructions mention (name, direct message or not), cached."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.slack_errors import SLACK_FAILURES, reason, refused_token

log = logging.getLogger(__name__)

CHANNEL_TTL = 3600.0
FAILED_LOOKUP_TTL = 60.0


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: str
    name: str | None
    is_direct: bool


class ChannelDirectory:
    """`conversations.info`, cached for an hour per channel."""

    def __init__(self, client: AsyncWebClient, *, ttl: float = CHANNEL_TTL,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self._client = client
        self._on_refused = on_refused  # told when Slack refuses the bot's token (SlackAuthGate.refused)
        self._ttl = ttl
        self._cache: dict[str, tuple[ChannelInfo, float]] = {}
        self._looking: dict[str, asyncio.Future[ChannelInfo]] = {}  # lookups under way (asked once)

    def known(self, channel: str) -> ChannelInfo | None:
        """The channel's facts if cached (no lookup, no wait)."""
        cached = self._cache.get(channel)
        return cached[0] if cached and cached[1] > time.monotonic() else None

    async def info(self, channel: str) -> ChannelInfo:
        known = self.known(channel)
        if known is not None:
            return known
        return await asyncio.shield(self._looking_up(channel))  # (a caller giving up does not stop the others')

    def look_up_ahead(self, channel: str) -> bool:
        """Start looking the channel up now, in the background, unless it is known or being looked up.
        True if it is not known yet."""
        if self.known(channel) is not None:
            return False
        self._looking_up(channel)
        return True

    def _looking_up(self, channel: str) -> asyncio.Future[ChannelInfo]:
        """The channel's lookup under way, started now if none is: every caller shares one call."""
        looking = self._looking.get(channel)
        if looking is None:
            looking = self._looking[channel] = asyncio.ensure_future(self._look_up(channel))
            looking.add_done_callback(lambda done: self._looked_up(channel, done))
        return looking

    def _looked_up(self, channel: str, done: asyncio.Future[ChannelInfo]) -> None:
        self._looking.pop(channel, None)
        if not done.cancelled():
            done.exception()  # (retrieved: a caller re-raises it; one looked up ahead may have none)

    async def _look_up(self, channel: str) -> ChannelInfo:
        ttl = self._ttl
        try:
            response = await self._client.conversations_info(channel=channel)
            data = response["channel"]
            info = ChannelInfo(channel, data.get("name"), bool(data.get("is_im") or data.get("is_mpim")))
        except SLACK_FAILURES as exc:
            log.warning("conversations.info failed for %s: %s", channel, reason(exc))
            info = ChannelInfo(channel, None, channel.startswith("D"))
            ttl = 0.0 if refused_token(exc, self._on_refused) else FAILED_LOOKUP_TTL
        self._cache[channel] = (info, time.monotonic() + ttl)
        return info
