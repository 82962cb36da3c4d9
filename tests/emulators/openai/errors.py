"""OpenAI's error answers: `{"error": {"message", "type", "param", "code"}}` with the real texts.

Texts marked "seen" were checked against error bodies quoted from the real API in public issue
threads (see the report in the emulator's README section of the final report); the others are
faithful reconstructions of the same style.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DOCS_KEYS_URL = "https://platform.openai.com/account/api-keys"
RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
ERROR_CODES_URL = "https://platform.openai.com/docs/guides/error-codes/api-errors"
ORGANIZATION = "org-emulator000000000000000"


@dataclass
class ApiError(Exception):
    """An error answer; raise it from a handler, the middleware renders it."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers,
                                 dumps=json.dumps)


def mask_key(key: str) -> str:
    """How OpenAI echoes a wrong key: first 8 characters, stars, last 4 (seen)."""
    if len(key) <= 12:
        return key[:3] + "*" * max(len(key) - 3, 0)
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def invalid_api_key(key: str) -> ApiError:  # seen (openai-python users' reports)
    return ApiError(401, f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
                         f"{DOCS_KEYS_URL}.", code="invalid_api_key")


def missing_api_key() -> ApiError:
    return ApiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                         "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
                         "field (with blank username) if you're accessing the API from your browser and are "
                         f"prompted for a username. You can obtain an API key from {DOCS_KEYS_URL}.")


def model_not_found(model: str, status: int = 404) -> ApiError:  # seen, both forms
    if status == 400:  # the Responses API's wording
        return ApiError(400, f"The requested model '{model}' does not exist.", param="model",
                        code="model_not_found")
    return ApiError(status, f"The model `{model}` does not exist or you do not have access to it.",
                    code="model_not_found")


def rate_limited(model: str, retry_after: float | None) -> ApiError:  # seen (text, type "tokens")
    wait = retry_after if retry_after is not None else 1.0
    headers = {
        "retry-after": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(int(wait * 1000)),
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": f"{wait:g}s",
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
    }
    return ApiError(429, f"Rate limit reached for {model} in organization {ORGANIZATION} on tokens per min (TPM): "
                         f"Limit 30000, Used 29500, Requested 1200. Please try again in {wait:g}s. "
                         f"Visit {RATE_LIMITS_URL} to learn more.",
                    type="tokens", code="rate_limit_exceeded", headers=headers)


def insufficient_quota() -> ApiError:  # seen
    return ApiError(429, "You exceeded your current quota, please check your plan and billing details. For more "
                         f"information on this error, read the docs: {ERROR_CODES_URL}.",
                    type="insufficient_quota", code="insufficient_quota")


def server_error(status: int = 500) -> ApiError:
    if status == 503:
        return ApiError(503, "The engine is currently overloaded, please try again later.", type="server_error")
    return ApiError(status, "The server had an error while processing your request. Sorry about that!",
                    type="server_error")


def invalid_url(method: str, path: str) -> ApiError:
    return ApiError(404, f"Invalid URL ({method} {path})")


def conversation_locked() -> ApiError:  # seen (HTTP 400, param "conversation")
    return ApiError(400, "Another process is currently operating on this conversation. Please retry in a few "
                         "seconds.", param="conversation", code="conversation_locked")


def conversation_not_found(conv_id: str) -> ApiError:
    return ApiError(404, f"Conversation with id '{conv_id}' not found.")


def item_not_found(item_id: str) -> ApiError:
    return ApiError(404, f"Item with id '{item_id}' not found.")


def response_not_found(resp_id: str) -> ApiError:
    return ApiError(404, f"Response with id '{resp_id}' not found.")


def previous_and_conversation() -> ApiError:
    return ApiError(400, "Mutually exclusive parameters: Ensure you are only providing one of: "
                         "'previous_response_id' or 'conversation'.", param="conversation",
                    code="mutually_exclusive_parameters")


def no_tool_call_for_output(call_id: str) -> ApiError:
    return ApiError(400, f"No tool call found for function call output with call_id {call_id}.", param="input")


def no_tool_output_for_call(call_id: str) -> ApiError:
    return ApiError(400, f"No tool output found for function call {call_id}.", param="input")


def only_background_cancellable() -> ApiError:
    return ApiError(400, "Only responses created with background=true can be cancelled.")


def assistants_object_not_found(kind: str, object_id: str) -> ApiError:
    return ApiError(404, f"No {kind} found with id '{object_id}'.")


def thread_busy_for_message(thread_id: str, run_id: str) -> ApiError:  # seen, exact
    return ApiError(400, f"Can't add messages to {thread_id} while a run {run_id} is active.")


def thread_has_active_run(thread_id: str, run_id: str) -> ApiError:  # seen, exact wording
    return ApiError(400, f"Thread {thread_id} already has an active run {run_id}.")


def run_not_awaiting_tool_outputs(run_id: str, status: str) -> ApiError:
    return ApiError(400, f"Runs in status \"{status}\" do not accept tool outputs.", param=None)


def tool_outputs_mismatch(missing: list[str]) -> ApiError:
    return ApiError(400, "Expected tool outputs for call_ids " + ", ".join(missing) + ".", param="tool_outputs")


def cannot_cancel_run(status: str) -> ApiError:
    return ApiError(400, f"Cannot cancel run with status '{status}'.")


def missing_beta_header() -> ApiError:
    return ApiError(400, "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try "
                         "again by setting the header 'OpenAI-Beta: assistants=v2'.", code="invalid_beta")


def missing_parameter(name: str) -> ApiError:
    return ApiError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")


def unknown_parameter(name: str) -> ApiError:
    return ApiError(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


def invalid_value(param: str | None, detail: str) -> ApiError:
    where = f"'{param}'" if param else "the request body"
    return ApiError(400, f"Invalid value for {where}: {detail}", param=param, code="invalid_value")


def invalid_json() -> ApiError:
    return ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                         "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
                         "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
                         "contact us through our help center at help.openai.com.)")


def name_pattern(param: str) -> ApiError:  # seen, exact
    return ApiError(400, f"Invalid '{param}': string does not match pattern. Expected a string that matches the "
                         "pattern '^[a-zA-Z0-9_-]+$'.", param=param, code="invalid_value")


def string_too_long(param: str, limit: int, length: int) -> ApiError:
    return ApiError(400, f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, "
                         f"but got a string with length {length} instead.", param=param,
                    code="string_above_max_length")


def chat_tool_without_call() -> ApiError:
    return ApiError(400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                         "with 'tool_calls'.", param="messages.[].role")


def chat_call_without_tool(call_ids: list[str]) -> ApiError:
    return ApiError(400, "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                         "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                         + ", ".join(call_ids), param="messages.[].role")


def for_fault(status: int, code: str | None, message: str | None, model: str,
              retry_after: float | None, error_type: str | None, api_key: str = "") -> ApiError:
    """The error a `fail_next()` fault answers with: OpenAI's own text for the known codes."""
    if code == "rate_limit_exceeded" or (status == 429 and code is None):
        err = rate_limited(model, retry_after)
    elif code == "insufficient_quota":
        err = insufficient_quota()
    elif code == "invalid_api_key" or (status == 401 and code is None):
        err = invalid_api_key(api_key)
    elif code == "model_not_found":
        err = model_not_found(model, status if status in (400, 404) else 404)
    elif code == "conversation_locked":
        err = conversation_locked()
    elif status >= 500:
        err = server_error(status)
        err.code = code
    else:
        err = ApiError(status, message or "The request was rejected by the emulator's fault plan.", code=code)
    err.status = status
    if message is not None:
        err.message = message
    if error_type is not None:
        err.type = error_type
    if retry_after is not None and "retry-after" not in err.headers:
        err.headers.update({"retry-after": str(max(1, math.ceil(retry_after))),
                            "retry-after-ms": str(int(retry_after * 1000))})
    return err
