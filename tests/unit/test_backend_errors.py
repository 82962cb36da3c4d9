"""The one table from error code to failure kind, row by row, on every path an error reaches a backend by:
the SDK's HTTP errors, Responses' `error` and `response.failed`/`response.incomplete` events, Chat's error
chunks (the SDK raises them as APIError), and an Assistants run's `last_error`, `error` events and
incomplete runs. (The same codes through the emulated APIs: tests/backends/test_backend_errors_emulated.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import httpx2
import openai
import pytest
from openai.types.beta.threads import Run
from openai.types.beta.threads.run import IncompleteDetails, LastError
from openai.types.shared import ErrorObject

from bot.backends.assistants import _apply, _Progress, _sdk_error, run_failure
from bot.backends.base import BackendError, FailureKind
from bot.backends.errors import API_MISSING, CODE_KINDS, UNKNOWN_IN_STREAM, classify, failure_kind, missing_api
from bot.backends.responses import failure

REQUEST = httpx2.Request("POST", "https://api.openai.com/v1/responses")
T, A, R = FailureKind.TRANSIENT, FailureKind.ACCOUNT, FailureKind.REQUEST

# Every row of the table, spelled out (so that a changed row is a deliberate change here too), and a
# code nobody knows.
ROWS = [
    ("server_error", T), ("server_is_overloaded", T), ("rate_limit_exceeded", T), ("conversation_locked", T),
    ("vector_store_timeout", T), ("max_output_tokens", T), ("max_completion_tokens", T),
    ("insufficient_quota", A), ("invalid_api_key", A), ("model_not_found", A), ("billing_hard_limit_reached", A),
    ("account_deactivated", A), ("unsupported_country_region_territory", A), ("data_residency_mismatch", A),
    ("invalid_prompt", R), ("bio_policy", R), ("content_filter", R), ("context_length_exceeded", R),
    ("string_above_max_length", R), ("invalid_image", R), ("invalid_image_format", R), ("invalid_base64_image", R),
    ("invalid_image_url", R), ("image_too_large", R), ("image_too_small", R), ("image_parse_error", R),
    ("image_content_policy_violation", R), ("invalid_image_mode", R), ("image_file_too_large", R),
    ("unsupported_image_media_type", R), ("empty_image_file", R), ("failed_to_download_image", R),
    ("image_file_not_found", R),
]
UNKNOWN = ("something_new", T)  # accepted, then failed for a reason we do not know: the service's trouble


def test_the_rows_are_the_table() -> None:
    assert dict(ROWS) == CODE_KINDS
    assert UNKNOWN[0] not in CODE_KINDS and UNKNOWN_IN_STREAM is UNKNOWN[1]


# (The Responses backend reads its stream's events as the JSON the server sends.)
def responses_error_event(code: str | None) -> BackendError:
    return failure({"type": "error", "code": code, "message": "Sorry", "param": None, "sequence_number": 3})


def responses_failed(code: str | None) -> BackendError:
    error = {"code": code, "message": "Sorry"} if code else None
    return failure({"type": "response.failed", "sequence_number": 9,
                    "response": {"id": "resp_1", "status": "failed", "error": error}})


def chat_error_chunk(code: str | None) -> BackendError:
    """What the SDK raises for an error chunk, as the chat backend classifies it."""
    return classify(openai.APIError("Sorry", REQUEST, body={"message": "Sorry", "type": "server_error",
                                                            "param": None, "code": code}), streaming=True)


def assistants_run_failed(code: str | None) -> BackendError:
    last_error = LastError.model_construct(code=code, message="Sorry") if code else None
    return run_failure(Run.model_construct(id="run_1", status="failed", last_error=last_error),
                       "the model failed to answer")


def assistants_error_event(code: str | None) -> BackendError:
    event = SimpleNamespace(event="error", data=ErrorObject.model_construct(code=code, message="Sorry", type="x"))
    with pytest.raises(BackendError) as caught:
        _apply(event, _Progress())
    return caught.value


def assistants_error_raised(code: str | None) -> BackendError:
    """An `error` event the SDK raised as APIError."""
    return _sdk_error(openai.APIError("Sorry", REQUEST, body={"code": code, "message": "Sorry"}), in_thread=True)


IN_STREAM = [responses_error_event, responses_failed, chat_error_chunk, assistants_run_failed,
             assistants_error_event, assistants_error_raised]


@pytest.mark.parametrize("path", IN_STREAM, ids=lambda path: path.__name__)
@pytest.mark.parametrize(("code", "kind"), [*ROWS, UNKNOWN, (None, T)])
def test_a_failure_reported_in_the_stream(path, code: str | None, kind: FailureKind) -> None:
    error = path(code)
    assert (error.kind, error.code) == (kind, code)
    assert failure_kind(code) is kind


def status_error(status: int, code: str | None) -> openai.APIStatusError:
    response = httpx2.Response(status, request=REQUEST)
    body = {"error": {"message": "Sorry", "type": "invalid_request_error", "param": None, "code": code}}
    cls = {400: openai.BadRequestError, 404: openai.NotFoundError, 429: openai.RateLimitError,
           500: openai.InternalServerError}[status]
    return cls("Sorry", response=response, body=body)


@pytest.mark.parametrize(("code", "kind"), ROWS)
@pytest.mark.parametrize("status", [400, 429, 500])
def test_an_http_error_with_a_known_code_goes_by_the_table(status: int, code: str, kind: FailureKind) -> None:
    error = classify(status_error(status, code))
    assert (error.kind, error.code, error.status) == (kind, code, status)


@pytest.mark.parametrize(("status", "kind"), [(400, R), (404, R), (429, T), (500, T)])
def test_an_http_error_with_an_unknown_code_goes_by_its_status(status: int, kind: FailureKind) -> None:
    # Refused before it was accepted (4xx): this request cannot succeed as it is; 429 and 5xx: try later.
    for code in (UNKNOWN[0], None):
        assert classify(status_error(status, code)).kind is kind


def responses_incomplete(reason: str | None) -> BackendError:
    details = {"reason": reason} if reason else None
    return failure({"type": "response.incomplete", "sequence_number": 9,
                    "response": {"id": "resp_1", "status": "incomplete", "incomplete_details": details, "error": None}})


def assistants_incomplete(reason: str | None) -> BackendError:
    details = IncompleteDetails.model_construct(reason=reason) if reason else None
    return run_failure(Run.model_construct(id="run_1", status="incomplete", last_error=None,
                                           incomplete_details=details), "the model stopped before finishing")


@pytest.mark.parametrize("path", [responses_incomplete, assistants_incomplete], ids=lambda path: path.__name__)
@pytest.mark.parametrize(("reason", "kind"), [
    ("content_filter", R), ("max_output_tokens", T), ("max_completion_tokens", T), ("max_prompt_tokens", T),
    (None, T)])
def test_a_response_or_run_that_stopped_early_goes_by_its_reason(path, reason: str | None,
                                                                kind: FailureKind) -> None:
    error = path(reason)
    assert (error.kind, error.code) == (kind, f"incomplete:{reason or 'unknown'}")
    assert error.request_id in ("resp_1", "run_1")


def not_found(body: object) -> openai.NotFoundError:
    return openai.NotFoundError("Not Found", response=httpx2.Response(404, request=REQUEST), body=body)


@pytest.mark.parametrize(("body", "missing"), [
    ({"detail": "Not Found"}, True),  # FastAPI: LiteLLM, vLLM
    ("404 page not found", True),  # Ollama's plain text
    (None, True),  # no body at all
    ({"code": 404, "message": "File Not Found", "type": "not_found_error"}, True),  # llama.cpp
    ({"message": "Invalid URL (POST /v1/conversations)", "type": "invalid_request_error"}, True),  # OpenAI
    ({"message": "Conversation with id 'conv_1' not found.", "type": "invalid_request_error"}, False),
    ({"detail": "Conversation not found"}, False),  # a FastAPI server that has the API, without the resource
    ({"message": "The model 'gpt-x' does not exist", "type": "invalid_request_error",
      "code": "model_not_found"}, False),
])
def test_a_missing_endpoint_is_told_from_a_missing_resource(body: object, missing: bool) -> None:
    assert missing_api(not_found(body)) is missing
    error = classify(not_found(body))
    if missing:  # a configuration fault: the messages wait (and the sentence says what to set)
        assert (error.kind, error.code) == (A, API_MISSING) and "ASSISTANT_BACKEND=chat" in error.message
    else:
        assert error.code != API_MISSING
