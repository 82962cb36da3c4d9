"""The workspace-wide gate while Slack refuses the bot's token: told once, probed sparingly, reopened."""

from __future__ import annotations

import logging

import pytest
from slack_sdk.errors import SlackApiError

from bot.outbound.slack_auth import SlackAuthGate


class AuthTest:
    """Slack's auth.test as the gate sees it: answers ok, or raises what Slack says."""

    def __init__(self) -> None:
        self.error: str | None = "token_revoked"
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.error:
            raise SlackApiError("refused", {"ok": False, "error": self.error})
        return {"ok": True}


async def test_told_once_probed_at_most_every_interval_then_open_again(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    slack = AuthTest()
    gate = SlackAuthGate(slack, probe_interval=10.0, clock=lambda: now[0])
    assert gate.open and await gate.usable() and slack.calls == 0  # nothing to ask while it works
    with caplog.at_level(logging.ERROR):
        for _ in range(5):  # every channel's reply is refused in turn: the operator hears it once
            gate.refused("token_revoked")
    told = [r for r in caplog.records if "Slack refuses the bot's token (token_revoked)" in r.getMessage()]
    assert len(told) == 1 and "SLACK_BOT_TOKEN" in told[0].getMessage()
    assert not await gate.usable() and slack.calls == 0  # refused just now: no probe yet
    now[0] += 10.0
    assert not await gate.usable() and slack.calls == 1  # still refused
    assert not await gate.usable() and slack.calls == 1  # and not asked again within the interval
    slack.error = None  # an admin reinstalled the app
    now[0] += 10.0
    assert await gate.usable() and gate.open and slack.calls == 2
    gate.delivered()
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        gate.refused("invalid_auth")  # a later outage is told again
    assert any("invalid_auth" in r.getMessage() for r in caplog.records)


async def test_a_missing_scope_lets_a_write_try_but_keeps_the_gate_closed() -> None:
    """auth.test passes for a token that lacks a scope: only a write can tell, so a waiting reply may
    try (at most every interval) while the gate stays closed for new model turns."""
    now = [0.0]
    slack = AuthTest()
    slack.error = None  # auth.test works …
    gate = SlackAuthGate(slack, probe_interval=10.0, clock=lambda: now[0])
    gate.refused("missing_scope")  # … but chat.postMessage said missing_scope
    assert not await gate.usable()
    now[0] += 10.0
    assert await gate.usable() and not gate.open and slack.calls == 0  # one write may try; still closed
    gate.delivered()  # the write worked: the scope was granted
    assert gate.open
