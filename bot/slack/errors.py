"""What a failed Slack call looks like, after slack_sdk's own retries."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError

# SlackApiError: Slack answered ok=false (or 429/5xx after the retry handlers gave up);
# aiohttp.ClientError / TimeoutError: Slack could not be reached.
SLACK_FAILURES = (SlackApiError, aiohttp.ClientError, TimeoutError)


def reason(exc: BaseException) -> str:
    """Slack's error code (`not_in_channel`, `ratelimited` …) or the kind of network failure."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return f"{type(exc).__name__} (Slack unreachable)"
