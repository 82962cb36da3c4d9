"""Slack's Web API rate limits: tiers per method and workspace, plus per-channel posting buckets.

Tiers (docs.slack.dev/apis/web-api/rate-limits): Tier 1 1+/min, Tier 2 20+/min, Tier 3 50+/min,
Tier 4 100+/min, counted per method per workspace over a sliding minute. "Special" methods
(spec tier `t5`) have their own rules: chat.postMessage allows about one message per second per
channel with short bursts; others are effectively unlimited for one app.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0
TIER_CALLS_PER_WINDOW: Mapping[str, int] = {"t1": 1, "t2": 20, "t3": 50, "t4": 100}
# (messages per second, burst) per channel, the "special" posting limit.
CHANNEL_BUCKETS: Mapping[str, tuple[float, int]] = {
    "chat.postMessage": (1.0, 3),
    "chat.postEphemeral": (1.0, 3),
}

# How the app is distributed decides conversations.history / conversations.replies limits
# (docs.slack.dev/reference/methods/conversations.replies, rate-limit changes of 2025-05-29): internal
# (customer-built) and Marketplace apps get the method's tier; commercially distributed apps outside the
# Marketplace get 1 request a minute per method, and `limit` defaults to and is capped at 15 objects.
DISTRIBUTIONS = ("internal", "non_marketplace")
NON_MARKETPLACE_READS = ("conversations.history", "conversations.replies")
NON_MARKETPLACE_CALLS_PER_MINUTE = 1
NON_MARKETPLACE_MAX_OBJECTS = 15


@dataclass(frozen=True)
class RateLimitPolicy:
    """How the emulator limits calls. `RateLimitPolicy.real()` is Slack's; tests may tighten it.

    `method_limits` overrides a method's workspace limit with (calls, window seconds);
    `channel_buckets` sets per-channel token buckets (rate per second, burst) for posting methods.
    """

    enabled: bool = True
    tiers: Mapping[str, int] = field(default_factory=lambda: dict(TIER_CALLS_PER_WINDOW))
    window: float = WINDOW_SECONDS
    method_limits: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    channel_buckets: Mapping[str, tuple[float, int]] = field(default_factory=lambda: dict(CHANNEL_BUCKETS))

    @classmethod
    def real(cls) -> RateLimitPolicy:
        return cls()

    @classmethod
    def off(cls) -> RateLimitPolicy:
        return cls(enabled=False)

    @classmethod
    def parse(cls, value: str | RateLimitPolicy) -> RateLimitPolicy:
        if isinstance(value, RateLimitPolicy):
            return value
        if value == "real":
            return cls.real()
        if value == "off":
            return cls.off()
        raise ValueError(f"rate_limits must be 'off', 'real' or a RateLimitPolicy, not {value!r}")

    def window_limit(self, method: str, tier: str | None) -> tuple[int, float] | None:
        if method in self.method_limits:
            return self.method_limits[method]
        if tier in self.tiers:
            return self.tiers[tier], self.window
        return None


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Decides whether a call may proceed; returns the Retry-After seconds when it may not."""

    def __init__(self, policy: RateLimitPolicy, clock=time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def check(self, method: str, tier: str | None, channel: str | None) -> int | None:
        """Count the call and return None, or return the seconds to wait (the call is not counted)."""
        if not self.policy.enabled:
            return None
        now = self._clock()
        wait = self._window_wait(method, tier, now)
        bucket_wait = self._bucket_wait(method, channel, now)
        if wait is None and bucket_wait is None:
            self._take(method, tier, channel, now)
            return None
        return max(w for w in (wait, bucket_wait) if w is not None)

    def _window_wait(self, method: str, tier: str | None, now: float) -> int | None:
        limit = self.policy.window_limit(method, tier)
        if limit is None:
            return None
        calls, window = limit
        stamps = self._windows.setdefault(method, deque())
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        if len(stamps) < calls:
            return None
        return _seconds(stamps[0] + window - now)

    def _bucket_wait(self, method: str, channel: str | None, now: float) -> int | None:
        spec = self.policy.channel_buckets.get(method)
        if spec is None or channel is None:
            return None
        rate, burst = spec
        bucket = self._refill((method, channel), rate, burst, now)
        if bucket.tokens >= 1:
            return None
        return _seconds((1 - bucket.tokens) / rate)

    def _take(self, method: str, tier: str | None, channel: str | None, now: float) -> None:
        if self.policy.window_limit(method, tier) is not None:
            self._windows.setdefault(method, deque()).append(now)
        spec = self.policy.channel_buckets.get(method)
        if spec is not None and channel is not None:
            self._refill((method, channel), spec[0], spec[1], now).tokens -= 1

    def _refill(self, key: tuple[str, str], rate: float, burst: int, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(burst), updated=now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        return bucket


def _seconds(wait: float) -> int:
    """Retry-After is whole seconds, at least one."""
    return max(1, math.ceil(wait))
