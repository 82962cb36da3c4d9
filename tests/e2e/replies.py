"""Reading the bridge's replies out of the Slack emulator."""

from __future__ import annotations

from typing import Any

from tests.emulators.server import wait_until
from tests.emulators.slack import SlackEmulator

WORKING = "_Thinking…_"


def bot_messages(slack: SlackEmulator, channel: str, thread_ts: str | None = "all") -> list[dict[str, Any]]:
    return [m for m in slack.messages(channel, thread_ts) if m.get("bot_id") == slack.bot_id]


def replies(slack: SlackEmulator, channel: str, thread_ts: str | None = "all") -> list[str]:
    """Texts of the bot's finished messages (not the working indicator), oldest first."""
    return [m["text"] for m in bot_messages(slack, channel, thread_ts) if m["text"] != WORKING]


def wait_replies(slack: SlackEmulator, channel: str, count: int = 1, timeout: float = 15.0,
                 thread_ts: str | None = "all") -> list[str]:
    def ready() -> list[str] | None:
        texts = replies(slack, channel, thread_ts)
        working = [m for m in bot_messages(slack, channel, thread_ts) if m["text"] == WORKING]
        return texts if len(texts) >= count and not working else None

    return wait_until(ready, timeout=timeout, message=f"{count} finished repl(ies) in {channel}")
