"""The values that flow from Slack through the inbox to the model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ItemKind(StrEnum):
    MESSAGE = "message"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class FileNote:
    """A file attached to a message, as Slack described it in the event: what it is and where its
    content is (`url`: url_private_download or url_private, read with the bot token). Never the content
    itself: that is fetched for each turn and kept in memory only."""

    name: str
    mimetype: str = ""
    size: int | None = None
    id: str = ""  # Slack's file id (F…), for files.info when the event left the details out
    url: str = ""
    filetype: str = ""  # Slack's own type word ("png", "pdf", "python", "markdown" …)
    access: str = ""  # "check_file_info" (ask files.info), "hidden_by_limit", "tombstone" … or ""


def file_note(file: Mapping[str, Any]) -> FileNote:
    """A Slack file object (from an event or files.info) as the inbox keeps it: what it is and where its
    content is, never the content. A file the event describes only partly (`file_access:
    check_file_info`) keeps its id, for files.info at turn time."""
    size, access, mode = file.get("size"), file.get("file_access"), file.get("mode")
    if access in (None, "", "visible"):
        access = mode if mode in UNREADABLE_MODES else ""
    return FileNote(name=str(file.get("name") or file.get("title") or "file"),
                    mimetype=str(file.get("mimetype") or ""),
                    size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                    id=str(file.get("id") or ""),
                    url=str(file.get("url_private_download") or file.get("url_private") or ""),
                    filetype=str(file.get("filetype") or ""),
                    access=str(access))


# File `mode`s whose content the bot cannot read: over a free workspace's limit, deleted.
UNREADABLE_MODES = frozenset({"hidden_by_limit", "tombstone"})


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A human message, normalised from a Slack event, ready for the inbox."""

    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    files: tuple[FileNote, ...] = ()
    mentions_bot: bool = False
    channel_type: str = "channel"


@dataclass(frozen=True, slots=True)
class ResetRequest:
    """`/assistant reset`: an item in the channel's ordered log, between the messages around it."""

    channel: str
    user: str
    key: str  # unique per invocation (the slash command's trigger_id): a re-delivery is dropped
    order_ts: str  # Slack-shaped time of the command: its place in a channel with no messages yet


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One stored item of a channel's log."""

    id: int
    channel: str
    kind: ItemKind
    order_ts: str
    user: str
    text: str = ""
    thread_ts: str | None = None
    files: tuple[FileNote, ...] = field(default_factory=tuple)
    mentions_bot: bool = False
    attempts: int = 0
    received_at: float = 0.0  # when it was stored (time.time()), for the latency metrics

    @property
    def ts(self) -> str:
        return self.order_ts
