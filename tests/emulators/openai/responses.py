"""POST /v1/responses (JSON or SSE), GET/DELETE /v1/responses/{id}, cancel, input_items.

Platform rules emulated: a response on a conversation sees the conversation's items before its input;
its input and output items join the conversation only when it completes; while one response is in
progress on a conversation, another gets 400 `conversation_locked`; every function_call needs its
function_call_output (same call_id) before the conversation can go on; instructions are per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from . import errors, items
from .app import BODY, REQUEST_ID, Platform
from .faults import StreamFault
from .model import ModelReply, ModelRequest, context_chars, text_of
from .sse import CharBudget, ClientGone, SSEWriter
from .state import Conversation, StoredResponse, new_id

STREAM_FAILURE_MESSAGE = ("An error occurred while processing your request. You can retry your request, or "
                          "contact us through our help center at help.openai.com if the error persists. Please "
                          "include the request ID {request_id} in your message.")


def register(app: web.Application, platform: Platform) -> None:
    endpoints = ResponsesEndpoints(platform)
    app.router.add_post("/v1/responses", endpoints.create)
    app.router.add_get("/v1/responses/{response_id}", endpoints.retrieve)
    app.router.add_delete("/v1/responses/{response_id}", endpoints.delete)
    app.router.add_post("/v1/responses/{response_id}/cancel", endpoints.cancel)
    app.router.add_get("/v1/responses/{response_id}/input_items", endpoints.input_items)


class ResponsesEndpoints:
    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.state = platform.state

    async def create(self, request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = request[BODY]
        model = self.p.require_model(body.get("model"), status=400)
        conv_id = _conversation_id(body.get("conversation"))
        if conv_id is None:
            return await self._create(request, body, model, None)
        self.state.enter(conv_id)
        try:
            conversation = self.state.conversations.get(conv_id)
            if conversation is None:
                raise errors.conversation_not_found(conv_id)
            if body.get("previous_response_id"):
                raise errors.previous_and_conversation()
            if conversation.active_response is not None:
                raise errors.conversation_locked()
            return await self._create(request, body, model, conversation)
        finally:
            self.state.leave(conv_id)

    async def _create(self, request: web.Request, body: dict[str, Any], model: str,
                      conversation: Conversation | None) -> web.StreamResponse:
        history = self._history(body, conversation)
        new_items = items.resolve_references(items.stored_items(body.get("input")), history)
        results = items.tool_results(history, new_items)
        tools = list(body.get("tools") or [])
        model_request = ModelRequest(
            endpoint="responses", model=model, input=new_items, context=history + new_items,
            instructions=body.get("instructions"), tools=tools, tool_results=results,
            conversation_id=conversation.id if conversation else None,
            metadata=dict(body.get("metadata") or {}), body=body, heard=items.heard(new_items))
        reply = self.p.model.respond(model_request)
        resp = _response_object(new_id("resp", hex_chars=48), body, model, conversation)
        turn = _Turn(self.p, resp, model_request, reply, conversation)
        if conversation is not None:
            conversation.active_response = resp["id"]
        try:
            if body.get("stream"):
                fault = self.p.faults.take_stream(request.path)
                return await turn.stream(self.p.sse(request, "responses"), fault, request[REQUEST_ID])
            await self.p.model.think(reply.text or "")
            turn.complete()
            return self.p.json(request, _snapshot(resp))
        finally:
            if conversation is not None and conversation.active_response == resp["id"]:
                conversation.active_response = None

    def _history(self, body: dict[str, Any], conversation: Conversation | None) -> list[dict[str, Any]]:
        if conversation is not None:
            return list(conversation.items)
        previous_id = body.get("previous_response_id")
        if not previous_id:
            return []
        previous = self.state.responses.get(previous_id)
        if previous is None:
            raise errors.ApiError(400, f"Previous response with id '{previous_id}' not found.",
                                  param="previous_response_id", code="previous_response_not_found")
        return previous.context + list(previous.body.get("output", []))

    def _stored(self, request: web.Request) -> StoredResponse:
        resp_id = request.match_info["response_id"]
        stored = self.state.responses.get(resp_id)
        if stored is None:
            raise errors.response_not_found(resp_id)
        return stored

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
        return self.p.json(request, _snapshot(self._stored(request).body))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        stored = self._stored(request)
        del self.state.responses[stored.body["id"]]
        return self.p.json(request, {"id": stored.body["id"], "object": "response", "deleted": True})

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        stored = self._stored(request)
        if not stored.body.get("background"):
            raise errors.only_background_cancellable()
        return self.p.json(request, stored.body)

    async def input_items(self, request: web.Request) -> web.StreamResponse:
        stored = self._stored(request)
        limit, order, after = items.list_params(request.query)
        return self.p.json(request, items.page(stored.input_items, limit=limit, order=order, after=after))


class _Turn:
    """One response being generated: builds output items, streams events, commits on completion."""

    def __init__(self, platform: Platform, resp: dict[str, Any], model_request: ModelRequest,
                 reply: ModelReply, conversation: Conversation | None) -> None:
        self.p = platform
        self.resp = resp
        self.request = model_request
        self.reply = reply
        self.conversation = conversation
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.writer: SSEWriter | None = None

    def _finished_output(self) -> list[dict[str, Any]]:
        out = []
        if self.reply.text is not None:
            out.append(items.output_message(self.reply.text))
        out += [items.function_call_item(call) for call in self.reply.tool_calls]
        return out

    def complete(self, output: list[dict[str, Any]] | None = None) -> None:
        """The response completed: status, usage, storage, and the conversation gets its items."""
        resp = self.resp
        resp["output"] = output if output is not None else self._finished_output()
        resp["status"] = "completed"
        resp["completed_at"] = int(time.time())
        out_chars = sum(len(text_of(i.get("content"))) + len(i.get("arguments", "")) for i in resp["output"])
        resp["usage"] = _usage(self.p.model.usage_numbers(
            context_chars(self.request.context, self.request.instructions), out_chars, self.request.cached_chars))
        self._store()
        if self.conversation is not None:
            self.conversation.items.extend(self.request.input + resp["output"])

    def fail(self, code: str, message: str) -> None:
        self.resp.update(status="failed", error={"code": code, "message": message}, output=self.output)
        self._store()

    def _store(self) -> None:
        if self.resp.get("store") is not False:
            self.p.state.responses[self.resp["id"]] = StoredResponse(
                self.resp, list(self.request.input), list(self.request.context))

    async def emit(self, kind: str, **fields: Any) -> None:
        assert self.writer is not None
        await self.writer.event(kind, {"type": kind, "sequence_number": self.seq, **fields})
        self.seq += 1

    async def stream(self, writer: SSEWriter, fault: StreamFault | None, request_id: str) -> web.StreamResponse:
        self.writer = writer
        budget = CharBudget(fault.after_chars if fault else None)
        await writer.open()
        try:
            await self.emit("response.created", response=_snapshot(self.resp))
            await self.emit("response.in_progress", response=_snapshot(self.resp))
            broke = False
            if self.reply.text is not None:
                broke = await self._stream_text(budget)
                if self.p.model.finish_delay and not broke:
                    await asyncio.sleep(self.p.model.finish_delay)
            for call in self.reply.tool_calls:
                if broke:
                    break
                broke = await self._stream_call(call, budget)
            if broke and fault is not None:
                return await self._break(writer, fault, request_id)
            self.complete(self.output)
            if fault is not None and fault.kind == "lose_completion":
                writer.cut()  # done and stored server-side; the client never hears it
                return writer.response
            await self.emit("response.completed", response=_snapshot(self.resp))
        except ClientGone:
            self.fail("server_error", "The client closed the connection.")
            return writer.response
        return await writer.finish()

    async def _break(self, writer: SSEWriter, fault: StreamFault, request_id: str) -> web.StreamResponse:
        if fault.kind == "cut":
            self.fail("server_error", "The connection was cut by the emulator.")
            writer.cut()
            return writer.response
        message = fault.message or STREAM_FAILURE_MESSAGE.format(request_id=request_id)
        await self.emit("error", code=fault.code, message=message, param=None)
        self.fail(fault.code, message)
        await self.emit("response.failed", response=_snapshot(self.resp))
        return await writer.finish()

    async def _stream_text(self, budget: CharBudget) -> bool:
        index = len(self.output)
        item = items.output_message("", status="in_progress")
        item["content"] = []
        self.output.append(item)
        await self.emit("response.output_item.added", output_index=index, item=_copy(item))
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        await self.emit("response.content_part.added", item_id=item["id"], output_index=index,
                        content_index=0, part=dict(part))
        item["content"].append(part)
        async for delta in self.p.model.stream(self.reply.text or ""):
            part["text"] += delta
            await self.emit("response.output_text.delta", item_id=item["id"], output_index=index,
                            content_index=0, delta=delta, logprobs=[])
            if budget.spend(delta):
                return True
        await self.emit("response.output_text.done", item_id=item["id"], output_index=index,
                        content_index=0, text=part["text"], logprobs=[])
        await self.emit("response.content_part.done", item_id=item["id"], output_index=index,
                        content_index=0, part=dict(part))
        item["status"] = "completed"
        await self.emit("response.output_item.done", output_index=index, item=_copy(item))
        return False

    async def _stream_call(self, call: Any, budget: CharBudget) -> bool:
        index = len(self.output)
        item = items.function_call_item(call, status="in_progress", arguments="")
        self.output.append(item)
        await self.emit("response.output_item.added", output_index=index, item=_copy(item))
        async for delta in self.p.model.stream(call.arguments):
            item["arguments"] += delta
            await self.emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                            delta=delta)
            if budget.spend(delta):
                return True
        await self.emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                        name=call.name, arguments=item["arguments"])
        item["status"] = "completed"
        await self.emit("response.output_item.done", output_index=index, item=_copy(item))
        return False


def _conversation_id(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _response_object(resp_id: str, body: dict[str, Any], model: str,
                     conversation: Conversation | None) -> dict[str, Any]:
    return {
        "id": resp_id, "object": "response", "created_at": int(time.time()), "status": "in_progress",
        "background": bool(body.get("background") or False), "completed_at": None,
        "conversation": {"id": conversation.id} if conversation else None,
        "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": body.get("max_tool_calls"),
        "metadata": dict(body.get("metadata") or {}), "model": model, "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"), "service_tier": "default",
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature") if body.get("temperature") is not None else 1.0,
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice") or "auto", "tools": _tools(body.get("tools")),
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": body.get("top_p") if body.get("top_p") is not None else 1.0,
        "truncation": body.get("truncation") or "disabled",
        **({"user": body["user"]} if body.get("user") else {}),
    }


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in tools or []:
        tool = dict(tool)
        if tool.get("type") == "function":
            tool.setdefault("description", None)
            tool.setdefault("strict", True)
        out.append(tool)
    return out


def _usage(numbers: dict[str, int] | None) -> dict[str, Any] | None:
    if numbers is None:
        return None
    return {"input_tokens": numbers["input_tokens"],
            "input_tokens_details": {"cached_tokens": numbers["cached_tokens"], "cache_write_tokens": 0},
            "output_tokens": numbers["output_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": numbers["total_tokens"]}


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    if "content" in out:
        out["content"] = [dict(part) for part in out["content"]]
    return out


def _snapshot(resp: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resp.items() if not (k == "usage" and v is None)}  # the spec: an object or absent
    out["output"] = [_copy(item) for item in resp["output"]]
    return out
