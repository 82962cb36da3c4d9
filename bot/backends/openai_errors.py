"""Classify the openai SDK's exceptions into BackendError with a sentence a channel can read."""

from __future__ import annotations

import asyncio

import openai

from bot.backends.base import BackendError

TRANSIENT_CODES = frozenset({"rate_limit_exceeded", "conversation_locked", "server_error", "server_is_overloaded"})


def classify(exc: BaseException) -> BackendError:
    """Turn an exception raised by the openai SDK (after its own retries) into a BackendError."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, openai.APITimeoutError | asyncio.TimeoutError):
        return BackendError("the model did not answer in time", transient=True, code="timeout")
    if isinstance(exc, openai.APIConnectionError):
        return BackendError("the model service could not be reached", transient=True, code="connection_error")
    if isinstance(exc, openai.APIStatusError):
        code = _code(exc)
        request_id = exc.request_id
        status = exc.status_code
        if isinstance(exc, openai.AuthenticationError):
            return BackendError("the model service rejected the API key", transient=False, status=status,
                                code=code, request_id=request_id)
        if isinstance(exc, openai.PermissionDeniedError):
            return BackendError("the API key is not allowed to use this model or feature", transient=False,
                                status=status, code=code, request_id=request_id)
        if isinstance(exc, openai.RateLimitError):
            if code == "insufficient_quota":
                return BackendError("the model account has run out of quota", transient=False, status=status,
                                    code=code, request_id=request_id)
            return BackendError("the model service is rate limiting us", transient=True, status=status,
                                code=code, request_id=request_id)
        if isinstance(exc, openai.NotFoundError):
            return BackendError("the model or conversation was not found", transient=False, status=status,
                                code=code, request_id=request_id)
        if code in TRANSIENT_CODES or status >= 500 or status in (408, 409):
            return BackendError("the model service had a temporary problem", transient=True, status=status,
                                code=code, request_id=request_id)
        return BackendError("the model service refused the request", transient=False, status=status,
                            code=code, request_id=request_id)
    return BackendError("the model request failed unexpectedly", transient=True, code=type(exc).__name__)


def _code(exc: openai.APIStatusError) -> str | None:
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return inner["code"]
    return None
