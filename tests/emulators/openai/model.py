"""The scripted, deterministic model behind every endpoint.

By default it echoes what it heard in the request's *new* input ("Heard: «Alice: hello» «Bob: hi»"),
or what the tools returned ("Tool get_time returned: {...}"). Tests can queue scripted steps
(`enqueue(text=…)`, `enqueue(tool_calls=[…])`, optionally only for requests that `match`), override
everything with `reply_fn`, and tune timing (`ttft`, `chunk_size`, `chunk_delay`, and `finish_delay`:
the pause between the text's end and the rest of the stream — a real service spends it on usage and
storing the response) and length (`reply_length`). Every request the model answers is appended to `seen`.

Knobs and the script are set from the test thread while the emulator loop reads them: the queue and
`seen` are guarded by a lock; the knobs are plain attributes read once per request.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.openai.prompt_cache import Piece, PromptCache, cached_tokens

FILLER = ("and the assistant keeps talking in plain words so that this reply reaches the length "
          "the test asked for while staying readable ")
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text, as the wire carries it
    call_id: str = field(default_factory=lambda: "call_" + secrets.token_urlsafe(18).replace("-", "x")[:24])


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    name: str | None
    output: str


@dataclass
class ModelRequest:
    """What the model sees for one request; `match` callables and `reply_fn` receive this."""

    endpoint: str  # "responses" | "chat" | "assistants"
    model: str
    input: list[dict[str, Any]]  # the request's new items (Responses input / trailing chat messages / …)
    context: list[dict[str, Any]]  # history + input, in the order the model reads them
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    conversation_id: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    heard: list[str] = field(default_factory=list)  # "Speaker: text" / "text" per new user message
    prompt_chars: int = 0  # set by the model: the prompt's countable characters …
    cached_chars: int = 0  # … and how many of them a prompt seen before under the same cache key shared


@dataclass
class ModelReply:
    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class Seen:
    """One request as the model saw it, and what it answered."""

    endpoint: str
    model: str
    conversation_id: str | None
    thread_id: str | None
    instructions: str | None
    context: list[dict[str, Any]]
    input: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_results: list[ToolResult]
    reply: ModelReply
    input_tokens: int = 0  # the prompt's tokens, and how many of them were read from the prompt cache
    cached_tokens: int = 0


@dataclass
class _Step:
    reply: ModelReply
    match: Callable[[ModelRequest], bool] | None


class ScriptedModel:
    """Deterministic stand-in for a language model. See the module docstring."""

    def __init__(self, *, ttft: float = 0.0, chunk_size: int = 8, chunk_delay: float = 0.0,
                 reply_length: int | None = None, usage: bool | dict[str, int] = True) -> None:
        self.ttft = ttft
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.finish_delay = 0.0  # seconds between the text's end (output_text.done / finish_reason) and the rest
        self.reply_length = reply_length
        self.usage = usage  # True: computed; False: not reported; dict: these numbers
        self.reply_fn: Callable[[ModelRequest], str | ModelReply | None] | None = None
        self._lock = threading.Lock()
        self._script: list[_Step] = []
        self._seen: list[Seen] = []
        self.prompt_cache = PromptCache()

    # -- test-facing ---------------------------------------------------------------------------
    def enqueue(self, text: str | None = None, *, tool_calls: list[dict[str, Any]] | None = None,
                match: Callable[[ModelRequest], bool] | None = None) -> None:
        """Queue one scripted answer: text, tool calls ({"name", "arguments", "call_id"?}), or both."""
        if text is None and not tool_calls:
            raise ValueError("enqueue() needs text or tool_calls")
        calls = [_tool_call(spec) for spec in tool_calls or []]
        with self._lock:
            self._script.append(_Step(ModelReply(text, calls), match))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self._seen.clear()
        self.prompt_cache.clear()

    # -- emulator-facing -----------------------------------------------------------------------
    def respond(self, request: ModelRequest) -> ModelReply:
        pieces = prompt_pieces(request.tools, request.instructions if request.endpoint != "chat" else None,
                               request.context)  # (chat: the instructions are the system messages)
        request.prompt_chars = sum(len(text) for _, text in pieces)
        request.cached_chars = self.prompt_cache.lookup(request.model, request.body.get("prompt_cache_key"),
                                                        pieces)
        reply = self._scripted(request)
        if reply is None and self.reply_fn is not None:
            custom = self.reply_fn(request)
            reply = ModelReply(custom) if isinstance(custom, str) else custom
        if reply is None:
            reply = ModelReply(default_reply(request))
        if reply.text is not None and self.reply_length is not None:
            reply = ModelReply(fit_length(reply.text, self.reply_length), reply.tool_calls)
        with self._lock:
            self._seen.append(Seen(request.endpoint, request.model, request.conversation_id, request.thread_id,
                                   request.instructions, request.context, request.input, request.tools,
                                   request.tool_results, reply, math.ceil(request.prompt_chars / CHARS_PER_TOKEN),
                                   cached_tokens(request.prompt_chars, request.cached_chars)))
        return reply

    def _scripted(self, request: ModelRequest) -> ModelReply | None:
        with self._lock:
            for index, step in enumerate(self._script):
                if step.match is None or step.match(request):
                    del self._script[index]
                    # fresh call ids each time a step is used, like a real model
                    return ModelReply(step.reply.text, [ToolCall(c.name, c.arguments, c.call_id)
                                                        for c in step.reply.tool_calls])
        return None

    def chunks(self, text: str) -> list[str]:
        size = max(1, int(self.chunk_size))
        return [text[i:i + size] for i in range(0, len(text), size)] or [""]

    async def stream(self, text: str) -> AsyncIterator[str]:
        """Yield `text` in deltas, honouring ttft and chunk_delay (read once, at the start)."""
        ttft, delay = self.ttft, self.chunk_delay
        if ttft > 0:
            await asyncio.sleep(ttft)
        for index, piece in enumerate(self.chunks(text)):
            if index and delay > 0:
                await asyncio.sleep(delay)
            yield piece

    async def think(self, text: str) -> None:
        """The time a non-streamed answer takes: the same as streaming it."""
        async for _ in self.stream(text):
            pass

    def usage_numbers(self, context_chars: int, output_chars: int, cached_chars: int = 0) -> dict[str, int] | None:
        """Usage as the service reports it: tokens from characters, `cached_tokens` from the prompt cache."""
        if self.usage is False:
            return None
        if isinstance(self.usage, dict):
            numbers = {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, **self.usage}
            numbers.setdefault("total_tokens", numbers["input_tokens"] + numbers["output_tokens"])
            return numbers
        prompt = math.ceil(context_chars / CHARS_PER_TOKEN)
        output = math.ceil(output_chars / CHARS_PER_TOKEN)
        return {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output,
                "cached_tokens": cached_tokens(context_chars, cached_chars)}


def _tool_call(spec: dict[str, Any]) -> ToolCall:
    args = spec.get("arguments", {})
    text = args if isinstance(args, str) else json.dumps(args)
    if "call_id" in spec:
        return ToolCall(spec["name"], text, spec["call_id"])
    return ToolCall(spec["name"], text)


def default_reply(request: ModelRequest) -> str:
    if request.tool_results:
        return " ".join(f"Tool {r.name or r.call_id} returned: {r.output}" for r in request.tool_results)
    if not request.heard:
        return "Heard: nothing."
    return "Heard: " + " ".join(f"«{line}»" for line in request.heard)


def fit_length(text: str, length: int) -> str:
    """Pad with readable filler words (or cut) to exactly `length` characters."""
    if len(text) >= length:
        return text[:length]
    out = text + " "
    while len(out) < length:
        out += FILLER
    return out[:length]


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, dict):
            if isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part.get("text"), dict):  # Assistants: {"type": "text", "text": {"value": …}}
                parts.append(part["text"].get("value", ""))
    return "".join(parts)


def prompt_pieces(tools: list[dict[str, Any]], instructions: str | None,
                  context: list[dict[str, Any]]) -> list[Piece]:
    """The prompt as the model reads it. Texts count as the usage counts them (content, arguments,
    outputs); the frames (tool schemas, roles) must match too but are not counted."""
    pieces: list[Piece] = [("tools:" + json.dumps(tools, sort_keys=True), "")]
    if instructions:
        pieces.append(("instructions", instructions))
    for item in context:
        frame = f"{item.get('type', 'message')}:{item.get('role', '')}:{item.get('name', '')}"
        text = (text_of(item.get("content")) + str(item.get("output", "") or "")
                + str(item.get("arguments", "") or ""))
        pieces.append((frame, text))
    return pieces


def context_chars(items: list[dict[str, Any]], instructions: str | None) -> int:
    total = len(instructions or "")
    for item in items:
        total += len(text_of(item.get("content"))) + len(str(item.get("output", "") or ""))
        total += len(str(item.get("arguments", "") or ""))
    return total
