"""The default backend: OpenAI Conversations + Responses (one channel ↔ one Conversation)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai

from bot.backends.base import BackendError, FailureKind, FoundReply, TextDelta, TurnCompleted, TurnEvent, TurnRequest
from bot.backends.openai_errors import ACCOUNT_CODES, TRANSIENT_CODES, classify

CONVERSATION_GONE = "conversation_gone"
RECOVERY_ITEMS = 50  # how far back to look for an unfinished turn's messages


class ResponsesBackend:
    """Each turn is one streamed `responses.create(conversation=…)` with the turn's messages as input."""

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
        params: dict[str, Any] = {
            "model": self.model,
            "conversation": request.conversation_id,
            "instructions": request.instructions,
            "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
                for text in request.messages
            ],
            "stream": True,
            "truncation": "auto",
            "prompt_cache_key": f"slack-{request.channel}",
        }
        if request.speaker_ids:
            params["safety_identifier"] = _hashed(request.speaker_ids[-1])
        completed = False
        streaming = False
        try:
            stream = await self._client.responses.create(**params)
            async with stream:
                async for event in stream:
                    streaming = True
                    if event.type == "response.output_text.delta":
                        yield TextDelta(event.delta)
                    elif event.type == "response.completed":
                        response = event.response
                        usage = response.usage
                        completed = True
                        yield TurnCompleted(
                            text=response.output_text,
                            response_id=response.id,
                            last_item_id=response.output[-1].id if response.output else None,
                            input_tokens=usage.input_tokens if usage else None,
                            output_tokens=usage.output_tokens if usage else None,
                        )
                    elif event.type in ("response.failed", "response.incomplete"):
                        raise _failed(event.response)
                    elif event.type == "error":
                        code = getattr(event, "code", None)
                        raise BackendError(f"the model reported an error ({code or 'unknown'})",
                                           kind=_kind(code), code=code)
        except BackendError:
            raise
        except openai.NotFoundError as exc:
            if "conversation" in str(exc.message).lower():
                raise BackendError("the channel's conversation no longer exists at the model service",
                                   kind=FailureKind.TRANSIENT, code=CONVERSATION_GONE, status=404) from exc
            raise classify(exc) from exc
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            raise classify(exc, streaming=streaming) from exc
        if not completed:
            raise BackendError("the model's answer was cut off", kind=FailureKind.TRANSIENT, code="stream_cut",
                               outcome_unknown=True)

    async def find_reply(self, conversation_id: str, messages: Sequence[str],
                         after_item: str | None = None) -> FoundReply | None:
        if not messages:
            return None
        try:
            page = await self._client.conversations.items.list(conversation_id, order="desc",
                                                               limit=RECOVERY_ITEMS)
        except openai.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from exc
        newest_first = [item.model_dump() for item in page.data]
        return answer_after(list(reversed(newest_first)), messages, after_item)

    async def check(self) -> str:
        try:
            model = await self._client.models.retrieve(self.model)
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from exc
        return f"model {model.id} is available"

    async def aclose(self) -> None:
        await self._client.close()


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
    `after_item`, followed only by the answer (assistant messages, tool calls). Return the answer's
    text (possibly empty) if so, else None.
    """
    ids = [item.get("id") for item in items]
    window = list(items[ids.index(after_item) + 1:]) if after_item in ids else list(items)
    users = [index for index, item in enumerate(window) if _is_message(item, "user")]
    texts = [_text(window[index]) for index in users]
    expected = list(messages)
    matches = texts == expected if after_item in ids else texts[-len(expected):] == expected
    if not matches:
        return None
    answer = [_text(item) for item in window[users[-1] + 1:] if _is_message(item, "assistant")]
    return FoundReply("\n\n".join(text for text in answer if text), window[-1].get("id"))


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
