"""slack_sdk's retry handlers may resend a call after its answer was lost only where that is harmless."""

import aiohttp
import pytest
from aiohttp import ServerDisconnectedError
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler, AsyncServerErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.outbound.posted import PostTag, UnlessItAdds, api_method, outcome_unknown


def request(method: str) -> HttpRequest:
    return HttpRequest(method="POST", url=f"https://slack.com/api/{method}", headers={})


@pytest.mark.parametrize(("method", "resent"), [
    ("chat.postMessage", False), ("chat.startStream", False), ("chat.appendStream", False),
    ("chat.update", True), ("chat.delete", True), ("chat.stopStream", True), ("users.info", True),
])
async def test_only_calls_that_add_nothing_are_resent(method: str, resent: bool) -> None:
    dropped = UnlessItAdds(AsyncConnectionErrorRetryHandler())
    assert await dropped.can_retry_async(state=RetryState(), request=request(method),
                                         error=ServerDisconnectedError()) is resent
    failed = UnlessItAdds(AsyncServerErrorRetryHandler(max_retry_count=2))
    answer = HttpResponse(status_code=503, headers={}, body={"ok": False, "error": "internal_error"})
    assert await failed.can_retry_async(state=RetryState(), request=request(method), response=answer) is resent


def test_api_method_and_tags() -> None:
    assert api_method("https://slack.com/api/chat.postMessage?x=1") == "chat.postMessage"
    first, other_database = PostTag(3, "conv_a"), PostTag(3, "conv_b")
    assert first.metadata(1) == {"event_type": "assistant_bridge_reply",
                                 "event_payload": {"turn": first.key, "part": 1}}
    assert first.key != other_database.key  # turn 3 of another database's conversation is another turn


def test_which_slack_failures_leave_a_call_unknown() -> None:
    def answer(status: int, error: str) -> SlackApiError:
        response = AsyncSlackResponse(client=None, http_verb="POST", api_url="", req_args={},
                                      data={"ok": False, "error": error}, headers={}, status_code=status)
        return SlackApiError(error, response)

    assert outcome_unknown(answer(503, "internal_error"))  # a load balancer's, after Slack did the work?
    assert outcome_unknown(aiohttp.ServerDisconnectedError()) and outcome_unknown(TimeoutError())
    assert not outcome_unknown(answer(200, "not_in_channel"))  # Slack said no: nothing was made
    assert not outcome_unknown(answer(429, "ratelimited"))
    assert not outcome_unknown(SlackApiError("rate limited too many times", {"ok": False, "error": "ratelimited"}))
