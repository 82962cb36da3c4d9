"""The default backend: OpenAI Conversations + Responses (one channel ↔ one Conversation)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import openai

from bot.backends.base import BackendError, TextDelta, TurnCompleted, TurnEvent, TurnRequest
from bot.backends.openai_errors import TRANSIENT_CODES, classify


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
        try:
            stream = await self._client.responses.create(**params)
            async with stream:
                async for event in stream:
                    if event.type == "response.output_text.delta":
                        yield TextDelta(event.delta)
                    elif event.type == "response.completed":
                        response = event.response
                        usage = response.usage
                        completed = True
                        yield TurnCompleted(
                            text=response.output_text,
                            response_id=response.id,
                            input_tokens=usage.input_tokens if usage else None,
                            output_tokens=usage.output_tokens if usage else None,
                        )
                    elif event.type in ("response.failed", "response.incomplete"):
                        raise _failed(event.response)
                    elif event.type == "error":
                        code = getattr(event, "code", None)
                        raise BackendError(f"the model reported an error ({code or 'unknown'})",
                                           transient=code in TRANSIENT_CODES, code=code)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            raise classify(exc) from exc
        if not completed:
            raise BackendError("the model's answer was cut off", transient=True, code="stream_cut")

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
        return BackendError(f"the model stopped before finishing ({reason})", transient=False,
                            code=f"incomplete:{reason}", request_id=getattr(response, "id", None))
    return BackendError(f"the model failed to answer ({code or 'unknown error'})",
                        transient=code in TRANSIENT_CODES or code is None, code=code,
                        request_id=getattr(response, "id", None))


def _hashed(user_id: str) -> str:
    """OpenAI's safety_identifier: a stable, non-reversible id per Slack user."""
    return hashlib.sha256(f"slack-assistant-bridge:{user_id}".encode()).hexdigest()[:32]
