"""Access settings: who may talk to the bridge, who may reset a channel, what the model's replies may
notify, how long a message may be. Global values here; per-channel ones through CHANNEL_KEYS."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

RESET_BY = ("anyone", "admins")
DEFAULT_MAX_MESSAGE_CHARS = 4000  # about 1,000 tokens: a long question or a pasted snippet, not a whole log
MAX_MESSAGE_CHARS_RANGE = (100, 40_000)  # Slack itself cuts a message's text at 40,000 characters
_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")  # a user (U…, W… on Enterprise Grid) or a user group (S…)

Lookup = Callable[..., str]


def parse_ids(value: Any) -> frozenset[str] | None:
    """User and user-group IDs from "U1, S2" or a TOML list; None if any entry is not such an ID."""
    if isinstance(value, list) and not all(isinstance(part, str) for part in value):
        return None
    parts = value if isinstance(value, list) else str(value).replace(" ", ",").split(",")
    ids = [part.strip() for part in parts if part.strip()]
    return frozenset(ids) if all(_ID.match(i) for i in ids) else None


def parse_reset_by(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value.lower() in RESET_BY else None


def access_settings(get: Lookup, problems: list[str]) -> dict[str, Any]:
    """BRIDGE_ALLOWED_USERS, BRIDGE_BLOCKED_USERS, BRIDGE_ADMINS, BRIDGE_RESET_BY,
    BRIDGE_ALLOW_BROADCAST_MENTIONS and BRIDGE_MAX_MESSAGE_CHARS."""
    values: dict[str, Any] = {}
    for name, key in (("BRIDGE_ALLOWED_USERS", "allowed_users"), ("BRIDGE_BLOCKED_USERS", "blocked_users"),
                      ("BRIDGE_ADMINS", "admins")):
        ids = parse_ids(get(name))
        if ids is None:
            problems.append(f"{name} must be a comma-separated list of user IDs (U…, W…) or user-group IDs "
                            f"(S…), not {get(name)!r}.")
        values[key] = ids or frozenset()
    reset_by = parse_reset_by(get("BRIDGE_RESET_BY", "anyone"))
    if reset_by is None:
        problems.append(f"BRIDGE_RESET_BY must be one of {', '.join(RESET_BY)}, not {get('BRIDGE_RESET_BY')!r}.")
    values["reset_by"] = reset_by or "anyone"
    broadcast = get("BRIDGE_ALLOW_BROADCAST_MENTIONS", "false").lower()
    if broadcast not in ("true", "false"):
        problems.append(f"BRIDGE_ALLOW_BROADCAST_MENTIONS must be true or false, not {broadcast!r}.")
    values["allow_broadcast_mentions"] = broadcast == "true"
    text = get("BRIDGE_MAX_MESSAGE_CHARS")
    low, high = MAX_MESSAGE_CHARS_RANGE
    values["max_message_chars"] = DEFAULT_MAX_MESSAGE_CHARS
    if text:
        if not text.isdigit() or not low <= int(text) <= high:
            problems.append(f"BRIDGE_MAX_MESSAGE_CHARS must be a whole number from {low} to {high}, not {text!r}.")
        else:
            values["max_message_chars"] = int(text)
    return values


ACCESS_FILE_SETTINGS = frozenset({"BRIDGE_ALLOWED_USERS", "BRIDGE_BLOCKED_USERS", "BRIDGE_ADMINS", "BRIDGE_RESET_BY",
                                  "BRIDGE_ALLOW_BROADCAST_MENTIONS", "BRIDGE_MAX_MESSAGE_CHARS"})

# [channels.C…] keys this module adds: key → (parse, what it takes).
ACCESS_CHANNEL_KEYS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "allowed_users": (parse_ids, 'a list of user or user-group IDs like ["U0123ABCD", "S0123ABCD"]'),
    "blocked_users": (parse_ids, 'a list of user or user-group IDs like ["U0123ABCD", "S0123ABCD"]'),
    "reset_by": (parse_reset_by, '"anyone" or "admins"'),
}
