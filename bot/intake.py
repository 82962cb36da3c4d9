"""The inbox's front door: store first (durably), then wake the channel's worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from bot.items import ResetRequest
from bot.names import NameDirectory
from bot.settings import Settings
from bot.slack.events import human_message
from bot.store import Store
from bot.worker import ChannelWorkers

log = logging.getLogger(__name__)


class Intake:
    """Accepts Slack events and commands. Returns only after the item is committed, so Slack's ack
    (sent when the listener returns) always follows a durable write."""

    def __init__(self, *, store: Store, workers: ChannelWorkers, names: NameDirectory, settings: Settings) -> None:
        self._store = store
        self._workers = workers
        self._names = names
        self._settings = settings

    async def event(self, event: Mapping[str, Any], *, bot_user_id: str | None) -> bool:
        """Store a human message event; False if it is ignored or a duplicate."""
        message = human_message(event, bot_user_id=bot_user_id)
        if message is None or not self._settings.serves_channel(message.channel):
            return False
        if not await self._store.add_message(message):
            log.debug("duplicate delivery of %s/%s dropped", message.channel, message.ts)
            return False
        self._workers.notify(message.channel)
        return True

    async def reset(self, *, channel: str, user: str, key: str) -> bool:
        stored = await self._store.add_reset(ResetRequest(channel=channel, user=user, key=key,
                                                          order_ts=slack_ts(time.time())))
        if stored:
            self._workers.notify(channel)
        return stored

    def user_changed(self, user: Mapping[str, Any]) -> None:
        self._names.remember(user)


def slack_ts(seconds: float) -> str:
    """A Slack-shaped timestamp ("1732600000.000100") for items Slack gave no ts (commands)."""
    return f"{seconds:.6f}"
