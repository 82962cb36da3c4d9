"""Legacy Assistants API objects: assistants, threads and their messages (runs are in `runs.py`).

The active-run rule lives here too: while a thread has a run that is queued, in progress or waiting
for tool outputs, adding a message to it is refused with OpenAI's exact text.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors, items
from .app import BODY, Platform
from .state import Thread, new_id, now

DEFAULT_TOOL_RESOURCES: dict[str, Any] = {}


def register(app: web.Application, platform: Platform) -> None:
    e = AssistantObjects(platform)
    app.router.add_post("/v1/assistants", e.create_assistant)
    app.router.add_get("/v1/assistants", e.list_assistants)
    app.router.add_get("/v1/assistants/{assistant_id}", e.retrieve_assistant)
    app.router.add_post("/v1/assistants/{assistant_id}", e.update_assistant)
    app.router.add_delete("/v1/assistants/{assistant_id}", e.delete_assistant)
    app.router.add_post("/v1/threads", e.create_thread)
    app.router.add_get("/v1/threads/{thread_id}", e.retrieve_thread)
    app.router.add_post("/v1/threads/{thread_id}", e.update_thread)
    app.router.add_delete("/v1/threads/{thread_id}", e.delete_thread)
    app.router.add_post("/v1/threads/{thread_id}/messages", e.create_message)
    app.router.add_get("/v1/threads/{thread_id}/messages", e.list_messages)
    app.router.add_get("/v1/threads/{thread_id}/messages/{message_id}", e.retrieve_message)


def message_object(thread_id: str, role: str, content: Any, *, metadata: dict[str, Any] | None = None,
                   run_id: str | None = None, assistant_id: str | None = None,
                   status: str = "completed") -> dict[str, Any]:
    created = now()
    return {"id": new_id("msg"), "object": "thread.message", "created_at": created,
            "assistant_id": assistant_id, "thread_id": thread_id, "run_id": run_id, "role": role,
            "content": message_content(content), "attachments": [], "metadata": dict(metadata or {}),
            "status": status, "incomplete_details": None,
            "completed_at": created if status == "completed" else None, "incomplete_at": None}


def message_content(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    out = []
    for part in content or []:
        if part.get("type") == "text":
            out.append({"type": "text", "text": {"value": part.get("text", ""), "annotations": []}})
        else:
            out.append(dict(part))
    return out


def find_thread(platform: Platform, thread_id: str) -> Thread:
    thread = platform.state.threads.get(thread_id)
    if thread is None:
        raise errors.assistants_object_not_found("thread", thread_id)
    return thread


def find_assistant(platform: Platform, assistant_id: str) -> dict[str, Any]:
    assistant = platform.state.assistants.get(assistant_id)
    if assistant is None:
        raise errors.assistants_object_not_found("assistant", assistant_id)
    return assistant


def add_messages(thread: Thread, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    added = [message_object(thread.id, m["role"], m.get("content"), metadata=m.get("metadata")) for m in raw]
    thread.messages.extend(added)
    return added


class AssistantObjects:
    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.state = platform.state

    # -- assistants ----------------------------------------------------------------------------
    async def create_assistant(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        model = self.p.require_model(body.get("model"))
        assistant = {"id": new_id("asst"), "object": "assistant", "created_at": now(),
                     "name": body.get("name"), "description": body.get("description"), "model": model,
                     "instructions": body.get("instructions"), "tools": list(body.get("tools") or []),
                     "tool_resources": body.get("tool_resources") or DEFAULT_TOOL_RESOURCES,
                     "metadata": dict(body.get("metadata") or {}),
                     "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
                     "response_format": body.get("response_format") or "auto"}
        self.state.assistants[assistant["id"]] = assistant
        return self.p.json(request, assistant)

    async def list_assistants(self, request: web.Request) -> web.StreamResponse:
        limit, order, after = items.list_params(request.query)
        listed = items.page(list(self.state.assistants.values()), limit=limit, order=order, after=after)
        return self.p.json(request, listed)

    async def retrieve_assistant(self, request: web.Request) -> web.StreamResponse:
        return self.p.json(request, find_assistant(self.p, request.match_info["assistant_id"]))

    async def update_assistant(self, request: web.Request) -> web.StreamResponse:
        assistant = find_assistant(self.p, request.match_info["assistant_id"])
        body = request[BODY]
        if "model" in body:
            self.p.require_model(body["model"])
        assistant.update({k: v for k, v in body.items() if k in assistant and k not in ("id", "object")})
        return self.p.json(request, assistant)

    async def delete_assistant(self, request: web.Request) -> web.StreamResponse:
        assistant = find_assistant(self.p, request.match_info["assistant_id"])
        del self.state.assistants[assistant["id"]]
        return self.p.json(request, {"id": assistant["id"], "object": "assistant.deleted", "deleted": True})

    # -- threads -------------------------------------------------------------------------------
    async def create_thread(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY] or {}
        thread = create_thread(self.p, body)
        return self.p.json(request, thread.resource())

    async def retrieve_thread(self, request: web.Request) -> web.StreamResponse:
        return self.p.json(request, find_thread(self.p, request.match_info["thread_id"]).resource())

    async def update_thread(self, request: web.Request) -> web.StreamResponse:
        thread = find_thread(self.p, request.match_info["thread_id"])
        if "metadata" in request[BODY]:
            thread.metadata = dict(request[BODY]["metadata"] or {})
        return self.p.json(request, thread.resource())

    async def delete_thread(self, request: web.Request) -> web.StreamResponse:
        thread = find_thread(self.p, request.match_info["thread_id"])
        del self.state.threads[thread.id]
        return self.p.json(request, {"id": thread.id, "object": "thread.deleted", "deleted": True})

    # -- messages ------------------------------------------------------------------------------
    async def create_message(self, request: web.Request) -> web.StreamResponse:
        thread = find_thread(self.p, request.match_info["thread_id"])
        if thread.active_run is not None:
            raise errors.thread_busy_for_message(thread.id, thread.active_run)
        (message,) = add_messages(thread, [request[BODY]])
        return self.p.json(request, message)

    async def list_messages(self, request: web.Request) -> web.StreamResponse:
        thread = find_thread(self.p, request.match_info["thread_id"])
        limit, order, after = items.list_params(request.query)
        chosen = thread.messages
        if request.query.get("run_id"):
            chosen = [m for m in chosen if m.get("run_id") == request.query["run_id"]]
        return self.p.json(request, items.page(chosen, limit=limit, order=order, after=after,
                                               before=request.query.get("before")))

    async def retrieve_message(self, request: web.Request) -> web.StreamResponse:
        thread = find_thread(self.p, request.match_info["thread_id"])
        wanted = request.match_info["message_id"]
        for message in thread.messages:
            if message["id"] == wanted:
                return self.p.json(request, message)
        raise errors.assistants_object_not_found("message", wanted)


def create_thread(platform: Platform, body: dict[str, Any]) -> Thread:
    thread = Thread(new_id("thread"), now(), dict(body.get("metadata") or {}))
    add_messages(thread, list(body.get("messages") or []))
    platform.state.threads[thread.id] = thread
    return thread
