"""The budgets at work: before a turn takes a channel's pending messages, those over a budget are
refused — never sent to the model, their authors told ephemerally when the budget renews — and after
an answer its usage is charged (see `budgets.py` for the rules).

The check sits where a turn takes its messages, not at intake: a budget can run out while messages
wait. A refused message ends `refused` (finished, like `done`); the rest of the channel is unaffected.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

from bot.messages import InboxItem, ItemKind
from bot.outbound import sentences
from bot.outbound.slack_errors import SLACK_FAILURES, reason
from bot.outbound.writer import SlackWriter
from bot.settings import Settings
from bot.store.usage import CHANNEL, USER, Usage, utc_day
from bot.work.budgets import RATE_WINDOW, Limits, OverBudget, charges, next_midnight, over_budget, renews_text

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def limits_from(settings: Settings) -> Callable[[str], Limits]:
    """Each channel's budgets: its own in bridge.toml, else the bridge-wide settings (the settings never
    change, so only channels with their own table are looked up: every turn asks)."""
    names = ("user_daily_tokens", "channel_daily_tokens", "user_messages_per_minute")
    default = Limits(*(getattr(settings, name) for name in names))
    own = {channel: Limits(*(settings.for_channel(channel, name, getattr(settings, name)) for name in names))
           for channel, _ in settings.channel_settings}

    def limits(channel: str) -> Limits:
        return own.get(channel, default)

    return limits


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BudgetGate:
    """Refuses messages over a budget; charges what answers cost; reports today's use."""

    def __init__(self, usage: Usage, writer: SlackWriter, limits: Callable[[str], Limits],
                 clock: Clock = _now) -> None:
        self._usage = usage
        self._writer = writer
        self._limits = limits
        self._clock = clock

    async def admit(self, items: Sequence[InboxItem]) -> list[InboxItem]:
        """The pending `items` that may go to the model; the others are refused and their authors told
        (once per author and budget in one look)."""
        limits = self._limits(items[0].channel) if items else Limits()
        if not limits.any:
            return list(items)
        channel, now = items[0].channel, self._clock()
        day = utc_day(now)
        channel_used = await self._usage.used(day, CHANNEL, channel) if limits.channel_daily_tokens else 0
        admitted: list[InboxItem] = []
        told: set[tuple[str, str]] = set()
        for item in items:
            if item.kind is not ItemKind.MESSAGE:
                admitted.append(item)
                continue
            user_used = await self._usage.used(day, USER, item.user) if limits.user_daily_tokens else 0
            recent = (await self._usage.recent_messages(item.id, item.user, RATE_WINDOW)
                      if limits.user_messages_per_minute else None)
            over = over_budget(limits, user_used=user_used, channel_used=channel_used, recent=recent, now=now)
            if over is None:
                admitted.append(item)
                continue
            await self._usage.refuse([item.id], now.timestamp())
            log.info("channel %s: a message of %s is over the %s budget; refused", channel, item.user, over.kind)
            if (item.user, over.kind) not in told:
                told.add((item.user, over.kind))
                await self._tell(item, over, now)
        return admitted

    async def charge(self, channel: str, items: Sequence[InboxItem], input_tokens: int | None,
                     output_tokens: int | None) -> None:
        """An answered turn's usage, charged to the channel and to its authors."""
        tokens = (input_tokens or 0) + (output_tokens or 0)
        messages = [item for item in items if item.kind is ItemKind.MESSAGE]
        await self._usage.add(utc_day(self._clock()), charges(channel, messages, tokens))

    async def report(self, channel: str, user: str) -> str:
        """`/assistant usage`: today's use against the budgets, for the channel and for `user`."""
        now = self._clock()
        limits, day = self._limits(channel), utc_day(now)
        return sentences.usage_text(
            day=day, renews=renews_text(next_midnight(now), now),
            channel_used=await self._usage.used(day, CHANNEL, channel), channel_limit=limits.channel_daily_tokens,
            user_used=await self._usage.used(day, USER, user), user_limit=limits.user_daily_tokens,
            per_minute=limits.user_messages_per_minute)

    async def _tell(self, item: InboxItem, over: OverBudget, now: dt.datetime) -> None:
        text = sentences.over_budget(over.kind, over.limit, renews_text(over.renews_at, now))
        kwargs = {"thread_ts": item.thread_ts} if item.thread_ts else {}
        try:
            await self._writer.client.chat_postEphemeral(channel=item.channel, user=item.user, text=text, **kwargs)
        except SLACK_FAILURES as exc:
            log.warning("channel %s: could not tell %s about a budget (%s)", item.channel, item.user, reason(exc))
