"""The aiohttp application: one middleware pipeline in front of the endpoint modules.

Every request goes through, in order: record it → check it against the spec (violations are noted
now, answered later) → injected delay → API key → the Assistants beta header → injected error →
400 for an invalid body → the endpoint (→ its answer lost, when a fault says so). Every answer carries
`x-request-id`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from . import errors, vision
from .errors import ApiError
from .faults import FaultPlan, LostAnswer
from .model import ScriptedModel
from .spec_check import SpecChecker, Violation
from .sse import DISCARD, SSEWriter
from .state import PlatformState, Recorded, new_id

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BODY = web.RequestKey("body", Any)  # the parsed JSON body ({} when there is none)
REQUEST_ID = web.RequestKey("request_id", str)
OPERATION = web.RequestKey("operation", Any)  # the spec operation the request matched
BETA_PATHS = ("/v1/assistants", "/v1/threads")
# The API families a server may lack, by path: most self-hosted OpenAI-compatible servers (Ollama, vLLM,
# llama.cpp, LiteLLM) serve Chat Completions, some a partial Responses API, few Conversations or Assistants.
API_PATHS = {"conversations": ("/v1/conversations",), "responses": ("/v1/responses",),
             "assistants": ("/v1/assistants", "/v1/threads"), "chat": ("/v1/chat/",)}
COMMON_HEADERS = {"openai-version": "2020-10-01", "openai-processing-ms": "1",
                  "openai-organization": "org-emulator000000000000000"}
RESPONSE_SCHEMAS = {  # what we validate our own stream events against (self-check)
    "responses": "#/components/schemas/ResponseStreamEvent",
    "chat": "#/components/schemas/CreateChatCompletionStreamResponse",
    "assistants": "#/components/schemas/AssistantStreamEvent",
}


@dataclass
class Platform:
    """Everything endpoint handlers share; lives on the emulator's loop."""

    state: PlatformState
    model: ScriptedModel
    faults: FaultPlan
    spec: SpecChecker
    self_check: bool

    def require_model(self, name: Any, *, status: int = 404) -> str:
        if not isinstance(name, str) or not name:
            self.state.violations.append("request without the required parameter 'model' [missing]")
            raise errors.missing_parameter("model")
        if name not in self.state.models:
            raise errors.model_not_found(name, status)
        return name

    def json(self, request: web.Request, payload: Any, *, status: int = 200) -> web.Response:
        if self.self_check and status == 200:
            self._check_answer(request, payload)
        return web.json_response(payload, status=status, dumps=json.dumps)

    def sse(self, request: web.Request, family: str) -> SSEWriter:
        check = None
        if self.self_check:
            ref = RESPONSE_SCHEMAS[family]

            def check(name: str | None, data: Any) -> None:
                payload = {"event": name, "data": data} if family == "assistants" else data
                where = f"{request.path} event {name}"
                key = "event" if family == "assistants" else ("type" if family == "responses" else None)
                self._record_self(self.spec.check_object(ref, payload, where, key))

        return SSEWriter(request, request_id=request[REQUEST_ID], check=check)

    def _check_answer(self, request: web.Request, payload: Any) -> None:
        op = request.get(OPERATION)
        if op is None:
            return
        content = op.spec.get("responses", {}).get("200", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        ref = schema.get("$ref")
        if ref:
            self._record_self(self.spec.check_object(ref, payload, f"{request.method} {request.path} answer"))

    def _record_self(self, problems: list[str]) -> None:
        self.state.self_violations.extend(problems)


def build_app(platform: Platform, register: list[Callable[[web.Application, Platform], None]]) -> web.Application:
    app = web.Application(middlewares=[_pipeline(platform)], client_max_size=64 * 1024 * 1024)
    for add_routes in register:
        add_routes(app, platform)
    return app


def _pipeline(platform: Platform) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    state = platform.state

    @web.middleware
    async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = "req_" + new_id("", hex_chars=32, sep="")
        request[REQUEST_ID] = request_id
        record = Recorded(request.method, request.path, dict(request.query), None,
                          dict(request.headers), time.time(), request_id)
        state.requests.append(record)
        try:
            response = await _handle(platform, request, record, handler)
        except ApiError as err:
            response = err.response()
        except (ConnectionError, ClientConnectionResetError):  # the client went away (a killed process)
            record.status = 499
            raise
        except Exception as exc:  # a bug in the emulator: note it (so the test fails), aiohttp answers 500
            state.violations.append(f"emulator bug on {request.method} {request.path}: {exc!r}")
            raise
        if not response.prepared:
            response.headers.update({"x-request-id": request_id, **COMMON_HEADERS})
        record.status = response.status
        record.time_done = time.time()
        return response

    return pipeline


async def _handle(platform: Platform, request: web.Request, record: Recorded,
                  handler: Handler) -> web.StreamResponse:
    state = platform.state
    method, path = request.method, request.path
    if any(path.startswith(API_PATHS[api]) for api in state.missing_apis):
        # What such a server answers (FastAPI's, as LiteLLM does), before reading the body or the key.
        if state.missing_status == 200:  # LM Studio's way
            return web.json_response({"error": f"Unexpected endpoint or method. ({method} {path}). "
                                               "Returning 200 anyway"}, status=200)
        return web.json_response({"detail": "Not Found"}, status=404)
    body: Any = None
    if request.content_type == "multipart/form-data":  # (file uploads)
        request[BODY], body = await read_upload(request)
        record.json = body
        return await _checked(platform, request, record, handler, body)
    if request.body_exists:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            state.violations.append(f"{method} {path}: body is not JSON")
            raise errors.invalid_json() from None
    record.json = body
    record.stream = bool(isinstance(body, dict) and body.get("stream"))
    request[BODY] = body if isinstance(body, dict) else {}  # other shapes fail the spec check below
    return await _checked(platform, request, record, handler, body)


async def _checked(platform: Platform, request: web.Request, record: Recorded, handler: Handler,
                   body: Any) -> web.StreamResponse:
    """The rest of the pipeline, once the body is read: spec check, delay, key, header, faults, handler."""
    state = platform.state
    method, path = request.method, request.path
    op, path_known = platform.spec.operation(method, path)
    request[OPERATION] = op
    problems: list[Violation] = []
    if op is None:
        kind = "unknown_path" if not path_known else "unknown_method"
        state.violations.append(f"{method} {path}: no such operation in the OpenAI spec [{kind}]")
        raise errors.invalid_url(method, path)
    if request.match_info.http_exception is not None:
        state.violations.append(f"{method} {path}: in the spec but not emulated [not_emulated]")
        raise errors.invalid_url(method, path)
    problems += platform.spec.check_query(method, path, op, dict(request.query))
    if body is not None:
        problems += platform.spec.check_body(method, path, op, body)
    elif op.body_ref is not None and op.spec.get("requestBody", {}).get("required"):
        problems.append(Violation(method, path, "", "request body is required", "missing"))
    state.violations.extend(str(p) for p in problems)

    delay = platform.faults.take_delay(path)
    if delay > 0:
        await asyncio.sleep(delay)

    _authenticate(state, request)
    if path.startswith(BETA_PATHS) and request.headers.get("OpenAI-Beta") != "assistants=v2":
        state.violations.append(f"{method} {path}: missing 'OpenAI-Beta: assistants=v2' header [header]")
        raise errors.missing_beta_header()

    fault = platform.faults.take_http(method, path)
    if fault is not None:
        model = request[BODY].get("model") if isinstance(request[BODY], dict) else None
        key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        raise errors.for_fault(fault.status, fault.code, fault.message, model or "gpt-4.1-mini",
                               fault.retry_after, fault.error_type, key)

    if problems:
        raise _as_error(problems[0])
    if method == "POST":
        model = request[BODY].get("model")
        text_only = model in state.text_only_models or (not model and bool(state.text_only_models))
        vision.check(path, request[BODY], text_only)
        vision.check_images(path, request[BODY])
    lost = platform.faults.take_lost(method, path)
    if lost is None:
        return await handler(request)
    request[DISCARD] = True
    await handler(request)  # carried out: whatever it writes is stored (an error it raises is answered)
    return _lose_answer(request, lost)


def _lose_answer(request: web.Request, lost: LostAnswer) -> web.StreamResponse:
    """After the write: answer an error instead of the result, or drop the connection without a word."""
    if lost.how == "drop":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=200)  # never reaches the client (aiohttp ignores the closed socket)
    key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    model = request[BODY].get("model") if isinstance(request[BODY], dict) else None
    raise errors.for_fault(lost.status, None, None, model or "gpt-4.1-mini", None, None, key)


async def read_upload(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """A multipart upload: the body handlers get (with the file's bytes) and what the spec check sees."""
    form = await request.post()
    body: dict[str, Any] = {}
    checked: dict[str, Any] = {}
    for key, value in form.items():
        if isinstance(value, web.FileField):
            content = value.file.read()
            body[key] = {"filename": value.filename, "content": content, "content_type": value.content_type}
            checked[key] = f"<{len(content)} bytes>"
        else:
            body[key] = checked[key] = value
    return body, checked


def _authenticate(state: PlatformState, request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[len("Bearer "):].strip():
        raise errors.missing_api_key()
    key = header[len("Bearer "):].strip()
    if key != state.api_key:
        raise errors.invalid_api_key(key)


def _as_error(problem: Violation) -> ApiError:
    if problem.kind == "unknown_parameter" and problem.param:
        return errors.unknown_parameter(problem.param)
    if problem.kind == "missing" and problem.param:
        return errors.missing_parameter(problem.param)
    return errors.invalid_value(problem.param, problem.message)
