"""Model writes: which failures may have been stored (outcome unknown), and which are sent again."""

import httpx2
import openai
import pytest

from bot.backends import writes
from bot.backends.writes import answer_lost, classify_write, send

REQUEST = httpx2.Request("POST", "https://api.openai.com/v1/conversations/conv_1/items")


def status_error(cls: type[openai.APIStatusError], status: int, headers: dict[str, str] | None = None):
    return cls("failed", response=httpx2.Response(status, request=REQUEST, headers=headers or {}),
               body={"message": "failed", "type": "x", "param": None, "code": None})


@pytest.mark.parametrize(("error", "lost"), [
    (status_error(openai.InternalServerError, 500), True),  # a proxy's 5xx after the backend committed
    (status_error(openai.InternalServerError, 502), True),
    (status_error(openai.APIStatusError, 408), True),
    (openai.APITimeoutError(REQUEST), True),  # a slow but successful call
    (openai.APIConnectionError(request=REQUEST), True),  # dropped after the request went out
    (status_error(openai.RateLimitError, 429), False),  # turned away before anything was stored
    (status_error(openai.BadRequestError, 400), False),
    (status_error(openai.AuthenticationError, 401), False),
])
def test_which_failures_leave_a_write_unknown(error: Exception, lost: bool) -> None:
    assert answer_lost(error) is lost
    assert classify_write(error).outcome_unknown is lost


async def test_only_a_rate_limited_write_is_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes, "RATE_LIMIT_WAIT", 0.0)
    calls: list[int] = []

    async def limited_twice() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise status_error(openai.RateLimitError, 429, {"retry-after-ms": "1"})
        return "stored once"

    assert await send(limited_twice) == "stored once" and len(calls) == 3

    async def server_error() -> str:
        calls.append(1)
        raise status_error(openai.InternalServerError, 502)

    calls.clear()
    with pytest.raises(openai.InternalServerError):
        await send(server_error)
    assert len(calls) == 1  # never resent: it may have been stored


def test_the_write_client_makes_no_resends_of_its_own() -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=2)
    assert writes.once(client).max_retries == 0 and client.max_retries == 2
