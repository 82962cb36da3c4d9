"""The seam between the conversation service and a model API.

A backend opens a conversation for a channel and streams one turn at a time as typed events. A turn
may take several model requests: when the model calls tools, the backend runs them through the
request's `run_tools` and sends their results back, for at most `max_tool_rounds` rounds. It raises
`BackendError` (classified, with a sentence fit for the channel) and nothing else.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from bot.settings import DEFAULT_MAX_TOOL_ROUNDS as MAX_TOOL_ROUNDS  # rounds of tool calls per turn

ROUND_SEPARATOR = "\n\n"  # between the text the model writes before a tool call and after it
# The original sample's answer to a function nobody provides (JSON text, as tool results travel).
NO_FUNCTION = '{"status": "error", "message": "No function found"}'
CONVERSATION_GONE = "conversation_gone"  # BackendError.code: the conversation no longer exists at the service
SLACK_FILES_DOWN = "slack_files_down"  # BackendError.code: Slack would not hand over a shared file just now


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a function to be called."""

    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """A function's result (always text: JSON, or an error object) for the model."""

    call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file's content for the model, beside a message's text: an image it can look at, or a PDF
    it can read. Held in memory for the turn only (the text already names and describes the file, so
    a backend that drops the attachment loses no words — see `Vision`)."""

    kind: str  # IMAGE or PDF
    name: str
    mimetype: str
    data: bytes = field(repr=False)

    def data_url(self) -> str:
        """The content as a `data:` URL (what the APIs take inline)."""
        return f"data:{self.mimetype};base64,{base64.b64encode(self.data).decode('ascii')}"


IMAGE, PDF = "image", "pdf"


ToolRunner = Callable[[Sequence[ToolCall]], Awaitable[list[ToolOutput]]]


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One turn: the channel's new messages (speaker-marked) and the instructions for this turn.

    `attachments[i]` are the contents of message i's files the model may look at (images, PDFs); the
    text itself already names every file. `tool_outputs` continue a turn whose tool calls were left
    unanswered (after a crash) instead of sending messages. `tools` are function tools (OpenAI
    function-tool shape: name, description, parameters); `hosted_tools` are passed through as they are (Responses only).
    """

    conversation_id: str
    channel: str
    instructions: str
    messages: Sequence[str]
    note: str = ""  # this turn's facts (whom to address, the date), sent after the history, before `messages`
    speaker_ids: Sequence[str] = field(default_factory=tuple)
    speaker_names: Sequence[str] = field(default_factory=tuple)
    tools: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    hosted_tools: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    run_tools: ToolRunner | None = None
    max_tool_rounds: int = MAX_TOOL_ROUNDS
    tool_outputs: Sequence[ToolOutput] = field(default_factory=tuple)
    safety_identifier: str | None = None  # the addressed speaker, salted and hashed (see conversation/service.py)
    attachments: Sequence[Sequence[Attachment]] = field(default_factory=tuple)  # per message, as `messages`

    def attached(self, index: int) -> Sequence[Attachment]:
        """The attachments of message `index` (none when the request carries none)."""
        return self.attachments[index] if index < len(self.attachments) else ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class TextDone:
    """The turn's text is final (the model said so before its stream ended: `response.output_text.done`
    with no tools offered, a Chat Completions `finish_reason` of stop): it can be shown now, while the
    rest of the stream (usage, ids) is read. TurnCompleted still follows, with the same text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolsRunning:
    """The model called these tools; their results go back to it (the reply can say so)."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    text: str
    response_id: str | None = None
    last_item_id: str | None = None  # the conversation's newest item after this turn (for recovery)
    input_tokens: int | None = None
    output_tokens: int | None = None


TurnEvent = TextDelta | TextDone | ToolsRunning | TurnCompleted


@dataclass(frozen=True, slots=True)
class FoundReply:
    """The answer of a turn found in the conversation after the fact. `pending_calls`: tool calls the
    turn made that never got their results (the turn must be continued with them)."""

    text: str
    last_item_id: str | None
    pending_calls: tuple[ToolCall, ...] = ()


class FailureKind(StrEnum):
    """What a failure means for the messages of the turn."""

    TRANSIENT = "transient"  # try again later (5xx, network, rate limit, a busy conversation, a cut stream)
    ACCOUNT = "account"  # nothing will work until an admin acts (key, permission, quota, unknown model)
    REQUEST = "request"  # this request is refused (invalid, too long, policy): a message may be poison


class BackendError(Exception):
    """A model request failed.

    `outcome_unknown` is set when the request may have reached the model and completed anyway (a
    stream cut mid-answer, a deadline passed): before trying again, look for the answer in the
    conversation instead of sending the messages twice.
    """

    def __init__(self, message: str, *, kind: FailureKind, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, retry_after: float | None = None,
                 outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown



@runtime_checkable
class MakesSpares(Protocol):
    """A backend whose conversations live at the model service, where creating one is a round trip: it
    can make them ahead, empty, for channels still to come (see `conversation/spares.py`)."""

    name: str
    spare_pool: str  # the store's name for its spares: the backend, server and account they live in

    async def create_spare(self) -> str:
        """A new, empty conversation belonging to no channel yet; its id."""
        ...

    async def label_conversation(self, conversation_id: str, channel: str) -> None:
        """Record at the service which channel the conversation now belongs to."""
        ...


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

    async def find_reply(self, conversation_id: str, messages: Sequence[str],
                         after_item: str | None = None) -> FoundReply | None:
        """If the conversation holds `messages` (the input of a turn whose outcome is unknown) after
        `after_item` (the previous turn's last item), followed by an answer, return that answer;
        None if the turn never completed."""
        ...

    async def add_context(self, conversation_id: str, messages: Sequence[str]) -> str | None:
        """Add messages to the conversation without asking for an answer (mention-only channels);
        return the id of the conversation's newest item if the API has item ids."""
        ...

    async def check(self) -> str:
        """Reach the model endpoint; return a one-line description or raise BackendError."""
        ...

    async def aclose(self) -> None:
        ...
