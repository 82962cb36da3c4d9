"""Who said it: Slack user IDs to the names the model sees."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.slack_errors import SLACK_FAILURES, reason, refused_token
from bot.outbound.under_way import Found, Kept

log = logging.getLogger(__name__)

NAME_TTL = 3600.0  # a name is looked up again after an hour (sooner when user_change says it changed)
FAILED_LOOKUP_TTL = 60.0  # after a failed lookup, try again a minute later
MAX_NAME_LENGTH = 48
MAX_CACHED_NAMES = 50_000

# Brackets (ASCII and full-width), line breaks, control characters, and the invisible ones that could hide
# or reorder a marker (zero-width spaces, bidi overrides and isolates, soft hyphen, BOM).
_FORBIDDEN = re.compile("[\\[\\]<>\uff3b\uff3d\u3010\u3011\r\n\t\u2028\u2029\x00-\x1f\x7f-\x9f"
                        "\u00ad\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")


def sanitize_name(raw: str) -> str:
    """A name safe to put inside the speaker marker: no brackets or line breaks, bounded length."""
    name = _SPACES.sub(" ", _FORBIDDEN.sub(" ", raw)).strip()
    if len(name) > MAX_NAME_LENGTH:
        name = name[: MAX_NAME_LENGTH - 1].rstrip() + "…"
    return name


def display_name(user: Mapping[str, Any]) -> str:
    """Slack's name for a user: profile.display_name → profile.real_name → name → the user ID."""
    profile = user.get("profile") or {}
    for candidate in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"),
                      user.get("name"), user.get("id")):
        if isinstance(candidate, str) and sanitize_name(candidate):
            return sanitize_name(candidate)
    return "someone"


def is_workspace_admin(user: Mapping[str, Any]) -> bool:
    """users.info's flags: an admin, an owner or the primary owner of the workspace."""
    return any(user.get(flag) is True for flag in ("is_admin", "is_owner", "is_primary_owner"))


Claim = Callable[[str, str], Awaitable[str]]  # (name key, user ID) → the user ID holding that name


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    admin: bool | None  # a workspace admin or owner; None if Slack could not tell (the lookup failed)


class NameDirectory:
    """Cached user-ID → name lookups through `users.info` (one call for every caller at once); a name past
    its hour is given while it is asked again (`user_change` brings a changed one sooner)."""

    def __init__(self, client: AsyncWebClient, *, ttl: float = NAME_TTL,
                 on_refused: Callable[[str], None] | None = None, claim: Claim | None = None) -> None:
        self._client = client
        self._on_refused = on_refused  # told when Slack refuses the bot's token (SlackAuthGate.refused)
        self._ttl = ttl
        self._people = Kept(self._lookup, retry_after=FAILED_LOOKUP_TTL, limit=MAX_CACHED_NAMES)
        self._claims: dict[str, str] = {}  # a name as the model sees it (casefolded) → the user shown by it
        self._claim = claim  # the durable record of those (SpeakerNames.claim), if there is one

    async def name(self, user_id: str) -> str:
        return (await self._people.get(user_id)).name

    def look_up_ahead(self, user_id: str) -> bool:
        """Start looking the user up now, in the background, unless the name is known or being looked up
        (a message's author, while the message reaches the disk: its turn then finds the name). True if
        the name is not known yet."""
        return self._people.ahead(user_id)

    def known(self, user_ids: Iterable[str]) -> dict[str, str] | None:
        """Each user's name if every one is cached (no lookup, no wait); None if any is not."""
        found: dict[str, str] = {}
        for user_id in user_ids:
            person = self._people.now(user_id)
            if person is None:
                return None
            found[user_id] = person.name
        return found

    async def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(user_ids))
        found = await asyncio.gather(*(self.name(user_id) for user_id in unique))
        return dict(zip(unique, found, strict=True))

    async def remember(self, user: Mapping[str, Any]) -> None:
        """Take a fresh user object (from a `user_change` event) into the cache."""
        user_id = user.get("id")
        if isinstance(user_id, str):
            self._people.put(user_id, Person(await self._unique(user_id, user), is_workspace_admin(user)), self._ttl)

    async def is_admin(self, user_id: str) -> bool | None:
        """Is the user a workspace admin or owner? None if Slack could not tell (the lookup failed)."""
        person = self._people.fresh(user_id)  # (a flag past its hour is not taken: Slack is asked now)
        if person is None or person.admin is None:
            self._people.forget(user_id)  # (and after a failed lookup, asked again)
            person = await self._people.get(user_id)
        return person.admin

    async def _lookup(self, user_id: str) -> Found[Person]:
        try:
            response = await self._client.users_info(user=user_id)
        except SLACK_FAILURES as exc:
            log.warning("users.info failed for %s: %s; using the user ID as the name", user_id, reason(exc))
            # (an outage: the name is asked again a minute later; a refused token: once it works)
            ttl = 0.0 if refused_token(exc, self._on_refused) else FAILED_LOOKUP_TTL
            return Found(Person(user_id, None), ttl, from_slack=False)
        return Found(Person(await self._unique(user_id, response["user"]), is_workspace_admin(response["user"])),
                     self._ttl)

    async def _unique(self, user_id: str, user: Mapping[str, Any]) -> str:
        """The user's name, unless another user already speaks under it (Slack lets two people pick the
        same display name, or one pick another's): then the name with their unique user name, so one
        speaker can never pass for another. The first to be seen keeps the plain name, for good."""
        name = display_name(user)
        for candidate in (name, f"{name} (@{sanitize_name(str(user.get('name') or user_id))})", f"{name} ({user_id})"):
            key = candidate.casefold()
            holder = self._claims.get(key) or (await self._claim(key, user_id) if self._claim else user_id)
            self._claims[key] = holder
            if holder == user_id:
                return candidate
        return user_id
