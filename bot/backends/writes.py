"""Writes to what the model service stores (a conversation's items, a thread's messages, a run), sent once.

The openai SDK resends a request after a 5xx, a timeout or a lost connection, without an idempotency
key: a write the server had stored before its answer was lost is then stored twice (a user message
doubled in the channel's conversation). So every write that changes stored state goes through a client
without the SDK's retries (`once`), and a failure that may have come after the server stored it is
`outcome_unknown` (`answer_lost`): the caller looks in the conversation (the journal's recovery, see
bot/work/recovery.py) and resends only what is missing.

Only an answer that says nothing was stored is resent here: a 429 (the request was turned away before
it was looked at). Writes left to the SDK's retries on purpose, because a lost answer harms nothing:
`conversations.create` and `threads.create` (an orphan: an empty conversation or thread nobody refers
to — the channel keeps the id of the one whose answer arrived) and Chat Completions (nothing is stored
at the server; the history is in our store, written once when the turn completes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import openai

from bot.backends.base import BackendError
from bot.backends.errors import _retry_after, classify

T = TypeVar("T")

WRITE_TRIES = 3  # a write turned away with 429 is sent at most this many times (as the SDK would)
RATE_LIMIT_WAIT = 0.5  # seconds before the first resend after a 429 without Retry-After; doubled each time
MAX_RATE_LIMIT_WAIT = 60.0  # a longer Retry-After is left to the runner's retry (the SDK's limit too)


def once(client: openai.AsyncOpenAI) -> openai.AsyncOpenAI:
    """The same client (same connection pool) without the SDK's automatic resends."""
    return client.with_options(max_retries=0)


def answer_lost(exc: BaseException) -> bool:
    """Could the server have stored the write although it failed? A 5xx (a proxy's 502 after the backend
    committed), a 408, a timeout or a lost connection say nothing either way."""
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError | asyncio.TimeoutError):
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code >= 500 or exc.status_code == 408)


def classify_write(exc: BaseException, *, streaming: bool = False) -> BackendError:
    """`classify` for a write: outcome unknown whenever the server may have stored it."""
    error = classify(exc, streaming=streaming)
    error.outcome_unknown = error.outcome_unknown or answer_lost(exc)
    return error


async def send(call: Callable[[], Awaitable[T]]) -> T:
    """Send a write (made with a client from `once`); resend it only after a 429, which stores nothing."""
    for attempt in range(WRITE_TRIES):
        try:
            return await call()
        except openai.RateLimitError as exc:
            wait = _retry_after(exc) or RATE_LIMIT_WAIT * 2 ** attempt
            if attempt == WRITE_TRIES - 1 or wait > MAX_RATE_LIMIT_WAIT:
                raise
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover

