"""Channel facts the instructions mention (name, direct message or not), cached."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.slack_errors import SLACK_FAILURES, reason, refused_token
from bot.outbound.under_way import UnderWay

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
        self._lookups = UnderWay(self._look_up)  # conversations.info once for every caller at once

    def known(self, channel: str) -> ChannelInfo | None:
        """The channel's facts if cached (no lookup, no wait)."""
        cached = self._cache.get(channel)
        return cached[0] if cached and cached[1] > time.monotonic() else None

    async def info(self, channel: str) -> ChannelInfo:
        known = self.known(channel)
        return known if known is not None else await self._lookups.get(channel)

    def look_up_ahead(self, channel: str) -> bool:
        """Start looking the channel up now, in the background, unless it is known or being looked up.
        True if it is not known yet."""
        if self.known(channel) is not None:
            return False
        self._lookups.start(channel)
        return True

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
