"""Reading the bridge's replies out of the Slack emulator."""

from __future__ import annotations

import time
from typing import Any

from tests.emulators.server import wait_until
from tests.emulators.slack import SlackEmulator

WORKING = "_Thinking…_"
WRITES = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream")
QUIET = 1.2  # seconds without a Slack write after which a reply is taken as finished


def bot_messages(slack: SlackEmulator, channel: str, thread_ts: str | None = "all") -> list[dict[str, Any]]:
    return [m for m in slack.messages(channel, thread_ts) if m.get("bot_id") == slack.bot_id]


def replies(slack: SlackEmulator, channel: str, thread_ts: str | None = "all") -> list[str]:
    """Texts of the bot's messages that are not the bare working indicator, oldest first."""
    return [m["text"] for m in bot_messages(slack, channel, thread_ts) if m["text"] != WORKING]


def last_write(slack: SlackEmulator) -> float:
    return max((c.time for c in slack.calls() if c.method in WRITES), default=0.0)


def wait_replies(slack: SlackEmulator, channel: str, count: int = 1, timeout: float = 15.0,
                 thread_ts: str | None = "all") -> list[str]:
    """Wait for `count` replies in `channel` that have stopped changing (no indicator, no streaming,
    no Slack write for a moment); return their texts."""

    def ready() -> list[str] | None:
        messages = bot_messages(slack, channel, thread_ts)
        texts = [m["text"] for m in messages if m["text"] != WORKING]
        busy = any(m["text"] == WORKING or m.get("streaming") for m in messages)
        if len(texts) < count or busy or time.time() - last_write(slack) < QUIET:
            return None
        return texts

    return wait_until(ready, timeout=timeout, message=f"{count} finished repl(ies) in {channel}")


def wait_text(slack: SlackEmulator, channel: str, expected: str, timeout: float = 20.0,
              thread_ts: str | None = "all") -> dict[str, Any]:
    """Wait until one of the bot's messages shows exactly `expected`; return that message."""

    def shown() -> dict[str, Any] | None:
        return next((m for m in bot_messages(slack, channel, thread_ts)
                     if m["text"] == expected and not m.get("streaming")), None)

    return wait_until(shown, timeout=timeout, message=f"the text {expected[:40]!r}… in {channel}")
