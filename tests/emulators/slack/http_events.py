"""Deliver envelopes as signed HTTP requests, like Slack does for apps with a Request URL.

Events are JSON bodies; slash commands are form-encoded; interactions are a form field `payload`
holding JSON. Every request carries `X-Slack-Request-Timestamp` and `X-Slack-Signature`
(`v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret). An event answered
late (3 s) or with a non-2xx status is retried with `X-Slack-Retry-Num` / `X-Slack-Retry-Reason`.

Several Request URLs stand for the replicas behind a load balancer: each request (a retry too) goes
to the next one in turn, as a round-robin balancer would send it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .envelopes import AckCallback, Envelope

# Slack waits about a minute, then five, between retries; tests cannot, so the default is quick.
RETRY_DELAYS_SECONDS: tuple[float, ...] = (0.0, 0.2, 0.5)


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def encode_body(envelope: Envelope) -> tuple[bytes, str]:
    """The request body and content type Slack uses for this kind of envelope."""
    if envelope.type in ("events_api", "url_verification"):
        return json.dumps(envelope.payload).encode(), "application/json"
    if envelope.type == "slash_commands":
        return urlencode(envelope.payload).encode(), "application/x-www-form-urlencoded"
    return urlencode({"payload": json.dumps(envelope.payload)}).encode(), "application/x-www-form-urlencoded"


class HttpEventSender:
    """POSTs each envelope to the app's Request URL and records what came back."""

    def __init__(self, *, events_url: str, signing_secret: str, ack_timeout: float, on_ack: AckCallback,
                 retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS) -> None:
        self.events_urls = [events_url]
        self._next_url = itertools.count()
        self.signing_secret = signing_secret
        self.ack_timeout = ack_timeout
        self.retry_delays = tuple(retry_delays)
        self._on_ack = on_ack
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def events_url(self) -> str:
        return self.events_urls[0]

    @events_url.setter
    def events_url(self, url: str) -> None:
        self.events_urls = [url]

    def deliver(self, envelope: Envelope) -> None:
        task = asyncio.ensure_future(self._deliver(envelope))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _deliver(self, envelope: Envelope) -> None:
        while True:
            status, body, reason = await self._post(envelope)
            envelope.attempts[-1].update({"status": status, "body": body, "reason": reason})
            if reason is None:
                envelope.acked_at = time.time()
                envelope.ack_payload = _parse_answer(body)
                self._on_ack(envelope)
                return
            if not envelope.retryable():
                envelope.gave_up = True
                return
            delay = self.retry_delays[min(envelope.retry_attempt, len(self.retry_delays) - 1)]
            envelope.retry_attempt += 1
            envelope.retry_reason = reason
            await asyncio.sleep(delay)

    async def _post(self, envelope: Envelope) -> tuple[int | None, str | None, str | None]:
        """One attempt: (status, body, failure reason or None when the app answered 2xx in time)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body, content_type = encode_body(envelope)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(self.signing_secret, timestamp, body),
        }
        if envelope.retry_attempt:
            headers["X-Slack-Retry-Num"] = str(envelope.retry_attempt)
            headers["X-Slack-Retry-Reason"] = envelope.retry_reason
        url = self.events_urls[next(self._next_url) % len(self.events_urls)]
        envelope.attempts.append({"attempt": envelope.retry_attempt, "at": time.time(), "url": url})
        timeout = aiohttp.ClientTimeout(total=self.ack_timeout)
        try:
            async with self._session.post(url, data=body, headers=headers, timeout=timeout) as resp:
                text = await resp.text()
        except TimeoutError:
            return None, None, "http_timeout"
        except aiohttp.ClientError:
            return None, None, "connection_failed"
        return resp.status, text, None if 200 <= resp.status < 300 else "http_error"


def _parse_answer(body: str | None) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return {"text": body}
    return value if isinstance(value, dict) else {"text": body}
