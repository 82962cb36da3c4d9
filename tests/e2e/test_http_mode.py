"""`assistant-bridge serve`: Slack's signed HTTP events instead of Socket Mode."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.e2e.harness import eventually, free_port
from tests.e2e.replies import wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


def test_http_events_commands_and_health(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory) -> None:
    port = free_port()
    bridge = bridge_factory(command="serve", env={"PORT": str(port)})
    with urllib.request.urlopen(f"{bridge.http_url}/healthz", timeout=5) as response:
        assert json.loads(response.read())["ok"] is True
    slack.set_events_url(f"{bridge.http_url}/slack/events")
    slack.verify_url("a-challenge")
    slack.user_says("general", "alice", "hello over HTTP")
    (reply,) = wait_replies(slack, "general")
    assert "[Alice] hello over HTTP" in reply
    status = slack.slash_command("general", "bob", "/assistant", "status")
    text = eventually(lambda: status.responses(), message="the status answer")[0]["text"]
    assert "responses" in text
    http = [e for e in slack.envelopes() if e.transport == "http"]
    assert http and all(e.acked_at is not None and e.retry_attempt == 0 for e in http)


def test_unsigned_requests_are_refused(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory) -> None:
    port = free_port()
    bridge = bridge_factory(command="serve", env={"PORT": str(port)})
    body = json.dumps({"type": "event_callback", "event": {"type": "message", "text": "forged"}}).encode()
    request = urllib.request.Request(f"{bridge.http_url}/slack/events", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=5)
        raise AssertionError("an unsigned request was accepted")
    except urllib.error.HTTPError as error:
        assert error.code == 401
    assert model_api.model.seen == []
