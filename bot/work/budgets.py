"""What a message may spend, as pure functions over values: is it over a budget, when does that budget
renew, and how a turn's tokens are charged.

The budgets (0 = no limit): BRIDGE_USER_DAILY_TOKENS and BRIDGE_CHANNEL_DAILY_TOKENS — tokens per UTC
day, renewed at 00:00 UTC — and BRIDGE_USER_MESSAGES_PER_MINUTE, over any 60 seconds. A message is over a
token budget when the budget is already used up (a turn's cost is known only once it is answered, so the
turn that crosses the line is answered, and the next message is not).

Charging: a turn's whole usage (input + output tokens, as the backend reports them) is charged to the
channel, and split among the people it answered in proportion to the characters each wrote in it (a
file-only message counts as one character), so a short question next to a long paste pays little.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.messages import InboxItem
from bot.store.usage import CHANNEL, USER, Charge, RecentMessages

RATE_WINDOW = 60.0  # seconds: BRIDGE_USER_MESSAGES_PER_MINUTE counts the messages of any such window


@dataclass(frozen=True, slots=True)
class Limits:
    """The budgets that apply to messages in one channel (0 = no limit)."""

    user_daily_tokens: int = 0
    channel_daily_tokens: int = 0
    user_messages_per_minute: int = 0

    @property
    def any(self) -> bool:
        return bool(self.user_daily_tokens or self.channel_daily_tokens or self.user_messages_per_minute)


@dataclass(frozen=True, slots=True)
class OverBudget:
    """Which budget a message is over (`user`, `channel` or `rate`), its limit, and when it renews."""

    kind: str
    limit: int
    renews_at: dt.datetime


def next_midnight(now: dt.datetime) -> dt.datetime:
    """00:00 UTC after `now`: when the daily budgets renew."""
    day = now.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def over_budget(limits: Limits, *, user_used: int, channel_used: int, recent: RecentMessages | None,
                now: dt.datetime) -> OverBudget | None:
    """The budget this message is over, if any. `recent`: its author's messages in the RATE_WINDOW that
    ends with it (itself included)."""
    if limits.channel_daily_tokens and channel_used >= limits.channel_daily_tokens:
        return OverBudget(CHANNEL, limits.channel_daily_tokens, next_midnight(now))
    if limits.user_daily_tokens and user_used >= limits.user_daily_tokens:
        return OverBudget(USER, limits.user_daily_tokens, next_midnight(now))
    if limits.user_messages_per_minute and recent is not None and recent.count > limits.user_messages_per_minute:
        oldest = recent.oldest if recent.oldest is not None else now.timestamp()
        renews = dt.datetime.fromtimestamp(max(oldest + RATE_WINDOW, now.timestamp()), dt.UTC)
        return OverBudget("rate", limits.user_messages_per_minute, renews)
    return None


def renews_text(renews_at: dt.datetime, now: dt.datetime) -> str:
    """`at 00:00 UTC (in 3 h 20 min)`, `in 42 s`."""
    seconds = max(0, math.ceil((renews_at - now).total_seconds()))
    if seconds < 120:
        return f"in {seconds} s"
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    wait = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"at {renews_at.astimezone(dt.UTC):%H:%M} UTC (in {wait})"


def charges(channel: str, items: Sequence[InboxItem], tokens: int) -> list[Charge]:
    """The turn's `tokens` for the channel, and each author's share (by characters written; the
    rounding remainder goes to the author of the last message, the one the answer addresses)."""
    if tokens <= 0 or not items:
        return []
    written: dict[str, int] = {}
    for item in items:
        written[item.user] = written.get(item.user, 0) + max(1, len(item.text))
    total = sum(written.values())
    shares = {user: tokens * chars // total for user, chars in written.items()}
    shares[items[-1].user] += tokens - sum(shares.values())
    return [Charge(CHANNEL, channel, tokens), *(Charge(USER, user, share) for user, share in shares.items())]
