"""POST /v1/chat/completions, streamed (`data:` chunks, then `data: [DONE]`) or not.

The model's context is the whole `messages` list; what it "heard" is the trailing run of user
messages (with their `name`, "alice: hello"), or the tool results after the last assistant
message with tool_calls. The platform's pairing rules for tool calls are enforced.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web

from . import errors
from .app import BODY, REQUEST_ID, Platform
from .faults import StreamFault
from .model import ModelReply, ModelRequest, ToolCall, ToolResult, context_chars, text_of
from .sse import CharBudget, ClientGone, SSEWriter
from .state import new_id

FINGERPRINT = "fp_emulator01"
NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]+")
NAME_MAX = 64


def register(app: web.Application, platform: Platform) -> None:
    app.router.add_post("/v1/chat/completions", ChatEndpoints(platform).create)


class ChatEndpoints:
    def __init__(self, platform: Platform) -> None:
        self.p = platform

    async def create(self, request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = request[BODY]
        model = self.p.require_model(body.get("model"))
        messages = list(body.get("messages") or [])
        self._check_names(messages)
        results = _tool_results(messages)
        new = _trailing(messages, "tool" if results else "user")
        model_request = ModelRequest(
            endpoint="chat", model=model, input=new, context=messages,
            instructions="\n".join(text_of(m.get("content")) for m in messages
                                   if m.get("role") in ("system", "developer")) or None,
            tools=list(body.get("tools") or []), tool_results=results,
            metadata=dict(body.get("metadata") or {}), body=body,
            heard=[_speaker_line(m) for m in new if m.get("role") == "user"])
        reply = self.p.model.respond(model_request)
        completion = _Completion(self.p, body, model, reply, context_chars(messages, None), model_request.cached_chars)
        if body.get("stream"):
            fault = self.p.faults.take_stream(request.path)
            return await completion.stream(self.p.sse(request, "chat"), fault, request[REQUEST_ID])
        await self.p.model.think(reply.text or "")
        return self.p.json(request, completion.whole())


    def _check_names(self, messages: list[dict[str, Any]]) -> None:
        """The API enforces what the spec only documents: names match ^[a-zA-Z0-9_-]+$, at most 64 long."""
        for index, message in enumerate(messages):
            name = message.get("name")
            if not isinstance(name, str):
                continue
            param = f"messages[{index}].name"
            if not NAME_PATTERN.fullmatch(name):
                error = errors.name_pattern(param)
            elif len(name) > NAME_MAX:
                error = errors.string_too_long(param, NAME_MAX, len(name))
            else:
                continue
            self.p.state.violations.append(f"POST /v1/chat/completions: {error.message} [platform_rule]")
            raise error


def _speaker_line(message: dict[str, Any]) -> str:
    text = text_of(message.get("content"))
    return f"{message['name']}: {text}" if message.get("name") else text


def _trailing(messages: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    run: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != role:
            break
        run.insert(0, message)
    return run


def _tool_results(messages: list[dict[str, Any]]) -> list[ToolResult]:
    """Check every tool message answers a preceding tool call and every call is answered."""
    open_calls: dict[str, str] = {}
    for message in messages:
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in open_calls:
                raise errors.chat_tool_without_call()
            open_calls.pop(message["tool_call_id"])
            continue
        if open_calls:
            raise errors.chat_call_without_tool(list(open_calls))
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                open_calls[call["id"]] = call.get("function", {}).get("name")
    if open_calls:
        raise errors.chat_call_without_tool(list(open_calls))
    names = {call["id"]: call.get("function", {}).get("name") for m in messages if m.get("role") == "assistant"
             for call in m.get("tool_calls") or []}
    return [ToolResult(m["tool_call_id"], names.get(m["tool_call_id"]), text_of(m.get("content")))
            for m in _trailing(messages, "tool")]


class _Completion:
    def __init__(self, platform: Platform, body: dict[str, Any], model: str, reply: ModelReply,
                 prompt_chars: int, cached_chars: int = 0) -> None:
        self.p = platform
        self.body = body
        self.model = model
        self.reply = reply
        self.id = new_id("chatcmpl", alnum_chars=29, sep="-")
        self.created = int(time.time())
        self.prompt_chars = prompt_chars
        self.cached_chars = cached_chars

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.reply.tool_calls else "stop"

    def usage(self) -> dict[str, Any] | None:
        out_chars = len(self.reply.text or "") + sum(len(c.arguments) for c in self.reply.tool_calls)
        numbers = self.p.model.usage_numbers(self.prompt_chars, out_chars, self.cached_chars)
        if numbers is None:
            return None
        return {"prompt_tokens": numbers["input_tokens"], "completion_tokens": numbers["output_tokens"],
                "total_tokens": numbers["total_tokens"],
                "prompt_tokens_details": {"cached_tokens": numbers["cached_tokens"], "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def whole(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.reply.text, "refusal": None,
                                   "annotations": []}
        if self.reply.tool_calls:
            message["tool_calls"] = [_call(c) for c in self.reply.tool_calls]
        out = {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
               "choices": [{"index": 0, "message": message, "logprobs": None,
                            "finish_reason": self.finish_reason}],
               "service_tier": "default", "system_fingerprint": FINGERPRINT}
        usage = self.usage()
        if usage is not None:
            out["usage"] = usage
        return out

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "service_tier": "default", "system_fingerprint": FINGERPRINT,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if self._include_usage:
            chunk["usage"] = None
        return chunk

    @property
    def _include_usage(self) -> bool:
        return bool((self.body.get("stream_options") or {}).get("include_usage"))

    async def stream(self, writer: SSEWriter, fault: StreamFault | None, request_id: str) -> web.StreamResponse:
        budget = CharBudget(fault.after_chars if fault else None)
        await writer.open()
        try:
            first = {"role": "assistant", "content": "" if self.reply.text is not None else None, "refusal": None}
            await writer.event(None, self._chunk(first))
            broke = False
            if self.reply.text is not None:
                async for delta in self.p.model.stream(self.reply.text):
                    await writer.event(None, self._chunk({"content": delta}))
                    if budget.spend(delta):
                        broke = True
                        break
            for index, call in enumerate(self.reply.tool_calls):
                if broke:
                    break
                broke = await self._stream_call(writer, index, call, budget)
            if broke and fault is not None:
                return await self._break(writer, fault, request_id)
            await writer.event(None, self._chunk({}, self.finish_reason))
            if self.p.model.finish_delay:
                await asyncio.sleep(self.p.model.finish_delay)
            if self._include_usage:
                chunk = self._chunk({})
                chunk["choices"] = []
                chunk["usage"] = self.usage()
                await writer.event(None, chunk)
            await writer.event(None, "[DONE]")
        except ClientGone:
            return writer.response
        return await writer.finish()

    async def _stream_call(self, writer: SSEWriter, index: int, call: ToolCall, budget: CharBudget) -> bool:
        head = {"index": index, "id": call.call_id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}
        await writer.event(None, self._chunk({"tool_calls": [head]}))
        async for delta in self.p.model.stream(call.arguments):
            await writer.event(None, self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta}}]}))
            if budget.spend(delta):
                return True
        return False

    async def _break(self, writer: SSEWriter, fault: StreamFault, request_id: str) -> web.StreamResponse:
        if fault.kind == "cut":
            writer.cut()
            return writer.response
        message = fault.message or ("The server had an error while processing your request. Sorry about that! "
                                    f"(request id {request_id})")
        error = {"error": {"message": message, "type": "server_error", "param": None, "code": fault.code}}
        await writer.event(None, error, check=False)  # an in-band error, not a chunk
        return await writer.finish()


def _call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
