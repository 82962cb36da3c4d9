"""What the bridge may spend and what it keeps: the daily token budgets, the message rate, the retention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_TOKENS_PER_DAY = 10**12  # (a sanity bound on a budget, not a limit anyone needs)
MAX_MESSAGES_PER_MINUTE = 10_000
MAX_RETENTION_DAYS = 36_500

# name → (Settings field, highest value); 0 (the default) means no limit / keep everything.
BUDGET_SETTINGS: dict[str, tuple[str, int]] = {
    "BRIDGE_USER_DAILY_TOKENS": ("user_daily_tokens", MAX_TOKENS_PER_DAY),
    "BRIDGE_CHANNEL_DAILY_TOKENS": ("channel_daily_tokens", MAX_TOKENS_PER_DAY),
    "BRIDGE_USER_MESSAGES_PER_MINUTE": ("user_messages_per_minute", MAX_MESSAGES_PER_MINUTE),
    "BRIDGE_RETENTION_DAYS": ("retention_days", MAX_RETENTION_DAYS),
}
# The ones a [channels.C…] table may set too (its lower-case field name), over the bridge-wide value.
CHANNEL_BUDGETS = ("user_daily_tokens", "channel_daily_tokens", "user_messages_per_minute")


def whole_number(text: str, high: int) -> int | None:
    """`text` as a whole number from 0 to `high`, else None."""
    text = text.strip().replace("_", "")
    if not text.isdigit() or int(text) > high:
        return None
    return int(text)


def budget_settings(get: Callable[..., str], problems: list[str]) -> dict[str, Any]:
    """BRIDGE_USER_DAILY_TOKENS, BRIDGE_CHANNEL_DAILY_TOKENS, BRIDGE_USER_MESSAGES_PER_MINUTE and
    BRIDGE_RETENTION_DAYS, each a whole number (0 or unset: no limit, keep everything)."""
    values: dict[str, Any] = {}
    for name, (field, high) in BUDGET_SETTINGS.items():
        text = get(name, "0")
        value = whole_number(text, high)
        if value is None:
            problems.append(f"{name} must be a whole number from 0 (no limit) to {high:,}, not {text!r}.")
            value = 0
        values[field] = value
    return values


def channel_budget(high: int) -> Callable[[Any], int | None]:
    """The parser of a per-channel budget in bridge.toml (a TOML integer, 0 for no limit)."""
    def parse(raw: Any) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= high:
            return None
        return raw

    return parse
