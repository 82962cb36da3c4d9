"""Logging set-up: plain text for people, JSON lines for machines; secrets never leave the process."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

import aiohttp

# Slack tokens (xoxb-, xoxp-, xapp-, …) and OpenAI-style keys (sk-…), wherever they might appear.
_SECRET = re.compile(r"\b(xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|sk-[A-Za-z0-9_-]{8,})")
_QUIET_LIBRARIES = ("slack_bolt", "slack_sdk", "openai", "httpx", "httpx2", "httpcore", "aiohttp", "asyncio")
# Bolt reads SLACK_BOT_TOKEN from the environment itself and then warns that the client and the
# authorize function we pass win over it; that is exactly what we want, so the warnings are noise.
_NOISE = ("`token` will be unused", "`token` (or SLACK_BOT_TOKEN env variable) will be ignored")


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: m.group(1)[:5] + "…[redacted]", text)


class RedactingFilter(logging.Filter):
    """Drops known noise, shortens expected network failures inside the Slack libraries to one line,
    and removes anything that looks like a token or key."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(noise in message for noise in _NOISE):
            return False
        if record.name.startswith("slack_") and record.exc_info and isinstance(
                record.exc_info[1], ConnectionError | aiohttp.ClientConnectionError):
            # e.g. an ack written to a Socket Mode connection that just closed: Slack re-delivers it.
            record.exc_info, record.exc_text = None, None
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Plain text lines; a traceback is passed through `redact` like the message."""

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def] # noqa: N802 - logging's name
        return redact(super().formatException(ei))


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level != "DEBUG":
        for name in _QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
