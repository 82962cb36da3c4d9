"""What the emulator delivers to the app, and how every delivery attempt went."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# Slack re-delivers an unacknowledged event up to three times.
MAX_RETRIES = 3
# Only Events API deliveries are retried; a slash command that is not acked in time just fails.
RETRIED_TYPES = frozenset({"events_api"})


@dataclass
class Envelope:
    """One thing delivered to the app: an event, a slash command, an interaction.

    `id` is the Socket Mode envelope_id (kept across re-deliveries); `attempts` lists each
    delivery with its time and outcome; `acked_at`/`ack_payload` record the app's answer.
    """

    type: str
    payload: dict[str, Any]
    transport: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    retry_attempt: int = 0
    retry_reason: str = ""
    created_at: float = field(default_factory=time.time)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    acked_at: float | None = None
    ack_payload: dict[str, Any] | None = None
    gave_up: bool = False

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    @property
    def event(self) -> dict[str, Any] | None:
        """The inner event of an events_api envelope."""
        return self.payload.get("event") if self.type == "events_api" else None

    @property
    def event_id(self) -> str | None:
        return self.payload.get("event_id") if self.type == "events_api" else None

    def retryable(self) -> bool:
        return self.type in RETRIED_TYPES and self.retry_attempt < MAX_RETRIES


class Delivery(Protocol):
    """A way of getting envelopes to the app: Socket Mode or signed HTTP requests."""

    def deliver(self, envelope: Envelope) -> None: ...

    async def close(self) -> None: ...


AckCallback = Callable[[Envelope], None]
ViolationCallback = Callable[[str], None]
