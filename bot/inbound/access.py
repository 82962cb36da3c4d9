"""Who may talk to the bridge and who may reset a channel's conversation.

How the lists combine: a person blocked anywhere — in BRIDGE_BLOCKED_USERS or in the channel's
`blocked_users`, directly or through a user group — is refused; blocking always wins. Otherwise the
channel's `allowed_users`, if it has one, decides alone (it replaces BRIDGE_ALLOWED_USERS there, so a
channel can be narrower or wider than the workspace default); else BRIDGE_ALLOWED_USERS; an empty
allowlist admits everyone. When a user group that decides cannot be resolved (Slack does not answer and
its members were never known), the message is refused for now, never let through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Mapping
from enum import StrEnum
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import IncomingMessage
from bot.outbound import sentences
from bot.outbound.groups import UserGroups
from bot.outbound.people import NameDirectory
from bot.outbound.slack_errors import SLACK_FAILURES, reason
from bot.settings import Settings
from bot.store import AccessNotes

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    UNKNOWN = "unknown"  # a user group that decides could not be resolved


def is_group(entry: str) -> bool:
    return entry.startswith("S")


def listed(user: str, entries: Iterable[str], members: Mapping[str, frozenset[str] | None]) -> bool | None:
    """Is `user` in `entries` (user IDs, or user groups whose `members` are given)? None if only an
    unresolved group could say."""
    unknown = False
    for entry in entries:
        if entry == user:
            return True
        if is_group(entry):
            found = members.get(entry)
            if found is None:
                unknown = True
            elif user in found:
                return True
    return None if unknown else False


def verdict(user: str, *, allowed: frozenset[str], blocked: frozenset[str],
            members: Mapping[str, frozenset[str] | None]) -> Verdict:
    """The rule (see the module docstring), given the lists that apply and the groups' members."""
    is_blocked = listed(user, blocked, members)
    if is_blocked:
        return Verdict.REFUSED
    is_allowed = listed(user, allowed, members) if allowed else True
    if is_allowed is False:
        return Verdict.REFUSED
    if is_blocked is None or is_allowed is None:
        return Verdict.UNKNOWN
    return Verdict.ALLOWED


class AccessPolicy:
    """Applies the settings' lists (global and per channel) with live group membership and admin flags,
    and tells people turned away — once per channel — with an ephemeral note."""

    def __init__(self, *, settings: Settings, groups: UserGroups, people: NameDirectory, notes: AccessNotes,
                 slack: AsyncWebClient) -> None:
        self._settings = settings
        self._groups = groups
        self._people = people
        self._notes = notes
        self._slack = slack
        self._tasks: set[asyncio.Task[None]] = set()

    def lists(self, channel: str) -> tuple[frozenset[str], frozenset[str]]:
        """(allowed, blocked) in `channel`: its own allowlist replaces the global one; blocks add up."""
        settings = self._settings
        allowed = settings.for_channel(channel, "allowed_users", settings.allowed_users)
        blocked = settings.blocked_users | settings.for_channel(channel, "blocked_users", frozenset())
        return allowed, blocked

    async def check(self, channel: str, user: str) -> Verdict:
        """May `user` talk to the assistant in `channel`?"""
        allowed, blocked = self.lists(channel)
        if not allowed and not blocked:
            return Verdict.ALLOWED
        groups = [entry for entry in (*allowed, *blocked) if is_group(entry)]
        found = await asyncio.gather(*(self._groups.members(g) for g in groups))
        return verdict(user, allowed=allowed, blocked=blocked, members=dict(zip(groups, found, strict=True)))

    async def reset_refusal(self, channel: str, user: str, command: str) -> str | None:
        """Why `user` may not reset the channel's conversation (the ephemeral answer), or None if they may:
        they must be allowed to talk there, and be an admin where BRIDGE_RESET_BY (or `reset_by`) says so."""
        if await self.check(channel, user) is not Verdict.ALLOWED:
            return sentences.reset_not_allowed(command)
        if self._settings.for_channel(channel, "reset_by", self._settings.reset_by) == "anyone":
            return None
        admins = self._settings.admins
        groups = [entry for entry in admins if is_group(entry)]
        members = dict(zip(groups, await asyncio.gather(*(self._groups.members(g) for g in groups)), strict=True))
        if listed(user, admins, members) or await self._people.is_admin(user):
            return None
        return sentences.reset_refused(command)

    async def warm(self) -> None:
        """Resolve every user group the settings name (at start-up)."""
        settings = self._settings
        entries = [*settings.allowed_users, *settings.blocked_users, *settings.admins]
        for channel, _values in settings.channel_settings:
            allowed, blocked = self.lists(channel)
            entries += [*allowed, *blocked]
        await self._groups.warm(e for e in entries if is_group(e))

    def group_changed(self, event: Mapping[str, Any]) -> None:
        self._groups.changed(event)

    def turn_away(self, message: IncomingMessage, why: Verdict) -> None:
        """Tell the author, privately, that the message was not taken (in the background: Slack's ack
        must not wait for it). Refused: once per channel. Unknown: every time (it is not their fault)."""
        log.info("channel=%s: a message from %s was not taken (%s)", message.channel, message.user, why)
        self._background(self._turn_away(message, why))

    def tell(self, message: IncomingMessage, text: str) -> None:
        """An ephemeral note to the author of `message`, in the background."""
        self._background(self._post(message, text))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _turn_away(self, message: IncomingMessage, why: Verdict) -> None:
        if why is Verdict.UNKNOWN:
            await self._post(message, sentences.access_unknown())
            return
        if not await self._notes.first_time(message.channel, message.user):
            return
        if not await self._post(message, sentences.not_allowed()):
            await self._notes.forget(message.channel, message.user)

    async def _post(self, message: IncomingMessage, text: str) -> bool:
        kwargs = {"thread_ts": message.thread_ts} if message.thread_ts else {}
        try:
            await self._slack.chat_postEphemeral(channel=message.channel, user=message.user, text=text, **kwargs)
        except SLACK_FAILURES as exc:
            log.warning("channel %s: could not send an ephemeral note to %s (%s)", message.channel, message.user,
                        reason(exc))
            return False
        return True

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
