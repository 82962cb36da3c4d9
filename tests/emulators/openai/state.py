"""What the emulated platform remembers. Only touched on the emulator's event loop."""

from __future__ import annotations

import secrets
import string
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, *, hex_chars: int = 0, alnum_chars: int = 24, sep: str = "_") -> str:
    """IDs shaped like OpenAI's: `conv_<48 hex>`, `resp_<48 hex>`, `thread_<24 alnum>`, `chatcmpl-<…>`."""
    if hex_chars:
        return f"{prefix}{sep}{secrets.token_hex(hex_chars // 2)}"
    return prefix + sep + "".join(secrets.choice(_ALNUM) for _ in range(alnum_chars))


def now() -> int:
    return int(time.time())


@dataclass
class Recorded:
    """One HTTP request as the emulator received it."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    time_received: float
    request_id: str
    time_done: float | None = None
    status: int | None = None
    stream: bool = False


@dataclass
class Conversation:
    id: str
    created_at: int
    metadata: dict[str, str]
    items: list[dict[str, Any]] = field(default_factory=list)
    active_response: str | None = None

    def resource(self) -> dict[str, Any]:
        return {"id": self.id, "object": "conversation", "created_at": self.created_at,
                "metadata": dict(self.metadata)}


@dataclass
class StoredResponse:
    body: dict[str, Any]  # the Response object as last sent
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]  # what the model saw, for previous_response_id chains


@dataclass
class Thread:
    id: str
    created_at: int
    metadata: dict[str, str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    active_run: str | None = None

    def resource(self) -> dict[str, Any]:
        return {"id": self.id, "object": "thread", "created_at": self.created_at,
                "metadata": dict(self.metadata), "tool_resources": {"code_interpreter": {"file_ids": []}}}


@dataclass
class Run:
    body: dict[str, Any]  # the Run object
    steps: list[dict[str, Any]] = field(default_factory=list)
    pending_calls: dict[str, Any] = field(default_factory=dict)  # call_id -> ToolCall awaiting output
    on_finish: Callable[[], None] = lambda: None  # called once when the run ends


class PlatformState:
    """Conversations, responses, assistants, threads and runs, plus concurrency bookkeeping."""

    def __init__(self, models: tuple[str, ...]) -> None:
        self.models = list(models)
        self.api_key: str | None = None
        self.missing_apis: frozenset[str] = frozenset()  # API families this server does not serve (404)
        self.missing_status = 404  # what it answers there (LM Studio: 200 with an error text)
        self.files: dict[str, dict[str, Any]] = {}  # uploads (POST /v1/files), with their bytes
        self.text_only_models: set[str] = set()  # models that refuse images and files (see vision.py)
        self.conversations: dict[str, Conversation] = {}
        self.responses: dict[str, StoredResponse] = {}
        self.assistants: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, Thread] = {}
        self.runs: dict[str, Run] = {}
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.self_violations: list[str] = []
        self._in_flight: dict[str, int] = defaultdict(int)
        self.max_in_flight: dict[str, int] = defaultdict(int)

    def enter(self, key: str) -> None:
        """A request naming `key` (a conversation or thread id) arrived."""
        self._in_flight[key] += 1
        self.max_in_flight[key] = max(self.max_in_flight[key], self._in_flight[key])

    def leave(self, key: str) -> None:
        self._in_flight[key] -= 1

    def in_flight(self, key: str) -> int:
        return self._in_flight[key]
