"""The values that flow from Slack through the inbox to the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ItemKind(StrEnum):
    MESSAGE = "message"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class FileNote:
    """A file attached to a message: the model is told it exists, not (yet) what it contains."""

    name: str
    mimetype: str = ""
    size: int | None = None


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
