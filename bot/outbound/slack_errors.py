"""What a failed Slack call looks like, after slack_sdk's own retries."""

from __future__ import annotations

from collections.abc import Callable

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
    "team_access_not_granted", "ekm_access_denied", "cannot_reply_to_message", "thread_locked",
})
# Slack errors about the bot's token (or the app's scopes), not one channel: nothing can be written anywhere
# until an admin reinstalls the app — wait for it (see slack_auth.SlackAuthGate), never skip.
SLACK_AUTH = frozenset({
    "invalid_auth", "account_inactive", "token_revoked", "token_expired", "not_authed", "missing_scope",
    "no_permission_for_app", "app_uninstalled",
})


def refused_token(exc: BaseException, tell: Callable[[str], None] | None) -> bool:
    """Is `exc` Slack refusing the bot's token (SLACK_AUTH)? If so, `tell` it (to the SlackAuthGate)."""
    code = exc.response.get("error") if isinstance(exc, SlackApiError) else None
    if code not in SLACK_AUTH:
        return False
    if tell is not None:
        tell(str(code))
    return True
