"""The default backend: OpenAI Conversations + Responses (one channel ↔ one Conversation).

Each turn is a streamed `responses.create(conversation=…)` with the turn's messages as input; when the
model calls functions, their outputs go back as `function_call_output` items in another request on
the same conversation, until it answers (at most `max_tool_rounds` rounds).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from bot.backends.base import (
    CONVERSATION_GONE,
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

log = logging.getLogger(__name__)

RECOVERY_PAGE = 100  # conversation items per request when looking for an unfinished turn's messages
RECOVERY_ITEMS = 2000  # how far back to look at most
INTERRUPTED = '{"status": "error", "message": "The tool call was interrupted; its result is unknown."}'
_DANGLING = re.compile(r"\bcall_[A-Za-z0-9_-]+")


class _DanglingCalls(Exception):
    """The conversation has tool calls without results (from a turn that was given up)."""

    def __init__(self, error: openai.BadRequestError, call_ids: list[str]) -> None:
        super().__init__(str(error))
        self.error = error
        self.call_ids = call_ids


@dataclass
class _Round:
    """What one response of a turn produced."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    response: Any = None


class ResponsesBackend:
    """OpenAI (or Azure) Conversations + Responses."""

    name = "responses"

    def __init__(self, client: openai.AsyncOpenAI, *, model: str) -> None:
        self._client = client
        self.model = model

    async def create_conversation(self, channel: str) -> str:
        try:
            conversation = await self._client.conversations.create(metadata={"slack_channel": channel})
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            raise classify(exc) from exc
        return conversation.id

    async def stream_turn(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        items: list[dict[str, Any]] = [_user_message(text) for text in request.messages]
        items += [_function_output(output) for output in request.tool_outputs]
        shown = ""
        usage_in = usage_out = 0
        # Once a round has completed (or when continuing an interrupted turn), the turn's messages are
        # in the conversation with tool calls awaiting their results: a failure from then on must not
        # lead to the messages being sent again — the caller looks in the conversation and carries on.
        committed = bool(request.tool_outputs)
        for round_number in range(request.max_tool_rounds + 1):
            tools_allowed = round_number < request.max_tool_rounds
            current = _Round()
            if shown and not shown.endswith(ROUND_SEPARATOR):
                shown += ROUND_SEPARATOR
                yield TextDelta(ROUND_SEPARATOR)
            try:
                for attempt in range(2):
                    try:
                        async for delta in self._respond(request, items, tools_allowed, current):
                            shown += delta
                            yield TextDelta(delta)
                        break
                    except _DanglingCalls as dangling:
                        if attempt:
                            raise classify(dangling.error) from dangling.error
                        await self._close_calls(request.conversation_id, dangling.call_ids)
            except BackendError as error:
                error.outcome_unknown = error.outcome_unknown or committed
                raise
            committed = True
            usage = current.response.usage
            usage_in += usage.input_tokens if usage else 0
            usage_out += usage.output_tokens if usage else 0
            if not current.calls:
                output = current.response.output
                yield TurnCompleted(text=shown, response_id=current.response.id,
                                    last_item_id=output[-1].id if output else None,
                                    input_tokens=usage_in, output_tokens=usage_out)
                return
            yield ToolsRunning(tuple(call.name for call in current.calls))
            outputs = await _run(request, current.calls)
            items = [_function_output(output) for output in outputs]
        raise BackendError("the model kept calling tools", kind=FailureKind.REQUEST, code="tool_rounds")

    async def _respond(self, request: TurnRequest, items: list[dict[str, Any]], tools_allowed: bool,
                       current: _Round) -> AsyncIterator[str]:
        """One streamed response; fills `current` with its text, tool calls and final object."""
        params = self._params(request, items, tools_allowed)
        streaming = False
        try:
            stream = await self._client.responses.create(**params)
            async with stream:
                async for event in stream:
                    streaming = True
                    if event.type == "response.output_text.delta":
                        current.text += event.delta
                        yield event.delta
                    elif event.type == "response.completed":
                        current.response = event.response
                        current.calls = [ToolCall(item.call_id, item.name, item.arguments)
                                         for item in event.response.output if item.type == "function_call"]
                    elif event.type in ("response.failed", "response.incomplete"):
                        raise _failed(event.response)
                    elif event.type == "error":
                        code = getattr(event, "code", None)
                        raise BackendError(f"the model reported an error ({code or 'unknown'})",
                                           kind=_kind(code), code=code)
        except BackendError:
            raise
        except openai.BadRequestError as exc:
            call_ids = _DANGLING.findall(str(exc.message)) if "No tool output found" in str(exc.message) else []
            if call_ids:
                raise _DanglingCalls(exc, call_ids) from exc
            raise classify(exc) from exc
        except openai.NotFoundError as exc:
            if "conversation" in str(exc.message).lower():
                raise BackendError("the channel's conversation no longer exists at the model service",
                                   kind=FailureKind.TRANSIENT, code=CONVERSATION_GONE, status=404) from exc
            raise classify(exc) from exc
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            raise classify(exc, streaming=streaming) from exc
        if current.response is None:
            raise BackendError("the model's answer was cut off", kind=FailureKind.TRANSIENT, code="stream_cut",
                               outcome_unknown=True)

    def _params(self, request: TurnRequest, items: list[dict[str, Any]], tools_allowed: bool) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "conversation": request.conversation_id,
            "instructions": request.instructions,
            "input": items,
            "stream": True,
            "truncation": "auto",
            "prompt_cache_key": f"slack-{request.channel}",
        }
        tools = [dict(tool) for tool in request.hosted_tools]
        if tools_allowed:
            tools += [{"type": "function", **tool, "strict": False} for tool in request.tools]
        if tools:
            params["tools"] = tools
        if request.speaker_ids:
            params["safety_identifier"] = _hashed(request.speaker_ids[-1])
        return params

    async def _close_calls(self, conversation_id: str, call_ids: Sequence[str]) -> None:
        """A turn that was given up left tool calls without results, and the API refuses every request
        on the conversation until they have one: give them an error result."""
        log.warning("conversation %s: closing %d tool call(s) an earlier turn left open", conversation_id,
                    len(call_ids))
        try:
            await self._client.conversations.items.create(conversation_id, items=[
                _function_output(ToolOutput(call_id, INTERRUPTED)) for call_id in call_ids])
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from exc

    async def add_context(self, conversation_id: str, messages: Sequence[str]) -> str | None:
        try:
            created = await self._client.conversations.items.create(
                conversation_id, items=[_user_message(text) for text in messages])
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from exc
        return created.data[-1].id if created.data else None

    async def find_reply(self, conversation_id: str, messages: Sequence[str],
                         after_item: str | None = None) -> FoundReply | None:
        if not messages:
            return None
        newest_first: list[dict[str, Any]] = []
        try:  # page back to the previous turn's last item (a turn can hold many items)
            async for item in self._client.conversations.items.list(conversation_id, order="desc",
                                                                    limit=RECOVERY_PAGE):
                newest_first.append(item.model_dump())
                if newest_first[-1].get("id") == after_item or len(newest_first) >= RECOVERY_ITEMS:
                    break
        except openai.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from exc
        return answer_after(list(reversed(newest_first)), messages, after_item)

    async def check(self) -> str:
        try:
            model = await self._client.models.retrieve(self.model)
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from exc
        return f"model {model.id} is available"

    async def aclose(self) -> None:
        await self._client.close()


async def _run(request: TurnRequest, calls: Sequence[ToolCall]) -> list[ToolOutput]:
    if request.run_tools is None:  # nobody to run them: the original sample's answer
        return [ToolOutput(call.call_id, NO_FUNCTION) for call in calls]
    return await request.run_tools(calls)


def _user_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _function_output(output: ToolOutput) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": output.call_id, "output": output.output}


def _failed(response: Any) -> BackendError:
    error = getattr(response, "error", None)
    code = getattr(error, "code", None) if error else None
    if getattr(response, "status", None) == "incomplete":
        details = getattr(response, "incomplete_details", None)
        reason = getattr(details, "reason", None) or "unknown"
        return BackendError(f"the model stopped before finishing ({reason})", kind=FailureKind.REQUEST,
                            code=f"incomplete:{reason}", request_id=getattr(response, "id", None))
    return BackendError(f"the model failed to answer ({code or 'unknown error'})", kind=_kind(code), code=code,
                        request_id=getattr(response, "id", None))


def _kind(code: str | None) -> FailureKind:
    """A failure reported inside the stream: server-side trouble is worth another try."""
    if code is None or code in TRANSIENT_CODES:
        return FailureKind.TRANSIENT
    if code in ACCOUNT_CODES:
        return FailureKind.ACCOUNT
    return FailureKind.REQUEST


def answer_after(items: Sequence[dict[str, Any]], messages: Sequence[str],
                 after_item: str | None) -> FoundReply | None:
    """Did a turn with input `messages` complete? `items` are the conversation's newest items, oldest
    first; `after_item` is the last item of the turn before (None for a conversation's first turn).

    A completed turn is the conversation's newest: its messages are the last user messages, after
    `after_item`, followed only by the answer (assistant messages, tool calls and their outputs).
    Return the answer (text possibly empty; tool calls still waiting for their output) if so, else None.
    """
    ids = [item.get("id") for item in items]
    window = list(items[ids.index(after_item) + 1:]) if after_item in ids else list(items)
    users = [index for index, item in enumerate(window) if _is_message(item, "user")]
    texts = [_text(window[index]) for index in users]
    expected = list(messages)
    matches = texts == expected if after_item in ids else texts[-len(expected):] == expected
    if not matches:
        return None
    after = window[users[-1] + 1:]
    answer = [_text(item) for item in after if _is_message(item, "assistant")]
    answered = {item.get("call_id") for item in after if item.get("type") == "function_call_output"}
    pending = tuple(ToolCall(item["call_id"], item.get("name", ""), item.get("arguments", ""))
                    for item in after if item.get("type") == "function_call" and item.get("call_id") not in answered)
    return FoundReply(ROUND_SEPARATOR.join(text for text in answer if text), window[-1].get("id"), pending)


def _is_message(item: dict[str, Any], role: str) -> bool:
    return item.get("type") == "message" and item.get("role") == role


def _text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content or () if isinstance(part, dict))


def _hashed(user_id: str) -> str:
    """OpenAI's safety_identifier: a stable, non-reversible id per Slack user."""
    return hashlib.sha256(f"slack-assistant-bridge:{user_id}".encode()).hexdigest()[:32]
