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


# Slack errors after which writing to the channel cannot work until someone acts: skip, log, move on.
SLACK_PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "no_permission", "restricted_action",
    "restricted_action_read_only_channel", "restricted_action_thread_only_channel", "access_denied",
    "team_access_not_granted", "ekm_access_denied", "invalid_auth", "account_inactive", "token_revoked",
    "not_authed", "missing_scope", "cannot_reply_to_message", "thread_locked",
})
