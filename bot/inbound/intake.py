"""The inbox's front door: store first (durably), then wake the channel's worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.inbound.access import AccessPolicy, Verdict
from bot.inbound.events import cut_message, human_message
from bot.messages import ResetRequest
from bot.outbound import sentences
from bot.outbound.channels import ChannelDirectory
from bot.outbound.people import NameDirectory
from bot.settings import Settings
from bot.store import Inbox

log = logging.getLogger(__name__)


class Intake:
    """Accepts Slack events and commands. Returns only after the item is committed, so Slack's ack
    (sent when the listener returns) always follows a durable write."""

    def __init__(self, *, inbox: Inbox, notify: Callable[[str], None], names: NameDirectory,
                 channels: ChannelDirectory, settings: Settings, access: AccessPolicy,
                 prepare: Callable[[str, str], bool] = lambda _channel, _user: False) -> None:
        self._inbox = inbox
        self._channels = channels
        self._prepare = prepare  # has the channel's conversation made ahead (ConversationService.prepare)
        self.access = access
        self._notify = notify  # wakes the channel's worker (ChannelWorkers.notify)
        self._names = names
        self._settings = settings

    async def event(self, event: Mapping[str, Any], *, bot_user_id: str | None) -> bool:
        """Store a human message event; False if it is ignored or a duplicate."""
        message = human_message(event, bot_user_id=bot_user_id)
        if message is None or not self._settings.serves_channel(message.channel):
            return False
        allowed = await self.access.check(message.channel, message.user)
        if allowed is not Verdict.ALLOWED:  # not stored, so never in the conversation; acked all the same
            self.access.turn_away(message, allowed)
            return False
        message, length = cut_message(message, self._settings.max_message_chars)
        if not await self._inbox.add_message(message, durable=False):
            log.debug("duplicate delivery of %s/%s dropped", message.channel, message.ts)
            await self._inbox.sync()  # (the first delivery's commit may still be on its way to the disk)
            return False
        # The disk's sync waits a moment for the turn's request to leave — unless the turn waits for
        # lookups first: then it starts at once, while the loop is free.
        looking = self._prepare(message.channel, message.user)
        self._notify(message.channel)  # the channel's worker may begin while the commit reaches the disk —
        await self._inbox.sync(at_once=looking)  # Slack is acked (when this returns) only once it has
        if length is not None:
            self.access.tell(message, sentences.message_cut(self._settings.max_message_chars, length))
        return True

    async def reset(self, *, channel: str, user: str, key: str) -> bool:
        stored = await self._inbox.add_reset(ResetRequest(channel=channel, user=user, key=key,
                                                          order_ts=slack_ts(time.time())))
        if stored:
            self._notify(channel)
        return stored

    async def user_changed(self, user: Mapping[str, Any]) -> None:
        await self._names.remember(user)

    def member_joined(self, event: Mapping[str, Any], *, bot_user_id: str | None) -> None:
        """`member_joined_channel`: when the bot is the one added, the channel is looked up now, before
        anyone there writes to it (others joining change nothing here)."""
        channel = event.get("channel")
        if bot_user_id and event.get("user") == bot_user_id and isinstance(channel, str):
            self._channels.joined(channel)

    def channel_renamed(self, channel: Mapping[str, Any]) -> None:
        self._channels.renamed(channel)


def slack_ts(seconds: float) -> str:
    """A Slack-shaped timestamp ("1732600000.000100") for items Slack gave no ts (commands)."""
    return f"{seconds:.6f}"
