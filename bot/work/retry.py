"""What to do when a turn fails: try again later, report once, or give up on a message.

- transient (5xx, network, rate limits, a busy conversation, a cut stream): retried with capped
  exponential backoff and jitter (never sooner than the service's Retry-After); the channel hears
  about it once; after `max_attempts` the messages are reported and skipped so the channel moves on.
- account (key, permission, quota, unknown model): reported once; the messages wait (nothing is lost)
  and are tried again with the next message, once an admin has fixed the cause.
- request (the model refuses this request): the batch is retried one message at a time, and a single
  message refused again is reported and skipped — a poison message never blocks its channel.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from bot.settings import DEFAULT_MAX_ATTEMPTS, DEFAULT_TURN_TIMEOUT

RETRY_BASE_DELAY = 2.0  # seconds before the second attempt
RETRY_MAX_DELAY = 120.0


class Next(Enum):
    """What a channel's worker does after one step."""

    CONTINUE = "continue"  # progress was made: look for more work now
    WAIT = "wait"  # nothing more until new work arrives
    RETRY = "retry"  # try again after `Step.delay` seconds


@dataclass(frozen=True, slots=True)
class Step:
    next: Next
    delay: float = 0.0


CONTINUE = Step(Next.CONTINUE)
WAIT = Step(Next.WAIT)


def retry_in(delay: float) -> Step:
    return Step(Next.RETRY, delay)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = RETRY_BASE_DELAY
    max_delay: float = RETRY_MAX_DELAY
    turn_timeout: float = DEFAULT_TURN_TIMEOUT

    def delay(self, attempt: int, retry_after: float | None = None,
              jitter: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        capped = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        return max(capped * (0.5 + jitter() / 2), retry_after or 0.0)

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
