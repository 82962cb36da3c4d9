"""What a failure means: one table from error code to FailureKind, used for the openai SDK's exceptions
and for the failures a stream reports (Responses' `error` and `response.failed`, Chat's error chunks,
a run's `last_error`) on every backend, each turned into a BackendError with a sentence a channel can read."""

from __future__ import annotations

import asyncio
from typing import Any

import openai

from bot.backends.base import CONVERSATION_GONE, BackendError, FailureKind

_T, _A, _R = FailureKind.TRANSIENT, FailureKind.ACCOUNT, FailureKind.REQUEST

# The one table. Codes come from an HTTP error's body, a stream's error, a failed response or run, or the
# reason a response or run stopped early (OpenAI's ResponseErrorCode list, plus the API's error codes).
CODE_KINDS: dict[str, FailureKind] = {
    # The service's own trouble: the same request may well succeed in a while.
    "server_error": _T, "server_is_overloaded": _T, "rate_limit_exceeded": _T, "conversation_locked": _T,
    "vector_store_timeout": _T,
    "max_output_tokens": _T, "max_completion_tokens": _T,  # stopped at the output limit: a new sample may fit
    # The account: nothing works until an admin acts.
    "insufficient_quota": _A, "invalid_api_key": _A, "model_not_found": _A, "billing_hard_limit_reached": _A,
    "account_deactivated": _A, "unsupported_country_region_territory": _A, "data_residency_mismatch": _A,
    # This request is refused: sending the same messages again cannot help.
    "invalid_prompt": _R, "bio_policy": _R, "content_filter": _R, "context_length_exceeded": _R,
    "string_above_max_length": _R, "invalid_image": _R, "invalid_image_format": _R, "invalid_base64_image": _R,
    "invalid_image_url": _R, "image_too_large": _R, "image_too_small": _R, "image_parse_error": _R,
    "image_content_policy_violation": _R, "invalid_image_mode": _R, "image_file_too_large": _R,
    "unsupported_image_media_type": _R, "empty_image_file": _R, "failed_to_download_image": _R,
    "image_file_not_found": _R,
}
# A code the table does not know, reported after the request was accepted (in the stream, by a run):
# server-side trouble. Calling it a refused request would skip a person's message on an outage; retries
# are bounded by BRIDGE_MAX_ATTEMPTS anyway. (An HTTP error with an unknown code is judged by its status.)
UNKNOWN_IN_STREAM = FailureKind.TRANSIENT
INCOMPLETE = "incomplete:"  # BackendError.code of a response or run that stopped early: + its reason
FAILED = "the model failed to answer"

# A sentence for the codes that deserve their own (the others are said by their kind).
_SAID = {"insufficient_quota": "the model account has run out of quota",
         "model_not_found": "the configured model does not exist or is not available to this key",
         "rate_limit_exceeded": "the model service is rate limiting us"}
_SAID_BY_KIND = {_T: "the model service had a temporary problem", _A: "the model account cannot be used",
                 _R: "the model service refused the request"}


def failure_kind(code: str | None) -> FailureKind:
    """What an error code reported in a stream or by a run means (`incomplete:<reason>` by its reason)."""
    if code is None:
        return UNKNOWN_IN_STREAM
    return CODE_KINDS.get(code.removeprefix(INCOMPLETE), UNKNOWN_IN_STREAM)


def stream_failure(code: str | None, what: str = FAILED, *, request_id: str | None = None,
                   outcome_unknown: bool = False, shown: str | None = None) -> BackendError:
    """A failure the model service reported after accepting the request; `shown`: what the sentence
    names instead of the code."""
    return BackendError(f"{what} ({shown or code or 'unknown error'})", kind=failure_kind(code), code=code,
                        request_id=request_id, outcome_unknown=outcome_unknown)


def stopped_early(reason: str | None, what: str = "the model stopped before finishing", *,
                  request_id: str | None = None, outcome_unknown: bool = False) -> BackendError:
    """A response or run that ended incomplete (its `incomplete_details.reason`)."""
    return stream_failure(f"{INCOMPLETE}{reason or 'unknown'}", what, request_id=request_id,
                          outcome_unknown=outcome_unknown, shown=reason or "unknown")


def stream_cut() -> BackendError:
    """The stream ended before saying how the request went: it may have completed all the same."""
    return BackendError("the model's answer was cut off", kind=FailureKind.TRANSIENT, code="stream_cut",
                        outcome_unknown=True)


def conversation_locked(**details: Any) -> BackendError:
    # Another request of ours is still running on the conversation (one we lost track of in a crash, a
    # timeout or a cut stream): it may yet add the same messages, so look before resending.
    return BackendError("the conversation is busy with an earlier request", kind=FailureKind.TRANSIENT,
                        code="conversation_locked", outcome_unknown=True, **details)


def conversation_gone() -> BackendError:
    """The channel's conversation (or thread) was deleted at the service: the caller starts a new one."""
    return BackendError("the channel's conversation no longer exists at the model service",
                        kind=FailureKind.TRANSIENT, code=CONVERSATION_GONE, status=404)


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
            return stream_cut()
        return BackendError("the model service could not be reached", kind=FailureKind.TRANSIENT,
                            code="connection_error")
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc)
    if isinstance(exc, openai.APIError):  # an error the server sent inside the stream (an error chunk or event)
        return stream_failure(_code(exc), outcome_unknown=streaming)
    return BackendError("the model request failed unexpectedly", kind=FailureKind.TRANSIENT,
                        code=type(exc).__name__, outcome_unknown=streaming)


API_MISSING = "api_missing"  # BackendError.code: the server has no such endpoint (a configuration fault)


def missing_api(exc: BaseException) -> bool:
    """A 404 that names no resource: the server has no such endpoint at all — FastAPI's
    `{"detail": "Not Found"}` (LiteLLM, vLLM), llama.cpp's "File Not Found", OpenAI's "Invalid URL", a
    plain-text page (Ollama) — rather than "this conversation (or model) was not found"."""
    if not isinstance(exc, openai.NotFoundError):
        return False
    body = exc.body
    if not isinstance(body, dict):
        return True
    message = str(body.get("message") or "")
    detail = str(body.get("detail") or "")
    return (detail.lower() == "not found" and not message) or message == "File Not Found" \
        or message.startswith("Invalid URL")


def api_missing(exc: openai.APIStatusError) -> BackendError:
    """The configured backend needs an API this server does not offer: nothing works until the
    settings change, so the messages wait (an account-kind failure, told once)."""
    return BackendError("the model server does not offer the API this backend needs (a server with Chat "
                        "Completions only needs ASSISTANT_BACKEND=chat)", kind=FailureKind.ACCOUNT,
                        status=exc.status_code, code=API_MISSING, request_id=exc.request_id)


def _status_error(exc: openai.APIStatusError) -> BackendError:
    code, status = _code(exc), exc.status_code
    if missing_api(exc):
        return api_missing(exc)
    details = {"status": status, "code": code, "request_id": exc.request_id, "retry_after": _retry_after(exc)}
    if isinstance(exc, openai.AuthenticationError):
        return BackendError("the model service rejected the API key", kind=FailureKind.ACCOUNT, **details)
    if isinstance(exc, openai.PermissionDeniedError):
        return BackendError("the API key may not use this model or feature", kind=FailureKind.ACCOUNT, **details)
    if code == "conversation_locked":
        return conversation_locked(status=status, request_id=exc.request_id, retry_after=details["retry_after"])
    if code in CODE_KINDS:
        return BackendError(_SAID.get(code) or _SAID_BY_KIND[CODE_KINDS[code]], kind=CODE_KINDS[code], **details)
    kind, sentence = _by_status(exc)
    return BackendError(sentence, kind=kind, **details)


def _by_status(exc: openai.APIStatusError) -> tuple[FailureKind, str]:
    """An HTTP error whose code the table does not know, by what its status says."""
    status = exc.status_code
    if isinstance(exc, openai.RateLimitError):
        return FailureKind.TRANSIENT, _SAID["rate_limit_exceeded"]
    if (status == 400 and _param(exc) == "model") or (
            isinstance(exc, openai.NotFoundError) and "model" in str(exc.message).lower()):
        return FailureKind.ACCOUNT, _SAID["model_not_found"]
    if isinstance(exc, openai.NotFoundError):
        return FailureKind.REQUEST, "the conversation was not found at the model service"
    if status >= 500 or status in (408, 409):
        return FailureKind.TRANSIENT, _SAID_BY_KIND[FailureKind.TRANSIENT]
    # Refused before it was accepted: this request cannot succeed as it is.
    return FailureKind.REQUEST, _SAID_BY_KIND[FailureKind.REQUEST]


def _code(exc: openai.APIError) -> str | None:
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
