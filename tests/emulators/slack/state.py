"""The workspace the Slack emulator keeps: users, conversations, messages, streams.

Everything here is plain data touched only on the emulator's event loop. Objects are stored in
Slack's own wire shape where Slack returns them, so the Web API can hand out copies directly.
"""

from __future__ import annotations

import copy
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

TEAM_NAME = "Emulated Workspace"
TEAM_DOMAIN = "emulated"
BOT_NAME = "assistant"


class IdFactory:
    """Slack-shaped ids (`U0000000001`): a type letter and ten uppercase digits, unique per prefix."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def next(self, prefix: str) -> str:
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return f"{prefix}{next(counter):010d}"


class TsClock:
    """Message timestamps like `1732600000.000100`: wall clock microseconds, strictly increasing."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        micros = max(int(time.time() * 1_000_000), self._last + 1)
        self._last = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


@dataclass
class User:
    id: str
    name: str
    display_name: str = ""
    real_name: str = ""
    is_bot: bool = False
    deleted: bool = False
    tz: str = "Europe/London"
    bot_id: str | None = None
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False

    def to_slack(self, team_id: str) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "display_name": self.display_name,
            "display_name_normalized": self.display_name,
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "first_name": self.real_name.split(" ")[0] if self.real_name else "",
            "team": team_id,
        }
        if self.bot_id:
            profile["bot_id"] = self.bot_id
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": self.real_name,
            "tz": self.tz,
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": self.is_primary_owner,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
        }


@dataclass
class UserGroup:
    """A user group (`S…`, "subteam"): `@handle` notifies its members."""

    id: str
    handle: str
    users: list[str] = field(default_factory=list)
    date_update: int = field(default_factory=lambda: int(time.time()))
    disabled: bool = False


@dataclass
class StreamState:
    """A native `chat.startStream` message while it may still be appended to."""

    started_at: float
    expires_at: float
    recipient_user_id: str | None = None
    stopped: bool = False

    def active(self, now: float) -> bool:
        return not self.stopped and now < self.expires_at


@dataclass
class Message:
    """One message: `data` is the Slack shape; the rest is what the emulator knows beside it."""

    data: dict[str, Any]
    markdown_text: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    stream: StreamState | None = None

    @property
    def ts(self) -> str:
        return self.data["ts"]

    def to_slack(self) -> dict[str, Any]:
        out = copy.deepcopy(self.data)
        if self.reactions:
            out["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in self.reactions.items()
            ]
        return out

    def to_record(self) -> dict[str, Any]:
        """What `SlackEmulator.messages()` shows: the Slack shape plus sent markdown and edit history."""
        out = self.to_slack()
        out["markdown_text"] = self.markdown_text
        out["history"] = copy.deepcopy(self.history)
        out["streaming"] = self.stream is not None and self.stream.active(time.monotonic())
        return out


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    members: list[str] = field(default_factory=list)
    is_archived: bool = False
    topic: str = ""
    purpose: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    messages: dict[str, Message] = field(default_factory=dict)  # ts -> message, insertion = ts order

    @property
    def channel_type(self) -> str:
        """The `channel_type` Slack puts on message events."""
        if self.is_im:
            return "im"
        return "group" if self.is_private else "channel"

    def to_slack(self, bot_user_id: str) -> dict[str, Any]:
        if self.is_im:
            other = next((m for m in self.members if m != bot_user_id), "")
            return {"id": self.id, "created": self.created, "is_im": True, "is_org_shared": False,
                    "user": other, "is_user_deleted": False, "priority": 0}
        topic = {"value": self.topic, "creator": "", "last_set": 0}
        purpose = {"value": self.purpose, "creator": "", "last_set": 0}
        return {
            "id": self.id, "name": self.name, "name_normalized": self.name,
            "is_channel": not self.is_private, "is_group": self.is_private, "is_im": False,
            "is_mpim": False, "is_private": self.is_private, "created": self.created,
            "is_archived": self.is_archived, "is_general": self.name == "general", "unlinked": 0,
            "is_shared": False, "is_ext_shared": False, "is_org_shared": False,
            "is_pending_ext_shared": False, "is_member": bot_user_id in self.members,
            "creator": "", "topic": topic, "purpose": purpose, "previous_names": [],
            "num_members": len(self.members),
        }

    def sorted_messages(self) -> list[Message]:
        return sorted(self.messages.values(), key=lambda m: ts_key(m.ts))


def ts_key(ts: str) -> tuple[int, int]:
    """Sort key for Slack timestamps (string order breaks when the seconds part changes width)."""
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def is_ts(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    seconds, dot, micros = value.partition(".")
    return bool(dot) and seconds.isdigit() and micros.isdigit()


@dataclass
class Workspace:
    """One team with one installed app (the bot)."""

    team_id: str
    ids: IdFactory
    clock: TsClock
    app_id: str
    bot_id: str
    bot_user_id: str
    users: dict[str, User] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    usergroups: dict[str, UserGroup] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://{TEAM_DOMAIN}.slack.com/"

    def channel_by_ref(self, ref: Any) -> Channel | None:
        """Resolve a channel argument: an id, `#name` or `name` (chat.postMessage accepts names)."""
        if not isinstance(ref, str) or not ref:
            return None
        if ref in self.channels:
            return self.channels[ref]
        name = ref.removeprefix("#")
        return next((c for c in self.channels.values() if c.name == name and not c.is_im), None)

    def visible_to_bot(self, channel: Channel | None) -> bool:
        """Private conversations the bot is not in do not exist as far as the bot can tell."""
        if channel is None:
            return False
        return not (channel.is_private or channel.is_im) or self.bot_user_id in channel.members

    def find_message(self, channel: Channel, ts: Any) -> Message | None:
        return channel.messages.get(ts) if isinstance(ts, str) else None

    def bot_profile(self) -> dict[str, Any]:
        return {"id": self.bot_id, "deleted": False, "name": BOT_NAME, "updated": int(time.time()),
                "app_id": self.app_id, "icons": {"image_36": "", "image_48": "", "image_72": ""},
                "team_id": self.team_id}

    def im_with(self, user_id: str) -> Channel:
        """The bot's direct-message conversation with a user (opened on first use)."""
        for channel in self.channels.values():
            if channel.is_im and user_id in channel.members:
                return channel
        channel = Channel(id=self.ids.next("D"), name=user_id, is_im=True,
                          members=[user_id, self.bot_user_id])
        self.channels[channel.id] = channel
        return channel
