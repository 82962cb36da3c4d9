"""Slack user groups (`S…`) to their members, for the access lists: `usergroups.users.list`, cached,
kept current by `subteam_members_changed` events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.slack_errors import SLACK_FAILURES, reason, refused_token

log = logging.getLogger(__name__)

GROUP_TTL = 600.0  # members are fetched again after ten minutes (an event we missed is caught up then)
FAILED_GROUP_TTL = 30.0  # after a failed fetch of a group never fetched, try again this much later


class UserGroups:
    """Cached group-ID → member-IDs lookups. A fetch that fails keeps the members known before (a Slack
    outage does not open or close the door); a group never fetched is then unknown (None)."""

    def __init__(self, client: AsyncWebClient, *, ttl: float = GROUP_TTL,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self._client = client
        self._ttl = ttl
        self._on_refused = on_refused
        self._members: dict[str, frozenset[str]] = {}
        self._fresh_until: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def members(self, group_id: str) -> frozenset[str] | None:
        """The group's members, or None if Slack could not tell (and never told before)."""
        if self._fresh_until.get(group_id, 0.0) > time.monotonic():
            return self._members.get(group_id)
        lock = self._locks.setdefault(group_id, asyncio.Lock())
        async with lock:  # concurrent lookups of one group share one call
            if self._fresh_until.get(group_id, 0.0) <= time.monotonic():
                await self._fetch(group_id)
        return self._members.get(group_id)

    async def warm(self, group_ids: Iterable[str]) -> None:
        """Fetch the groups the settings name at start-up, so the first messages need no lookup."""
        await asyncio.gather(*(self.members(g) for g in dict.fromkeys(group_ids)))

    def changed(self, event: Mapping[str, Any]) -> None:
        """Apply a `subteam_members_changed` event (a delta: added_users, removed_users) to a group we know."""
        group_id = event.get("subteam_id")
        if not isinstance(group_id, str) or group_id not in self._members:
            return  # a group we never looked up: nothing to keep current
        added = {u for u in event.get("added_users") or () if isinstance(u, str)}
        removed = {u for u in event.get("removed_users") or () if isinstance(u, str)}
        self._members[group_id] = frozenset((self._members[group_id] | added) - removed)
        log.info("user group %s changed: %d added, %d removed", group_id, len(added), len(removed))

    async def _fetch(self, group_id: str) -> None:
        try:
            response = await self._client.usergroups_users_list(usergroup=group_id)
        except SLACK_FAILURES as exc:
            refused_token(exc, self._on_refused)
            known = group_id in self._members
            log.warning("usergroups.users.list failed for %s (%s); %s", group_id, reason(exc),
                        "keeping the members known before" if known else "its members are unknown for now")
            self._fresh_until[group_id] = time.monotonic() + (self._ttl if known else FAILED_GROUP_TTL)
            return
        self._members[group_id] = frozenset(u for u in response.get("users") or () if isinstance(u, str))
        self._fresh_until[group_id] = time.monotonic() + self._ttl
