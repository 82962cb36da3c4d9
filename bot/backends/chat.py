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
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from bot.backends.base import (
    NO_FUNCTION,
    ROUND_SEPARATOR,
    BackendError,
    FailureKind,
    FoundReply,
    TextDelta,
    ToolCall,
    ToolOutput,
    ToolsRunning,
    TurnCompleted,
    TurnEvent,
    TurnRequest,
)
from bot.backends.errors import ACCOUNT_CODES, TRANSIENT_CODES, classify
from bot.store import ChatRecord, Store

log = logging.getLogger(__name__)
_Stream = openai.AsyncStream[ChatCompletionChunk]

DEFAULT_CONTEXT_TOKENS = 8_000  # prompt budget: instructions + tools + history + the turn's messages
DEFAULT_CHARS_PER_TOKEN = 4.0  # until the server reports usage (tokenizers can't be fetched at run time)
MIN_CHARS_PER_TOKEN, MAX_CHARS_PER_TOKEN = 1.5, 8.0  # a calibration outside these is a server's odd count
NAME_MAX = 64  # the `name` field: ^[a-zA-Z0-9_-]{1,64}$
NO_OUTPUT = '{"status": "error", "message": "The function returned nothing"}'
CONVERSATION_PREFIX = "chat_"

_NAME_SPACES = re.compile(r"\s+")
_NAME_FORBIDDEN = re.compile(r"[^a-zA-Z0-9_-]")
_NAME_UNDERSCORES = re.compile(r"_{2,}")
_SPEAKER = re.compile(r"\[([^\]\n]*)\] ")  # the marker that opens a user message: "[Alice] hello"
_MENTIONS_NAME = re.compile(r"\bname\b", re.IGNORECASE)


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


def user_message(text: str, speaker: str = "") -> dict[str, Any]:
    """A chat user message; the speaker also goes in `name` when it yields a valid one."""
    message: dict[str, Any] = {"role": "user", "content": text}
    name = chat_name(speaker or speaker_of(text))
    if name:
        message["name"] = name
    return message


def message_chars(message: dict[str, Any]) -> int:
    """A message's size as the store counts it (its JSON text)."""
    return len(json.dumps(message, ensure_ascii=False))


def calibrated(prompt_chars: int, prompt_tokens: int | None, current: float) -> float:
    """Characters per token, from a request of `prompt_chars` the server counted as `prompt_tokens`;
    `current` when the server said nothing usable."""
    if not prompt_tokens or prompt_tokens <= 0 or prompt_chars <= 0:
        return current
    return min(max(prompt_chars / prompt_tokens, MIN_CHARS_PER_TOKEN), MAX_CHARS_PER_TOKEN)


def history_budget(context_tokens: int, chars_per_token: float, fixed_chars: int) -> int:
    """Characters of history that fit beside what every request carries anyway (`fixed_chars`)."""
    return max(int(context_tokens * chars_per_token) - fixed_chars, 0)


def trim_history(records: Sequence[ChatRecord], max_chars: int) -> list[dict[str, Any]]:
    """The newest whole units of `records` (oldest first) whose characters fit `max_chars`.

    A unit is one message, or an assistant message with tool calls together with all their results:
    a call is never sent without its result, nor a result without its call.
    """
    kept: list[list[ChatRecord]] = []
    used = 0
    for unit in reversed(_units(records)):
        size = sum(record.chars for record in unit)
        if used + size > max_chars:
            break
        kept.append(unit)
        used += size
    return [record.message for unit in reversed(kept) for record in unit]


def _units(records: Sequence[ChatRecord]) -> list[list[ChatRecord]]:
    """Records grouped into units, oldest first; broken ones (a result whose call is gone, calls
    missing a result) are left out."""
    units: list[list[ChatRecord]] = []
    index = 0
    while index < len(records):
        head = records[index]
        index += 1
        if head.message.get("role") == "tool":
            continue  # its call is older than the window
        unit = [head]
        wanted = {call.get("id") for call in head.message.get("tool_calls") or ()}
        while (wanted and index < len(records) and records[index].message.get("role") == "tool"
               and records[index].message.get("tool_call_id") in wanted):
            unit.append(records[index])
            index += 1
        if {record.message.get("tool_call_id") for record in unit[1:]} == wanted:
            units.append(unit)
    return units


def reply_after(records: Sequence[ChatRecord], messages: Sequence[str],
                after_item: str | None) -> FoundReply | None:
    """Did a turn with input `messages` complete? `records` are the conversation's, oldest first;
    `after_item` is the previous turn's last record id (None: the conversation's first turn).

    Its messages must be the user messages stored after `after_item` (when that id is not there, the
    newest user messages); the answer is the assistant text after them.
    """
    ids = [str(record.id) for record in records]
    known = after_item is not None and after_item in ids
    window = list(records[ids.index(after_item) + 1:]) if known else list(records)
    users = [index for index, record in enumerate(window) if record.message.get("role") == "user"]
    texts = [_text(window[index].message) for index in users]
    expected = list(messages)
    if not expected:
        return None
    exact = known or after_item is None
    if (texts if exact else texts[-len(expected):]) != expected:
        return None
    answer = [_text(record.message) for record in window[users[-1] + 1:] if record.message.get("role") == "assistant"]
    return FoundReply(ROUND_SEPARATOR.join(text for text in answer if text), str(window[-1].id))


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content or () if isinstance(part, dict))


# --- one model request --------------------------------------------------------------------------------

@dataclass
class _Round:
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
    """Chat Completions, the channel's history in `Store` (trimmed to `context_tokens` per request)."""

    name = "chat"

    def __init__(self, client: openai.AsyncOpenAI, *, model: str, store: Store,
                 context_tokens: int = DEFAULT_CONTEXT_TOKENS, send_names: bool = True) -> None:
        self._client = client
        self._store = store
        self.model = model
        self.context_tokens = context_tokens
        self.chars_per_token = DEFAULT_CHARS_PER_TOKEN  # calibrated from the server's usage reports
        self.send_names = send_names  # turned off for good when the server rejects `name`

    async def create_conversation(self, channel: str) -> str:
        """A new local conversation (no network call): its history starts empty."""
        return CONVERSATION_PREFIX + secrets.token_hex(12)

    async def stream_turn(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """One turn, with its tool rounds; the turn's messages are stored only once it completes."""
        names = list(request.speaker_names)
        added = [user_message(text, names[i] if i < len(names) else "") for i, text in enumerate(request.messages)]
        system = {"role": "system", "content": request.instructions}
        tools = [{"type": "function", "function": dict(tool)} for tool in request.tools]
        shown, tokens_in, tokens_out = "", None, None
        for round_number in range(request.max_tool_rounds + 1):
            current, apart = _Round(), bool(shown)
            last_round = round_number == request.max_tool_rounds
            round_tools = [] if last_round else tools
            # Each round's calls and results take room: the history gives way to them.
            history = await self._history(request.conversation_id, [system, *added], round_tools)
            async for delta in self._complete([system, *history, *added], round_tools, current):
                if apart:  # the text after a tool call is set apart from the text before it
                    shown, apart = shown + ROUND_SEPARATOR, False
                    yield TextDelta(ROUND_SEPARATOR)
                shown += delta
                yield TextDelta(delta)
            tokens_in, tokens_out = _add(tokens_in, current.prompt_tokens), _add(tokens_out, current.completion_tokens)
            calls = current.tool_calls() if current.finish_reason != "length" else []
            if calls and last_round and not current.text:
                break
            if not calls or last_round:  # an answer (calls the last round may not make are dropped)
                added.append({"role": "assistant", "content": current.text})
                last = await self._store.append_chat(request.conversation_id, added)
                yield TurnCompleted(text=shown, response_id=current.response_id,
                                    last_item_id=str(last) if last is not None else None,
                                    input_tokens=tokens_in, output_tokens=tokens_out)
                return
            yield ToolsRunning(tuple(call.name for call in calls))
            added += await _tool_round(request, current.text, calls)
        raise BackendError("the model kept calling tools", kind=FailureKind.REQUEST, code="tool_rounds")

    async def _history(self, conversation_id: str, fixed: list[dict[str, Any]],
                       tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The newest stored messages that fit the budget beside what every request carries."""
        fixed_chars = sum(message_chars(message) for message in fixed) + (len(json.dumps(tools)) if tools else 0)
        budget = history_budget(self.context_tokens, self.chars_per_token, fixed_chars)
        if budget <= 0:
            return []
        records = await self._store.chat_history(conversation_id, max_chars=budget)
        return trim_history(records, budget)

    async def _complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                        current: _Round) -> AsyncIterator[str]:
        """One streamed completion; fills `current` with its text, tool calls and usage."""
        streaming = False
        try:
            stream, sent = await self._create(messages, tools)
            async with stream:
                async for chunk in stream:
                    streaming = True
                    text = current.absorb(chunk)
                    if text:
                        yield text
        except BackendError:
            raise
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            raise classify(exc, streaming=streaming) from exc
        except openai.APIError as exc:  # an error chunk inside the stream: the server gave up
            raise _in_band(exc) from exc
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            raise classify(exc, streaming=streaming) from exc
        if current.finish_reason is None:
            raise BackendError("the model's answer was cut off", kind=FailureKind.TRANSIENT, code="stream_cut",
                               outcome_unknown=True)
        if current.finish_reason == "content_filter":
            raise BackendError("the model's answer was withheld by a content filter", kind=FailureKind.REQUEST,
                               code="content_filter", request_id=current.response_id)
        self.chars_per_token = calibrated(sent, current.prompt_tokens, self.chars_per_token)

    async def _create(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> tuple[_Stream, int]:
        """Start the stream; if the server refuses the `name` field, once more without it (for good).
        Returns the stream and the characters sent (for calibration)."""
        named = self.send_names and any("name" in message for message in messages)
        try:
            return await self._send(messages if named else _nameless(messages), tools)
        except openai.BadRequestError as exc:
            if not named or not _rejects_names(exc):
                raise
            log.warning("the model server refuses the `name` field of chat messages; sending without it "
                        "(speakers stay marked in the text)")
            self.send_names = False
        return await self._send(_nameless(messages), tools)

    async def _send(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> tuple[_Stream, int]:
        params: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                  "stream_options": {"include_usage": True}}
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
        return reply_after(await self._store.chat_history(conversation_id), messages, after_item)

    async def add_context(self, conversation_id: str, messages: Sequence[str]) -> str | None:
        """Store messages without asking for an answer; return the newest record's id."""
        if not messages:
            return None
        last = await self._store.append_chat(conversation_id, [user_message(text) for text in messages])
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


async def _tool_round(request: TurnRequest, text: str, calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """Run the calls; the assistant message that made them and one result message per call."""
    if request.run_tools is None:  # nobody to run them: the original sample's answer
        outputs = [ToolOutput(call.call_id, NO_FUNCTION) for call in calls]
    else:
        outputs = await request.run_tools(calls)
    by_id = {output.call_id: output.output for output in outputs}
    asked = {"role": "assistant", "content": text or None,
             "tool_calls": [{"id": call.call_id, "type": "function",
                             "function": {"name": call.name, "arguments": call.arguments}} for call in calls]}
    return [asked, *({"role": "tool", "tool_call_id": call.call_id, "content": by_id.get(call.call_id, NO_OUTPUT)}
                     for call in calls)]


def _nameless(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in message.items() if key != "name"} for message in messages]


def _rejects_names(exc: openai.BadRequestError) -> bool:
    param = getattr(exc, "param", None)
    return bool(_MENTIONS_NAME.search(f"{param or ''} {exc.message}"))


def _in_band(exc: openai.APIError) -> BackendError:
    """An error the server reported inside the stream: its own trouble is worth another try."""
    code = exc.code if isinstance(exc.code, str) else None
    if code in ACCOUNT_CODES:
        kind = FailureKind.ACCOUNT
    elif code is None or code in TRANSIENT_CODES:
        kind = FailureKind.TRANSIENT
    else:
        kind = FailureKind.REQUEST
    return BackendError(f"the model failed to answer ({code or 'unknown error'})", kind=kind, code=code)


def _add(total: int | None, more: int | None) -> int | None:
    return more if total is None else total + (more or 0)
