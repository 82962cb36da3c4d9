"""The `chat` backend: Chat Completions on any OpenAI-compatible server (Ollama, vLLM, llama.cpp,
LM Studio, LiteLLM, Azure, OpenAI), with each channel's conversation kept in our own store.

Chat Completions is stateless, so every request carries the instructions, as much of the stored
history as fits `context_tokens`, and the turn's messages. A turn's messages (the users', the model's
tool calls, the tools' results, its answer) are stored in one transaction only when the turn
completes: a failed or cut turn leaves no trace and can simply be sent again.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import unicodedata
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from bot.backends.base import (
    IMAGE,
    Attachment,
    BackendError,
    FailureKind,
    FoundReply,
    ToolCall,
    ToolOutput,
    TurnEvent,
    TurnRequest,
)
from bot.backends.chat_window import (
    DEFAULT_CHARS_PER_TOKEN,
    MAX_WINDOWS,
    ChatRecord,
    calibrated,
    history_budget,
    message_chars,
    trim_history,
    window_start,
)
from bot.backends.errors import classify, stream_cut, stream_failure
from bot.backends.lookup import Entry, content_text, locate
from bot.backends.tool_loop import Round, chat_tool, kept_calling_tools, run_turn
from bot.backends.vision import Vision, refuses_files
from bot.settings import DEFAULT_CONTEXT_TOKENS

log = logging.getLogger(__name__)
_Stream = openai.AsyncStream[ChatCompletionChunk]

NAME_MAX = 64  # the `name` field: ^[a-zA-Z0-9_-]{1,64}$
NO_OUTPUT = '{"status": "error", "message": "The function returned nothing"}'
CONVERSATION_PREFIX = "chat_"
FINAL_REASONS = ("stop", "length")  # a completion that ended so calls no tool: its text is the answer

_NAME_SPACES = re.compile(r"\s+")
_NAME_FORBIDDEN = re.compile(r"[^a-zA-Z0-9_-]")
_NAME_UNDERSCORES = re.compile(r"_{2,}")
_SPEAKER = re.compile(r"\[([^\]\n]*)\] ")  # the marker that opens a user message: "[Alice] hello"
_MENTIONS_NAME = re.compile(r"\bname\b", re.IGNORECASE)
# Optional request fields a self-hosted server may reject, and how its 400 names each.
HINTS = {"prompt_cache_key": re.compile(r"prompt_cache_key", re.IGNORECASE),
         "safety_identifier": re.compile(r"safety_identifier", re.IGNORECASE)}


class ChatHistory(Protocol):
    """Where each conversation's messages are kept (the store's chat history)."""

    async def chat_history(self, conversation_id: str, *, max_chars: int | None = None) -> Sequence[ChatRecord]:
        """The conversation's messages, oldest first; with `max_chars`, only the newest that fit."""
        ...

    async def chat_since(self, conversation_id: str, anchor: int | None) -> Sequence[ChatRecord]:
        """The records from `anchor` on, oldest first (without one, the newest few hundred)."""
        ...

    async def append_chat(self, conversation_id: str, messages: Sequence[dict[str, Any]]) -> int | None:
        """Add messages in one transaction; return the id of the last."""
        ...


# --- pure parts ---------------------------------------------------------------------------------------

def chat_name(speaker: str) -> str | None:
    """A speaker's name as the `name` field accepts it ("Bob Builder" → "Bob_Builder", "José" → "Jose");
    None when nothing usable is left."""
    plain = unicodedata.normalize("NFKD", speaker).encode("ascii", "ignore").decode()
    name = _NAME_FORBIDDEN.sub("", _NAME_SPACES.sub("_", plain.strip()))
    name = _NAME_UNDERSCORES.sub("_", name).strip("_")[:NAME_MAX]
    return name or None


def speaker_of(text: str) -> str:
    """The speaker named by a message's opening marker ("[Alice] hello" → "Alice"), else ""."""
    marker = _SPEAKER.match(text)
    return marker.group(1) if marker else ""


def user_message(text: str, speaker: str = "", attachments: Sequence[Attachment] = ()) -> dict[str, Any]:
    """A chat user message; the speaker also goes in `name` when it yields a valid one. Images go as
    `image_url` parts (data URLs) after the text."""
    images = [{"type": "image_url", "image_url": {"url": attachment.data_url()}}
              for attachment in attachments if attachment.kind == IMAGE]
    content: str | list[dict[str, Any]] = [{"type": "text", "text": text}, *images] if images else text
    message: dict[str, Any] = {"role": "user", "content": content}
    name = chat_name(speaker or speaker_of(text))
    if name:
        message["name"] = name
    return message


def without_images(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with their images left out (their text describes them). What the store keeps: an
    image is sent in the turn it was shared in, and the history keeps its description and the answer
    about it — not megabytes of base64 per image in every later prompt, forever."""
    plain = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") == "image_url" for part in content):
            message = {**message, "content": content_text(content)}
        plain.append(message)
    return plain


def has_images(messages: Sequence[dict[str, Any]]) -> bool:
    return any(isinstance(message.get("content"), list) and any(part.get("type") == "image_url"
                                                                for part in message["content"])
               for message in messages)


def reply_after(records: Sequence[ChatRecord], messages: Sequence[str],
                after_item: str | None) -> FoundReply | None:
    """Did a turn with input `messages` complete? `records` are the conversation's, oldest first;
    `after_item` is the previous turn's last record id (None: the conversation's first turn).

    Its messages must be the user messages stored after `after_item` (when that id is not there, the
    newest user messages); the answer is the assistant text after them.
    """
    entries = [Entry(str(record.id), record.message.get("role", ""), content_text(record.message.get("content")))
               for record in records]
    found = locate(entries, messages, after_item, from_start=True, exact_from_start=True)
    return None if found is None else FoundReply(found.answer, found.newest_id)


# --- one model request --------------------------------------------------------------------------------

@dataclass
class _Chunks:
    """What one streamed completion produced."""

    text: str = ""
    calls: dict[int, dict[str, str]] = field(default_factory=dict)  # index → id, name, arguments
    finish_reason: str | None = None
    response_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def absorb(self, chunk: ChatCompletionChunk) -> str:
        """Take one chunk in; return its text."""
        self.response_id = chunk.id or self.response_id
        if chunk.usage is not None:
            self.prompt_tokens = chunk.usage.prompt_tokens
            self.completion_tokens = chunk.usage.completion_tokens
        text = ""
        for choice in chunk.choices:
            if choice.delta is not None:
                text += choice.delta.content or ""
                for fragment in choice.delta.tool_calls or ():
                    self._add_call_fragment(fragment)
            self.finish_reason = choice.finish_reason or self.finish_reason
        self.text += text
        return text

    def _add_call_fragment(self, fragment: ChoiceDeltaToolCall) -> None:
        index = fragment.index if fragment.index is not None else max(self.calls, default=0)
        call = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        call["id"] = fragment.id or call["id"]
        if fragment.function is not None:
            call["name"] = call["name"] or fragment.function.name or ""
            call["arguments"] += fragment.function.arguments or ""

    def tool_calls(self) -> list[ToolCall]:
        # Some local servers leave the id out; the results must still name their call.
        return [ToolCall(call["id"] or f"call_{secrets.token_hex(8)}", call["name"], call["arguments"] or "{}")
                for _, call in sorted(self.calls.items())]


class ChatBackend:
    """Chat Completions, the channel's history in `history` (trimmed to `context_tokens` per request)."""

    name = "chat"
    accepts = frozenset({IMAGE})  # (PDFs are described: `file` parts are OpenAI's alone among these servers)

    def __init__(self, client: openai.AsyncOpenAI, *, model: str, history: ChatHistory,
                 context_tokens: int = DEFAULT_CONTEXT_TOKENS, send_names: bool = True,
                 vision: Vision | None = None) -> None:
        self._client = client
        self.vision = vision or Vision()
        self.history = history
        self.model = model
        self.context_tokens = context_tokens
        self.chars_per_token = DEFAULT_CHARS_PER_TOKEN  # calibrated from the server's usage reports
        self.send_names = send_names  # turned off for good when the server rejects `name`
        self.refused_hints: set[str] = set()  # optional fields (HINTS) the server rejected: never sent again
        self._window_starts: dict[str, int] = {}  # conversation → first record id its prompts carry

    async def create_conversation(self, channel: str) -> str:
        """A new local conversation (no network call): its history starts empty."""
        return CONVERSATION_PREFIX + secrets.token_hex(12)

    def stream_turn(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """One turn, with its tool rounds; the turn's messages are stored only once it completes."""
        return run_turn(request, _Rounds(self, request))

    async def _history(self, conversation_id: str, fixed: list[dict[str, Any]],
                       tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The newest stored messages that fit the budget beside what every request carries."""
        fixed_chars = sum(message_chars(message) for message in fixed) + (len(json.dumps(tools)) if tools else 0)
        budget = history_budget(self.context_tokens, self.chars_per_token, fixed_chars)
        if budget <= 0:
            return []
        records = await self.history.chat_history(conversation_id, max_chars=budget)
        start = window_start(records, self._window_starts.get(conversation_id), budget)
        self._window_starts.pop(conversation_id, None)
        if start is not None:
            if len(self._window_starts) >= MAX_WINDOWS:
                self._window_starts.pop(next(iter(self._window_starts)))
            self._window_starts[conversation_id] = start
            records = [record for record in records if record.id >= start]
        return trim_history(records, budget)

    async def _complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                        current: _Chunks, hints: dict[str, str] | None = None) -> AsyncIterator[str]:
        """One streamed completion; fills `current` with its text, tool calls and usage."""
        streaming = False
        try:
            stream, sent = await self._create(messages, tools, hints or {})
            async with stream:
                async for chunk in stream:
                    streaming = True
                    ended = current.finish_reason is None
                    text = current.absorb(chunk)
                    if text or (ended and current.finish_reason is not None):
                        yield text  # ("" when the chunk only says how the completion ended)
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified (an error chunk too)
            raise classify(exc, streaming=streaming) from exc
        if current.finish_reason is None:  # no chunk said how it ended: the stream was cut
            raise stream_cut()
        if current.finish_reason == "content_filter":
            raise stream_failure("content_filter", "the model's answer was withheld by a content filter",
                                 request_id=current.response_id)
        self.chars_per_token = calibrated(sent, current.prompt_tokens, self.chars_per_token)

    async def _create(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                      hints: dict[str, str]) -> tuple[_Stream, int]:
        """Start the stream. A server that refuses an optional field — the messages' `name`, or one of
        the HINTS (`prompt_cache_key`: OpenAI's hint to keep a channel's requests on one prompt cache;
        `safety_identifier`: the hashed user) — is asked again without it, and never sent it again.
        Returns the stream and the characters sent."""
        while True:
            named = self.send_names and any("name" in message for message in messages)
            sent = {key: value for key, value in hints.items() if value and key not in self.refused_hints}
            try:
                return await self._send(messages if named else _nameless(messages), tools, sent)
            except openai.BadRequestError as exc:
                refused = [key for key in sent if _refuses(exc, HINTS[key])]
                if refused:
                    log.warning("the model server refuses `%s`; sending without it", refused[0])
                    self.refused_hints.add(refused[0])
                elif named and _refuses(exc, _MENTIONS_NAME):
                    log.warning("the model server refuses the `name` field of chat messages; sending without it "
                                "(speakers stay marked in the text)")
                    self.send_names = False
                elif has_images(messages) and refuses_files(exc) and await self.vision.fall_back(exc):
                    messages = without_images(messages)  # a text-only model (or a bad image): images described
                else:
                    raise

    async def _send(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                    hints: dict[str, str]) -> tuple[_Stream, int]:
        params: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                  "stream_options": {"include_usage": True}, **hints}
        if tools:
            params["tools"] = tools
        stream = await self._client.chat.completions.create(**params)
        chars = sum(message_chars(message) for message in messages) + (len(json.dumps(tools)) if tools else 0)
        return stream, chars

    async def find_reply(self, conversation_id: str, messages: Sequence[str],
                         after_item: str | None = None) -> FoundReply | None:
        """The answer of a turn whose outcome is unknown, if its messages were stored (see `reply_after`)."""
        if not messages:
            return None
        anchor = int(after_item) if after_item and after_item.isdigit() else None
        return reply_after(await self.history.chat_since(conversation_id, anchor), messages, after_item)

    async def add_context(self, conversation_id: str, messages: Sequence[str]) -> str | None:
        """Store messages without asking for an answer; return the newest record's id."""
        if not messages:
            return None
        last = await self.history.append_chat(conversation_id, [user_message(text) for text in messages])
        return str(last) if last is not None else None

    async def check(self) -> str:
        """Ask the server about the model: one line if it is there, else a classified BackendError."""
        try:
            model = await self._client.models.retrieve(self.model)
        except openai.NotFoundError as exc:
            raise BackendError(f"the model {self.model} was not found at {self._client.base_url} (check "
                               "OPENAI_MODEL and OPENAI_BASE_URL)", kind=FailureKind.ACCOUNT, status=404,
                               code="model_not_found", request_id=exc.request_id) from exc
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from exc
        return f"model {model.id} is available (Chat Completions at {self._client.base_url})"

    async def aclose(self) -> None:
        await self._client.close()


class _Rounds:
    """A chat turn's rounds: each request carries the instructions, the history that fits and the turn's
    messages so far (the users', then each round's tool calls and results); stored when it completes."""

    def __init__(self, backend: ChatBackend, request: TurnRequest) -> None:
        names = list(request.speaker_names)
        self._backend = backend
        self._conversation = request.conversation_id
        self._system = {"role": "system", "content": request.instructions}
        self._hints = {"prompt_cache_key": f"slack-{request.channel}",
                       "safety_identifier": request.safety_identifier or ""}
        self._tools = [chat_tool(tool) for tool in request.tools]
        # The turn's note (stored with the turn) after the history, before the messages: the prompt's
        # prefix — instructions and history — stays what the server saw last time, and cached.
        note = [{"role": "system", "content": request.note}] if request.note and request.messages else []
        self._added = note + [user_message(text, names[i] if i < len(names) else "", request.attached(i))
                              for i, text in enumerate(request.messages)]

    async def send(self, number: int, tools_allowed: bool, current: Round) -> AsyncIterator[str]:
        tools = self._tools if tools_allowed else []
        if not self._backend.vision.allowed:  # (learnt in an earlier round: the images stay out)
            self._added = without_images(self._added)
        # Each round's calls and results take room: the history gives way to them.
        history = await self._backend._history(self._conversation, [self._system, *self._added], tools)
        got = _Chunks()
        prompt = [self._system, *history, *self._added]
        async with aclosing(self._backend._complete(prompt, tools, got, self._hints)) as deltas:
            async for delta in deltas:
                # A completion that ended without tool calls (usage may still follow): its text is final.
                current.text_final = got.finish_reason in FINAL_REASONS and not got.calls
                yield delta
        current.text, current.response_id = got.text, got.response_id
        current.input_tokens, current.output_tokens = got.prompt_tokens, got.completion_tokens
        current.calls = got.tool_calls() if got.finish_reason != "length" else []

    async def feed(self, current: Round, outputs: Sequence[ToolOutput]) -> None:
        """The assistant message that made the calls and one result message per call."""
        by_id = {output.call_id: output.output for output in outputs}
        self._added.append({"role": "assistant", "content": current.text or None, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in current.calls]})
        self._added += [{"role": "tool", "tool_call_id": call.call_id, "content": by_id.get(call.call_id, NO_OUTPUT)}
                        for call in current.calls]

    async def past_limit(self, current: Round, extra: int) -> Sequence[ToolOutput] | None:
        if current.text:  # an answer: the calls the last round may not make are dropped
            return None
        raise kept_calling_tools()

    async def finish(self, current: Round, text: str) -> str | None:
        self._added.append({"role": "assistant", "content": current.text})
        last = await self._backend.history.append_chat(self._conversation, without_images(self._added))
        return str(last) if last is not None else None


def _nameless(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in message.items() if key != "name"} for message in messages]


def _refuses(exc: openai.BadRequestError, field: re.Pattern[str]) -> bool:
    """Does the server's 400 name this field (in its `param` or its message)?"""
    param = getattr(exc, "param", None)
    return bool(field.search(f"{param or ''} {exc.message}"))
