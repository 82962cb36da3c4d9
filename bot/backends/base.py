"""The seam between the conversation service and a model API.

A backend opens a conversation for a channel and streams one turn at a time as typed events. It
raises `BackendError` (classified transient or permanent, with a sentence fit for the channel) and
nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One turn: the channel's new messages (speaker-marked) and the instructions for this turn."""

    conversation_id: str
    channel: str
    instructions: str
    messages: Sequence[str]
    speaker_ids: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    text: str
    response_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


TurnEvent = TextDelta | TurnCompleted


class BackendError(Exception):
    """A model request failed. `transient` failures may succeed if tried again later."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None, code: str | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status = status
        self.code = code
        self.request_id = request_id


class Backend(Protocol):
    """A model API shape (Responses, Chat Completions, Assistants)."""

    name: str
    model: str

    async def create_conversation(self, channel: str) -> str:
        """Start a new conversation for `channel` and return its id."""
        ...

    def stream_turn(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Send the turn and yield text deltas, then exactly one TurnCompleted."""
        ...

    async def check(self) -> str:
        """Reach the model endpoint; return a one-line description or raise BackendError."""
        ...

    async def aclose(self) -> None:
        ...
