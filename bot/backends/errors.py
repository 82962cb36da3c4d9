"""Classify the openai SDK's exceptions into BackendError with a sentence a channel can read."""

from __future__ import annotations

import asyncio

import openai

from bot.backends.base import BackendError, FailureKind

TRANSIENT_CODES = frozenset({"rate_limit_exceeded", "conversation_locked", "server_error", "server_is_overloaded"})
ACCOUNT_CODES = frozenset({"insufficient_quota", "invalid_api_key", "model_not_found", "billing_hard_limit_reached",
                           "account_deactivated", "unsupported_country_region_territory"})


def classify(exc: BaseException, *, streaming: bool = False) -> BackendError:
    """Turn an exception raised by the openai SDK (after its own retries) into a BackendError.
    `streaming`: the answer had started, so a lost connection leaves the outcome unknown."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, openai.APITimeoutError | asyncio.TimeoutError):
        return BackendError("the model did not answer in time", kind=FailureKind.TRANSIENT, code="timeout",
                            outcome_unknown=True)
    if isinstance(exc, openai.APIConnectionError):
        if streaming:
            return BackendError("the model's answer was cut off", kind=FailureKind.TRANSIENT, code="stream_cut",
                                outcome_unknown=True)
        return BackendError("the model service could not be reached", kind=FailureKind.TRANSIENT,
                            code="connection_error")
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc)
    return BackendError("the model request failed unexpectedly", kind=FailureKind.TRANSIENT,
                        code=type(exc).__name__, outcome_unknown=streaming)


def _status_error(exc: openai.APIStatusError) -> BackendError:
    code, status = _code(exc), exc.status_code
    details = {"status": status, "code": code, "request_id": exc.request_id, "retry_after": _retry_after(exc)}
    if isinstance(exc, openai.AuthenticationError):
        return BackendError("the model service rejected the API key", kind=FailureKind.ACCOUNT, **details)
    if isinstance(exc, openai.PermissionDeniedError):
        return BackendError("the API key may not use this model or feature", kind=FailureKind.ACCOUNT, **details)
    if code == "insufficient_quota":
        return BackendError("the model account has run out of quota", kind=FailureKind.ACCOUNT, **details)
    if isinstance(exc, openai.RateLimitError):
        return BackendError("the model service is rate limiting us", kind=FailureKind.TRANSIENT, **details)
    if code in ("model_not_found",) or (status == 400 and _param(exc) == "model") or (
            isinstance(exc, openai.NotFoundError) and "model" in str(exc.message).lower()):
        return BackendError("the configured model does not exist or is not available to this key",
                            kind=FailureKind.ACCOUNT, **details)
    if code in ACCOUNT_CODES:
        return BackendError("the model account cannot be used", kind=FailureKind.ACCOUNT, **details)
    if isinstance(exc, openai.NotFoundError):
        return BackendError("the conversation was not found at the model service", kind=FailureKind.REQUEST,
                            **details)
    if code == "conversation_locked":
        # Another response of ours is still running on the conversation (one we lost track of in a
        # crash, a timeout or a cut stream): it may yet add the same messages, so look before resending.
        return BackendError("the conversation is busy with an earlier request", kind=FailureKind.TRANSIENT,
                            outcome_unknown=True, **details)
    if code in TRANSIENT_CODES or status >= 500 or status in (408, 409):
        return BackendError("the model service had a temporary problem", kind=FailureKind.TRANSIENT, **details)
    return BackendError("the model service refused the request", kind=FailureKind.REQUEST, **details)


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


def _param(exc: openai.APIStatusError) -> str | None:
    param = getattr(exc, "param", None)
    return param if isinstance(param, str) else None


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds the service asked us to wait (`retry-after-ms` or `retry-after`), if it said."""
    headers = exc.response.headers if exc.response is not None else {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(float(value) * scale, 0.0)
            except ValueError:
                continue
    return None
