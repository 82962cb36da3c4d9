"""Legacy Assistants runs: create (streamed or not), retrieve, list, steps, submit_tool_outputs, cancel.

A run goes queued → in_progress → (requires_action → queued → in_progress)* → completed | failed |
cancelled. A non-streamed run answers `queued` at once and proceeds in the background (clients poll);
a streamed one sends `thread.*` events and ends with `event: done` / `data: [DONE]`. A dropped
stream does not stop the run (it is a server-side job), so the thread stays busy until it finishes.
Effective instructions: `instructions` (else the assistant's), then `additional_instructions` on a new
line.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from . import errors
from .app import BODY, Platform
from .assistants import add_messages, create_thread, find_assistant, find_thread, message_object
from .faults import StreamFault
from .items import list_params, page
from .model import ModelRequest, ToolCall, ToolResult, context_chars, text_of
from .sse import CharBudget, ClientGone, SSEWriter
from .state import Run, Thread, new_id, now

ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
RUN_FAILURE_MESSAGE = "Sorry, something went wrong."
RUN_TTL_SECONDS = 600


def register(app: web.Application, platform: Platform) -> None:
    e = RunEndpoints(platform)
    app.router.add_post("/v1/threads/runs", e.create_thread_and_run)
    app.router.add_post("/v1/threads/{thread_id}/runs", e.create)
    app.router.add_get("/v1/threads/{thread_id}/runs", e.list_runs)
    app.router.add_get("/v1/threads/{thread_id}/runs/{run_id}", e.retrieve)
    app.router.add_get("/v1/threads/{thread_id}/runs/{run_id}/steps", e.list_steps)
    app.router.add_post("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", e.submit_tool_outputs)
    app.router.add_post("/v1/threads/{thread_id}/runs/{run_id}/cancel", e.cancel)
    app.on_cleanup.append(e.stop_background)


class _Events:
    """Where a run's events go: a live SSE stream, or nowhere once it is gone (or never was)."""

    def __init__(self, writer: SSEWriter | None, fault: StreamFault | None) -> None:
        self.writer = writer
        self.fault = fault
        self.budget = CharBudget(fault.after_chars if fault else None)

    async def emit(self, name: str, data: Any) -> None:
        if self.writer is None:
            return
        try:
            await self.writer.event(name, data)
        except ClientGone:
            self.writer = None

    def text_sent(self, delta: str) -> bool:
        """After a delta: True if the injected fault makes the run fail now."""
        if self.fault is None or not self.budget.spend(delta):
            return False
        fault, self.fault = self.fault, None
        if fault.kind == "cut" and self.writer is not None:
            self.writer.cut()
            self.writer = None
            return False
        return fault.kind == "fail"


class RunEndpoints:
    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.state = platform.state
        self._background: dict[str, asyncio.Task[None]] = {}  # run id -> worker of an unstreamed run

    async def stop_background(self, _app: web.Application) -> None:
        for task in list(self._background.values()):
            task.cancel()

    def _run(self, request: web.Request) -> tuple[Thread, Run]:
        thread = find_thread(self.p, request.match_info["thread_id"])
        run = self.state.runs.get(request.match_info["run_id"])
        if run is None or run.body["thread_id"] != thread.id:
            raise errors.assistants_object_not_found("run", request.match_info["run_id"])
        return thread, run

    # -- endpoints -----------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.StreamResponse:
        thread = find_thread(self.p, request.match_info["thread_id"])
        self.state.enter(thread.id)  # left when the run ends (see _finish), or now if it never starts
        try:
            if thread.active_run is not None:
                raise errors.thread_has_active_run(thread.id, thread.active_run)
        except errors.ApiError:
            self.state.leave(thread.id)
            raise
        return await self._start(request, thread, request[BODY], created_thread=False)

    async def create_thread_and_run(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        find_assistant(self.p, body.get("assistant_id", ""))
        thread = create_thread(self.p, body.get("thread") or {})
        self.state.enter(thread.id)
        return await self._start(request, thread, body, created_thread=True)

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
        return self.p.json(request, self._run(request)[1].body)

    async def list_runs(self, request: web.Request) -> web.StreamResponse:
        thread = find_thread(self.p, request.match_info["thread_id"])
        limit, order, after = list_params(request.query)
        runs = [r.body for r in self.state.runs.values() if r.body["thread_id"] == thread.id]
        return self.p.json(request, page(runs, limit=limit, order=order, after=after))

    async def list_steps(self, request: web.Request) -> web.StreamResponse:
        _, run = self._run(request)
        limit, order, after = list_params(request.query)
        return self.p.json(request, page(run.steps, limit=limit, order=order, after=after))

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        thread, run = self._run(request)
        status = run.body["status"]
        if status not in ("queued", "in_progress", "requires_action"):
            raise errors.cannot_cancel_run(status)
        if status == "requires_action":
            _finish(thread, run, "cancelled")
        else:
            run.body["status"] = "cancelling"  # a streamed run notices at its next delta
            worker = self._background.get(run.body["id"])
            if worker is not None:
                worker.cancel()
        return self.p.json(request, run.body)

    async def submit_tool_outputs(self, request: web.Request) -> web.StreamResponse:
        thread, run = self._run(request)
        if run.body["status"] != "requires_action":
            raise errors.run_not_awaiting_tool_outputs(run.body["id"], run.body["status"])
        outputs = {o.get("tool_call_id"): o.get("output", "") for o in request[BODY].get("tool_outputs") or []}
        missing = [call_id for call_id in run.pending_calls if call_id not in outputs]
        if missing:
            raise errors.tool_outputs_mismatch(missing)
        results = [ToolResult(call_id, call.name, outputs[call_id]) for call_id, call in run.pending_calls.items()]
        step = run.steps[-1]
        for call in step["step_details"]["tool_calls"]:
            call["function"]["output"] = outputs.get(call["id"])
        _close_step(step, "completed")
        run.pending_calls = {}
        run.body.update(status="queued", required_action=None)
        return await self._proceed(request, thread, run, results, prologue=[("thread.run.queued", None),
                                                                           ("thread.run.step.completed", step)])

    # -- the run itself ------------------------------------------------------------------------
    async def _start(self, request: web.Request, thread: Thread, body: dict[str, Any], *,
                     created_thread: bool) -> web.StreamResponse:
        try:
            assistant = find_assistant(self.p, body.get("assistant_id", ""))
            model = self.p.require_model(body.get("model") or assistant["model"])
        except errors.ApiError:
            self.state.leave(thread.id)
            raise
        add_messages(thread, list(body.get("additional_messages") or []))
        instructions = body.get("instructions") if body.get("instructions") is not None \
            else assistant.get("instructions") or ""
        if body.get("additional_instructions"):
            instructions = f"{instructions}\n{body['additional_instructions']}" if instructions \
                else body["additional_instructions"]
        created = now()
        run = Run({
            "id": new_id("run"), "object": "thread.run", "created_at": created, "assistant_id": assistant["id"],
            "thread_id": thread.id, "status": "queued", "started_at": None,
            "expires_at": created + RUN_TTL_SECONDS, "cancelled_at": None, "failed_at": None,
            "completed_at": None, "required_action": None, "last_error": None, "model": model,
            "instructions": instructions,
            "tools": list(body["tools"]) if body.get("tools") is not None else list(assistant["tools"]),
            "metadata": dict(body.get("metadata") or {}), "incomplete_details": None, "usage": None,
            "temperature": body.get("temperature") or 1.0, "top_p": body.get("top_p") or 1.0,
            "max_prompt_tokens": body.get("max_prompt_tokens"),
            "max_completion_tokens": body.get("max_completion_tokens"),
            "truncation_strategy": body.get("truncation_strategy") or {"type": "auto", "last_messages": None},
            "response_format": body.get("response_format") or "auto",
            "tool_choice": body.get("tool_choice") or "auto",
            "parallel_tool_calls": body.get("parallel_tool_calls", True), "reasoning_effort": None,
        })
        run.on_finish = lambda: self.state.leave(thread.id)
        self.state.runs[run.body["id"]] = run
        thread.active_run = run.body["id"]
        prologue: list[tuple[str, Any]] = [("thread.created", thread.resource())] if created_thread else []
        prologue += [("thread.run.created", None), ("thread.run.queued", None)]
        return await self._proceed(request, thread, run, [], prologue=prologue)

    async def _proceed(self, request: web.Request, thread: Thread, run: Run, results: list[ToolResult], *,
                       prologue: list[tuple[str, Any]]) -> web.StreamResponse:
        if not request[BODY].get("stream"):
            task = asyncio.get_running_loop().create_task(self._work(thread, run, results))
            self._background[run.body["id"]] = task
            task.add_done_callback(lambda _: self._worker_done(thread, run))
            return self.p.json(request, run.body)
        writer = self.p.sse(request, "assistants")
        events = _Events(writer, self.p.faults.take_stream(request.path))
        await writer.open()
        for name, data in prologue:
            await events.emit(name, data if data is not None else dict(run.body))
        await self._advance(thread, run, results, events)
        if events.writer is None:
            return writer.response
        await events.emit("done", "[DONE]")
        try:
            return await writer.finish()
        except ClientGone:
            return writer.response

    async def _work(self, thread: Thread, run: Run, results: list[ToolResult]) -> None:
        """A run nobody streams: proceeds in the background; `cancel` interrupts it at once."""
        try:
            await self._advance(thread, run, results, _Events(None, None))
        except asyncio.CancelledError:
            if run.body["status"] != "cancelling":
                raise  # the emulator is shutting down

    def _worker_done(self, thread: Thread, run: Run) -> None:
        self._background.pop(run.body["id"], None)
        if run.body["status"] == "cancelling":  # also when cancelled before it ever ran
            _finish(thread, run, "cancelled")

    async def _advance(self, thread: Thread, run: Run, results: list[ToolResult], events: _Events) -> None:
        """Generate until the run completes, fails, is cancelled or waits for tool outputs."""
        if run.body["status"] == "cancelling":
            return _finish(thread, run, "cancelled")
        run.body.update(status="in_progress", started_at=run.body["started_at"] or now())
        await events.emit("thread.run.in_progress", dict(run.body))
        reply = self.p.model.respond(self._model_request(thread, run, results))
        if reply.text is not None:
            outcome = await self._write_message(thread, run, reply.text, events)
            if outcome != "completed":
                if outcome == "failed":
                    _finish(thread, run, "failed")
                    return await events.emit("thread.run.failed", dict(run.body))
                return _finish(thread, run, "cancelled")
        if reply.tool_calls:
            return await self._request_tools(run, reply.tool_calls, events)
        out_chars = len(reply.text or "")
        numbers = self.p.model.usage_numbers(context_chars(self._context(thread), run.body["instructions"]),
                                             out_chars)
        if numbers is not None:
            run.body["usage"] = {"prompt_tokens": numbers["input_tokens"],
                                 "completion_tokens": numbers["output_tokens"],
                                 "total_tokens": numbers["total_tokens"]}
        _finish(thread, run, "completed")
        await events.emit("thread.run.completed", dict(run.body))

    def _context(self, thread: Thread) -> list[dict[str, Any]]:
        return [{"id": m["id"], "role": m["role"], "content": text_of(m["content"]), "metadata": m["metadata"]}
                for m in thread.messages]

    def _model_request(self, thread: Thread, run: Run, results: list[ToolResult]) -> ModelRequest:
        context = self._context(thread)
        new: list[dict[str, Any]] = []
        for message in reversed(context):
            if message["role"] != "user":
                break
            new.insert(0, message)
        return ModelRequest(endpoint="assistants", model=run.body["model"], input=new, context=context,
                            instructions=run.body["instructions"], tools=run.body["tools"], tool_results=results,
                            thread_id=thread.id, metadata=run.body["metadata"], body=dict(run.body),
                            heard=[m["content"] for m in new])

    def _step(self, run: Run, details: dict[str, Any], step_type: str) -> dict[str, Any]:
        body = run.body
        step = {"id": new_id("step"), "object": "thread.run.step", "created_at": now(),
                "run_id": body["id"], "assistant_id": body["assistant_id"], "thread_id": body["thread_id"],
                "type": step_type, "status": "in_progress", "cancelled_at": None, "completed_at": None,
                "expired_at": None, "failed_at": None, "last_error": None, "step_details": details,
                "usage": None, "metadata": {}}
        run.steps.append(step)
        return step

    async def _write_message(self, thread: Thread, run: Run, text: str, events: _Events) -> str:
        body = run.body
        message = message_object(thread.id, "assistant", [], run_id=body["id"],
                                 assistant_id=body["assistant_id"], status="in_progress")
        thread.messages.append(message)
        step = self._step(run, {"type": "message_creation", "message_creation": {"message_id": message["id"]}},
                          "message_creation")
        await events.emit("thread.run.step.created", dict(step))
        await events.emit("thread.run.step.in_progress", dict(step))
        await events.emit("thread.message.created", _message_copy(message))
        await events.emit("thread.message.in_progress", _message_copy(message))
        message["content"] = [{"type": "text", "text": {"value": "", "annotations": []}}]
        async for delta in self.p.model.stream(text):
            if body["status"] == "cancelling":
                return "cancelled"
            message["content"][0]["text"]["value"] += delta
            await events.emit("thread.message.delta", {
                "id": message["id"], "object": "thread.message.delta",
                "delta": {"content": [{"index": 0, "type": "text", "text": {"value": delta, "annotations": []}}]}})
            if events.text_sent(delta):
                message.update(status="incomplete", incomplete_details={"reason": "run_failed"},
                               incomplete_at=int(time.time()))
                _close_step(step, "failed")
                body["last_error"] = {"code": "server_error", "message": RUN_FAILURE_MESSAGE}
                return "failed"
        message.update(status="completed", completed_at=now())
        await events.emit("thread.message.completed", _message_copy(message))
        _close_step(step, "completed")
        await events.emit("thread.run.step.completed", dict(step))
        return "completed"

    async def _request_tools(self, run: Run, calls: list[ToolCall], events: _Events) -> None:
        step = self._step(run, {"type": "tool_calls", "tool_calls": []}, "tool_calls")
        await events.emit("thread.run.step.created", _step_copy(step))
        await events.emit("thread.run.step.in_progress", _step_copy(step))
        for index, call in enumerate(calls):
            step["step_details"]["tool_calls"].append(
                {"id": call.call_id, "type": "function",
                 "function": {"name": call.name, "arguments": call.arguments, "output": None}})
            head = {"index": index, "id": call.call_id, "type": "function",
                    "function": {"name": call.name, "arguments": "", "output": None}}
            await events.emit("thread.run.step.delta", _step_delta(step["id"], head))
            async for delta in self.p.model.stream(call.arguments):
                piece = {"index": index, "type": "function", "function": {"arguments": delta}}
                await events.emit("thread.run.step.delta", _step_delta(step["id"], piece))
        run.pending_calls = {call.call_id: call for call in calls}
        run.body.update(status="requires_action", required_action={
            "type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
                {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in calls]}})
        await events.emit("thread.run.requires_action", dict(run.body))


def _finish(thread: Thread, run: Run, status: str) -> None:
    """A run reached a terminal status: stamp it, close its steps, free its thread."""
    stamp = now()
    run.body.update(status=status, required_action=None)
    run.body[{"completed": "completed_at", "failed": "failed_at", "cancelled": "cancelled_at"}[status]] = stamp
    if status == "failed" and run.body["last_error"] is None:
        run.body["last_error"] = {"code": "server_error", "message": RUN_FAILURE_MESSAGE}
    for step in run.steps:
        if step["status"] == "in_progress":
            _close_step(step, "cancelled" if status == "cancelled" else status)
    if thread.active_run == run.body["id"]:
        thread.active_run = None
        run.on_finish()


def _close_step(step: dict[str, Any], status: str) -> None:
    step["status"] = status
    step[{"completed": "completed_at", "failed": "failed_at", "cancelled": "cancelled_at"}[status]] = now()


def _message_copy(message: dict[str, Any]) -> dict[str, Any]:
    out = dict(message)
    out["content"] = [dict(part) for part in message["content"]]
    return out


def _step_copy(step: dict[str, Any]) -> dict[str, Any]:
    out = dict(step)
    out["step_details"] = {**step["step_details"], "tool_calls": [dict(c) for c in step["step_details"].get(
        "tool_calls", [])]} if step["step_details"]["type"] == "tool_calls" else dict(step["step_details"])
    return out


def _step_delta(step_id: str, call: dict[str, Any]) -> dict[str, Any]:
    return {"id": step_id, "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}}}
