"""Faults, crashes and shutdown: nothing lost, nothing doubled, every failure handled on purpose.

Each case drives the real process through a fault and accounts for every message (see
`accounting.py`); the rows are printed as one table at the end of the test run.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.accounting import Sent, Tally, tally
from tests.e2e.harness import REPO_ROOT, BridgeProcess, eventually, settle
from tests.e2e.replies import bot_messages, replies, wait_replies, wait_text
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

NAMES = {"alice": "Alice", "bob": "Bob Builder", "carol": "Carol"}


def say(slack: SlackEmulator, channel: str, user: str, text: str, sent: list[Sent]) -> Sent:
    message = Sent(slack.channels.get(channel, channel), slack.user_says(channel, user, text), NAMES[user], text)
    sent.append(message)
    return message


def settled(slack: SlackEmulator, model_api: OpenAIEmulator, sent: list[Sent], timeout: float = 30,
            store: Path | None = None) -> None:
    """Wait until every sent message is answered or reported skipped, and Slack is quiet."""
    eventually(lambda: (t := tally("-", slack, model_api, sent, store)).answered + t.skipped == len(sent),
               timeout=timeout, message="every message answered or reported")
    for channel in {m.channel for m in sent}:
        wait_replies(slack, channel, timeout=timeout)


def check(fault_rows: list[Tally], case: str, slack: SlackEmulator, model_api: OpenAIEmulator,
          sent: list[Sent], *, skipped: int = 0, unanswered: int = 0, store: Path | None = None) -> Tally:
    row = tally(case, slack, model_api, sent, store)
    fault_rows.append(row)
    assert row.acked == row.sent, row
    assert (row.lost, row.duplicated) == (0, 0), row.notes
    assert row.skipped == skipped, row
    assert row.answered == row.sent - skipped - unanswered, row
    return row


def notices(slack: SlackEmulator, channel: str, words: str) -> list[str]:
    return [t for t in replies(slack, channel) if words in t]


# --- model faults ------------------------------------------------------------------------------------


def test_model_5xx_is_retried(slack, model_api, bridge, fault_rows) -> None:
    model_api.fail_next(500)  # a 5xx on a write is not resent blindly (it may have been stored): the turn fails once
    sent: list[Sent] = []
    say(slack, "general", "alice", "are you there?", sent)
    settled(slack, model_api, sent)
    check(fault_rows, "model HTTP 500, retried", slack, model_api, sent)
    assert len(bot_messages(slack, "general")) == 1  # the "trying again" notice became the answer


def test_model_rate_limit_honours_retry_after(slack, model_api, bridge, fault_rows) -> None:
    model_api.fail_next(429, code="rate_limit_exceeded", retry_after=2, times=3)
    sent: list[Sent] = []
    started = time.monotonic()
    say(slack, "general", "bob", "busy?", sent)
    settled(slack, model_api, sent)
    check(fault_rows, "model 429 rate_limit_exceeded", slack, model_api, sent)
    answered_at = [r.time_received for r in model_api.requests("/v1/responses") if r.status == 200]
    limited_at = [r.time_received for r in model_api.requests("/v1/responses") if r.status == 429]
    assert answered_at[0] - limited_at[-1] >= 1.9, "Retry-After was not honoured"
    assert time.monotonic() - started >= 2


def test_quota_is_reported_once_and_messages_wait(slack, model_api, bridge, fault_rows) -> None:
    model_api.fail_next(429, code="insufficient_quota", times=6)  # two turns' worth (the SDK tries 3 times)
    sent: list[Sent] = []
    say(slack, "general", "alice", "first", sent)
    eventually(lambda: notices(slack, "general", "quota"), message="the quota notice")
    say(slack, "general", "bob", "second", sent)
    model_api.wait_for(lambda: len(model_api.requests("/v1/responses")) >= 6, message="the second try")
    settle(1.0)
    assert len(notices(slack, "general", "quota")) == 1, "reported more than once"
    say(slack, "general", "carol", "third", sent)  # the account works again
    settled(slack, model_api, sent)
    check(fault_rows, "model 429 insufficient_quota", slack, model_api, sent)
    assert len([s for s in model_api.model.seen]) == 1  # one successful request answered all three


def test_refused_message_is_skipped_and_the_channel_moves_on(slack, model_api, bridge, fault_rows) -> None:
    sent: list[Sent] = []
    model_api.model.ttft = 1.0
    say(slack, "general", "alice", "warm-up", sent)
    model_api.wait_for(lambda: model_api.requests("/v1/responses"), message="the first turn")
    model_api.fail_next(400, code="invalid_prompt", message="Invalid prompt: refused.", times=2)
    poison = say(slack, "general", "bob", "the refused one", sent)
    say(slack, "general", "carol", "innocent one", sent)
    say(slack, "general", "alice", "innocent two", sent)
    settled(slack, model_api, sent)
    row = check(fault_rows, "model 400 (poison message)", slack, model_api, sent, skipped=1)
    assert row.skipped == 1
    (note,) = notices(slack, "general", "skipped")
    assert f"<@{slack.users['bob']}>" in note and "refused" in note
    assert poison.as_seen not in str(model_api.conversations)


def test_transient_failures_give_up_after_max_attempts(slack, model_api, bridge_factory, fault_rows) -> None:
    bridge_factory(env={"BRIDGE_MAX_ATTEMPTS": "2"})
    model_api.fail_next(500, times=2)  # two attempts of one request each (a 5xx may have been stored: no resend)
    sent: list[Sent] = []
    say(slack, "general", "alice", "doomed", sent)
    eventually(lambda: notices(slack, "general", "after 2 attempts"), timeout=20, message="the give-up notice")
    say(slack, "general", "alice", "next one", sent)
    settled(slack, model_api, sent)
    check(fault_rows, "model 500 every time (gave up)", slack, model_api, sent, skipped=1)


def test_stuck_response_is_abandoned_and_retried(slack, model_api, bridge_factory, fault_rows) -> None:
    bridge_factory(env={"BRIDGE_TURN_TIMEOUT": "2"})
    model_api.delay_next(6, path="/v1/responses")
    sent: list[Sent] = []
    say(slack, "general", "carol", "hello?", sent)
    settled(slack, model_api, sent, timeout=40)
    check(fault_rows, "model stuck past the deadline", slack, model_api, sent)


def test_completion_lost_in_transit_is_found_not_resent(slack, model_api, bridge, fault_rows) -> None:
    model_api.lose_completion_next()
    sent: list[Sent] = []
    say(slack, "general", "alice", "did you get that?", sent)
    settled(slack, model_api, sent)
    check(fault_rows, "model answered, connection lost", slack, model_api, sent)
    assert len(model_api.model.seen) == 1  # recovered from the conversation, not asked again
    assert len(bot_messages(slack, "general")) == 1


# --- Slack faults ------------------------------------------------------------------------------------


def test_not_in_channel_is_skipped_and_other_channels_keep_going(slack, model_api, bridge, fault_rows) -> None:
    slack.add_channel("random", members=[slack.users["alice"]])
    slack.fail_next("chat.postMessage", error="not_in_channel", times=10, channel=slack.channels["general"])
    sent: list[Sent] = []
    say(slack, "general", "alice", "can you hear me?", sent)
    model_api.wait_for(lambda: model_api.model.seen, message="the turn")
    say(slack, "random", "alice", "and here?", sent)
    eventually(lambda: replies(slack, "random"), message="the reply in #random")
    eventually(lambda: "cannot write replies there (not_in_channel)" in bridge.log, message="the operator log")
    wait_replies(slack, slack.channels["random"])
    check(fault_rows, "slack not_in_channel", slack, model_api, sent, unanswered=1)
    assert "Invite the bot" in bridge.log


def test_slack_5xx_and_429_are_retried(slack, model_api, bridge, fault_rows) -> None:
    slack.fail_next("chat.postMessage", status=500, times=3)
    sent: list[Sent] = []
    say(slack, "general", "alice", "one", sent)
    settled(slack, model_api, sent)
    slack.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=1, times=2)
    say(slack, "general", "bob", "two", sent)
    settled(slack, model_api, sent)
    check(fault_rows, "slack 500 and 429 on post", slack, model_api, sent)


def test_socket_refresh_and_drop_are_survived(slack, model_api, bridge, fault_rows) -> None:
    sent: list[Sent] = []
    opened = slack.connections_total
    slack.request_refresh()
    eventually(lambda: slack.connections_total > opened and slack.connected_sockets, message="a reconnect")
    say(slack, "general", "alice", "after refresh", sent)
    opened = slack.connections_total
    slack.drop_connections()
    say(slack, "general", "bob", "while dropped", sent)  # queued by Slack until the bridge is back
    eventually(lambda: slack.connections_total > opened, message="a reconnect after the drop")
    settled(slack, model_api, sent)
    check(fault_rows, "socket refresh + dropped socket", slack, model_api, sent)


# --- crashes and shutdown ------------------------------------------------------------------------


def test_kill_mid_stream_then_restart(slack, model_api, bridge, fault_rows) -> None:
    model_api.model.reply_length = 600
    model_api.model.chunk_delay = 0.1
    sent: list[Sent] = []
    say(slack, "general", "alice", "long answer please", sent)
    eventually(lambda: [m for m in bot_messages(slack, "general") if "Heard" in m["text"]], message="text shown")
    bridge.kill()
    model_api.model.chunk_delay = 0.0
    bridge.start()
    settled(slack, model_api, sent)
    check(fault_rows, "kill -9 mid-stream", slack, model_api, sent)
    assert len(bot_messages(slack, "general")) == 1  # the half-written message was completed, not doubled


def test_sigterm_finishes_in_flight_or_leaves_it_for_next_start(slack, model_api, bridge, fault_rows) -> None:
    model_api.model.ttft = 12.0  # cannot finish within the grace period (8 s)
    sent: list[Sent] = []
    say(slack, "general", "alice", "slow one", sent)
    model_api.wait_for(lambda: model_api.requests("/v1/responses"), message="the turn")
    started = time.monotonic()
    assert bridge.stop() == 0
    assert time.monotonic() - started < 10
    model_api.model.ttft = 0.0
    bridge.start()
    settled(slack, model_api, sent)
    check(fault_rows, "SIGTERM mid-turn, restart", slack, model_api, sent)


def test_five_kills_during_a_200_message_burst(slack, model_api, bridge, fault_rows) -> None:
    users = [slack.users[name] for name in NAMES]
    channels = [slack.add_channel(f"load-{i}", members=users) for i in range(10)]
    model_api.model.ttft = 0.05
    model_api.model.chunk_delay = 0.01
    rng = random.Random(7)
    sent: list[Sent] = []
    kills_at = {40, 80, 120, 160, 190}
    for index in range(200):
        say(slack, rng.choice(channels), rng.choice(list(NAMES)), f"burst {index:03d}", sent)
        time.sleep(0.01)
        if index in kills_at:
            bridge.kill()
            time.sleep(0.2)
            bridge.start()
    settled(slack, model_api, sent, timeout=120)
    check(fault_rows, "5 x kill -9 in 200 msgs / 10 channels", slack, model_api, sent)
    assert model_api.max_concurrent_per_conversation <= 2  # a killed turn's request may still be ending


@pytest.fixture
def json_bridge(bridge_factory: Callable[..., BridgeProcess]) -> BridgeProcess:
    return bridge_factory(env={"LOG_FORMAT": "json"})


def test_json_logs_one_line_per_turn_without_text_or_secrets(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                             json_bridge: BridgeProcess) -> None:
    slack.user_says("general", "alice", "a very private sentence")
    wait_text(slack, "general", eventually(lambda: model_api.model.seen)[0].reply.text.strip())
    json_bridge.stop()
    lines = [json.loads(line) for line in json_bridge.log.splitlines() if line.strip()]
    turns = [line for line in lines if line["message"].startswith("turn channel=")]
    assert len(turns) == 1
    for field in ("items=1", "outcome=answered", "response_id=resp_", "total_ms=", "first_token_ms="):
        assert field in turns[0]["message"]
    assert "very private" not in json_bridge.log
    assert slack.bot_token not in json_bridge.log and slack.app_token not in json_bridge.log
    assert model_api.api_key not in json_bridge.log


# --- regressions from review: each of these once lost, doubled or stalled messages ---------------

TEST_TOOLS = {"BRIDGE_TOOLS_MODULE": "tests.e2e.tools_for_tests", "PYTHONPATH": str(REPO_ROOT)}


def test_failure_after_a_tool_round_continues_the_turn(slack, model_api, bridge_factory, fault_rows) -> None:
    bridge_factory(env=TEST_TOOLS)
    model_api.model.enqueue(tool_calls=[{"name": "sleepy", "arguments": {"seconds": 1.0}}])
    sent: list[Sent] = []
    say(slack, "general", "alice", "please use the tool", sent)
    model_api.wait_for(lambda: len(model_api.model.seen) == 1, message="round 1")
    model_api.fail_next(500)  # round 2 (the tool's result) fails (a write: never resent blindly)
    settled(slack, model_api, sent, timeout=40)
    say(slack, "general", "bob", "an unrelated question", sent)  # the conversation still works
    settled(slack, model_api, sent, timeout=40)
    check(fault_rows, "model 500 after a tool round", slack, model_api, sent)
    assert not notices(slack, "general", "skipped")


def test_thread_reply_that_failed_to_stream_is_written_later(slack, model_api, bridge_factory, fault_rows) -> None:
    bridge_factory(env={"BRIDGE_REPLY_IN": "thread"})
    slack.fail_next("chat.startStream", status=500, times=3)
    sent: list[Sent] = []
    message = say(slack, "general", "alice", "stream me", sent)
    settled(slack, model_api, sent, timeout=40)
    check(fault_rows, "slack 500 on chat.startStream (thread)", slack, model_api, sent)
    assert [m for m in bot_messages(slack, "general", message.ts) if m.get("thread_ts") == message.ts]


def test_conversation_create_failing_is_told_once_and_retried(slack, model_api, bridge, fault_rows) -> None:
    model_api.fail_next(500, path="/v1/conversations", times=6)  # two attempts of three tries each
    sent: list[Sent] = []
    say(slack, "general", "carol", "first words here", sent)
    settled(slack, model_api, sent, timeout=40)
    check(fault_rows, "model 500 creating the conversation", slack, model_api, sent)
    assert len(notices(slack, "general", "try again shortly")) <= 1


def test_sigterm_while_a_sync_tool_hangs_exits_quickly(slack, model_api, bridge_factory) -> None:
    bridge = bridge_factory(env={**TEST_TOOLS, "BRIDGE_TOOL_TIMEOUT": "120"})
    model_api.model.enqueue(tool_calls=[{"name": "sleepy", "arguments": {"seconds": 60}}])
    slack.user_says("general", "alice", "take forever")
    eventually(lambda: "tools channel=" in bridge.log, message="the tool to start")
    started = time.monotonic()
    assert bridge.stop(timeout=12) == 0
    assert time.monotonic() - started < 10
