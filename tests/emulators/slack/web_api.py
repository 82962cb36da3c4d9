"""The Web API endpoint `/api/{method}`: parse, authenticate, check against the spec, limit, dispatch.

Slack answers API errors with HTTP 200 and `{"ok": false, "error": ...}`; only rate limiting (429
with `Retry-After`) and server trouble use other statuses. Every call is recorded as a `Call`.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .spec_check import MethodSpec, check_answer, check_arguments, method_spec

if TYPE_CHECKING:
    from .core import SlackCore

APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


class ApiError(Exception):
    """An `ok: false` answer; `extra` fields are merged into the body (e.g. response_metadata)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


Handler = Callable[["SlackCore", dict[str, Any]], dict[str, Any]]


@dataclass
class Call:
    """One Web API request as the emulator saw and answered it (the token is not kept)."""

    method: str
    args: dict[str, Any]
    status: int
    ok: bool
    error: str | None
    time: float
    response: dict[str, Any] = field(default_factory=dict)
    http_method: str = "POST"
    content_type: str = ""
    injected: bool = False
    retry_after: int | None = None


@dataclass
class Fault:
    """A failure to answer instead of running the method (see `SlackEmulator.fail_next`)."""

    method: str
    error: str = "internal_error"
    status: int = 200
    retry_after: int | None = None
    times: int = 1
    channel: str | None = None
    lose: str | None = None  # "status" / "drop": the method is carried out, then its answer is lost

    def matches(self, method: str, args: dict[str, Any]) -> bool:
        if self.method != method or self.times <= 0:
            return False
        return self.channel is None or self.channel in (args.get("channel"), args.get("channel_id"))


@dataclass
class _Parsed:
    args: dict[str, Any]
    header_token: str | None
    json_body: bool
    warnings: list[str]


class WebApi:
    def __init__(self, core: SlackCore, handlers: dict[str, Handler]) -> None:
        self.core = core
        self.handlers = handlers

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            parsed = await _read_args(request)
        except ApiError as exc:
            return self._answer(request, method, {}, {"ok": False, "error": exc.error}, 200)
        args = parsed.args
        token = args.pop("token", None)
        spec = method_spec(method)
        if spec is None:
            self.core.violation(f"{method}: no such Slack Web API method")
            body = {"ok": False, "error": "unknown_method", "req_method": method}
            return self._answer(request, method, args, body, 200)
        if parsed.json_body and token is not None:
            self.core.violation(f"{method}: token sent in a JSON body (Slack only reads it from the header)")
            token = None
        token = parsed.header_token or token
        missing = self._check_arguments(spec, args, token, parsed.json_body)
        try:
            self._authenticate(method, token)
            if missing and missing != ["token"]:
                raise ApiError("invalid_arguments", response_metadata={
                    "messages": [f"[ERROR] missing required field: {name}" for name in missing]})
            fault = self._take_fault(method, args)
            if fault is not None and fault.lose is None:
                return self._fault_answer(request, method, args, fault)
            wait = self.core.read_limiter.check(method, None, None) if self.core.read_limiter else None
            wait = wait if wait is not None else self.core.limiter.check(method, spec.rate_limit, _rate_channel(args))
            if wait is not None:
                return self._answer(request, method, args, {"ok": False, "error": "ratelimited"}, 429,
                                    retry_after=wait)
            handler = self.handlers.get(method)
            if handler is None:
                self.core.violation(f"{method}: a real Slack method the emulator does not implement")
                raise ApiError("not_implemented_by_emulator")
            body = {"ok": True, **handler(self.core, args)}
            if fault is not None:  # done (a message posted is in the channel), but the answer is lost
                return self._lose_answer(request, method, args, body, fault)
        except ApiError as exc:
            body = {"ok": False, "error": exc.error, **exc.extra}
        except Exception as exc:  # a bug in the emulator: make it loud, answer like a Slack outage
            self.core.violation(f"{method}: emulator bug: {type(exc).__name__}: {exc}")
            return self._answer(request, method, args, {"ok": False, "error": "internal_error"}, 500)
        for problem in check_answer(spec, body):
            self.core.violation(f"{method}: emulator bug: {problem}")
        if parsed.warnings:
            body["warning"] = ",".join(parsed.warnings)
            body.setdefault("response_metadata", {})["warnings"] = parsed.warnings
        return self._answer(request, method, args, body, 200)

    def _check_arguments(self, spec: MethodSpec, args: dict[str, Any], token: str | None,
                         json_body: bool) -> list[str]:
        """Record spec violations; return the missing required arguments."""
        method = spec.name
        missing, problems = check_arguments(spec, args, token_present=bool(token), json_body=json_body)
        for problem in problems:
            self.core.violation(f"{method}: {problem}")
        if args.get("team_id") not in (None, self.core.ws.team_id):
            self.core.violation(f"{method}: team_id={args['team_id']!r} is not this workspace")
        if missing:
            self.core.violation(f"{method}: missing required argument(s) {', '.join(missing)}")
        return missing

    def _authenticate(self, method: str, token: str | None) -> None:
        if not token:
            raise ApiError("not_authed")
        options = self.core.options
        if token in self.core.revoked_tokens:
            raise ApiError("token_revoked")
        if token not in (options.bot_token, options.app_token):
            raise ApiError("invalid_auth")
        wants_app_token = method in APP_TOKEN_METHODS
        if (token == options.app_token) != wants_app_token:
            raise ApiError("not_allowed_token_type")

    def _take_fault(self, method: str, args: dict[str, Any]) -> Fault | None:
        for fault in self.core.faults:
            if fault.matches(method, args):
                fault.times -= 1
                return fault
        return None

    def _fault_answer(self, request: web.Request, method: str, args: dict[str, Any],
                      fault: Fault) -> web.Response:
        if fault.status == 429:
            return self._answer(request, method, args, {"ok": False, "error": fault.error or "ratelimited"},
                                429, retry_after=fault.retry_after or 1, injected=True)
        body = {"ok": False, "error": fault.error}
        return self._answer(request, method, args, body, fault.status, retry_after=fault.retry_after,
                            injected=True)

    def _lose_answer(self, request: web.Request, method: str, args: dict[str, Any], body: dict[str, Any],
                     fault: Fault) -> web.Response:
        """The call took effect; the client gets a 5xx (a load balancer's, after Slack did the work) or a
        connection closed without an answer."""
        if fault.lose == "drop":
            self.core.calls.append(Call(method=method, args=copy.deepcopy(args), status=0, ok=True, error=None,
                                        time=time.time(), response=copy.deepcopy(body), http_method=request.method,
                                        injected=True))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=200)  # never reaches the client
        return self._answer(request, method, args, {"ok": False, "error": fault.error}, fault.status,
                            injected=True)

    def _answer(self, request: web.Request, method: str, args: dict[str, Any], body: dict[str, Any],
                status: int, *, retry_after: int | None = None, injected: bool = False) -> web.Response:
        self.core.calls.append(Call(
            method=method, args=copy.deepcopy(args), status=status, ok=bool(body.get("ok")),
            error=body.get("error"), time=time.time(), response=copy.deepcopy(body),
            http_method=request.method, content_type=request.content_type if request.can_read_body else "",
            injected=injected,
            retry_after=retry_after,
        ))
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return web.json_response(body, status=status, headers=headers)


async def _read_args(request: web.Request) -> _Parsed:
    args: dict[str, Any] = dict(request.query)
    header = request.headers.get("Authorization", "")
    header_token = header[len("Bearer "):].strip() if header.startswith("Bearer ") else None
    warnings: list[str] = []
    json_body = False
    if request.method == "POST" and request.can_read_body:
        ctype = request.content_type
        if ctype == "application/json":
            if request.charset is None:
                warnings.append("missing_charset")
            try:
                body = json.loads(await request.text() or "{}")
            except ValueError:
                raise ApiError("invalid_json") from None
            if not isinstance(body, dict):
                raise ApiError("invalid_json")
            args.update(body)
            json_body = True
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    args[key] = {"filename": value.filename, "size": len(value.file.read())}
                else:
                    args[key] = value
        else:
            raise ApiError("invalid_form_data")
    return _Parsed(args=args, header_token=header_token, json_body=json_body, warnings=warnings)


def _rate_channel(args: dict[str, Any]) -> str | None:
    channel = args.get("channel")
    return channel if isinstance(channel, str) else None
