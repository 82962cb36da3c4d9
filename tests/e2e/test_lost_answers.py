"""Writes whose answer is lost: the service stored the write, then answered 5xx or dropped the connection.

One row of the fault table per write endpoint the bridge uses, per backend, in `all` and `mentions`
channels: a short burst with the first matching write's answer lost. Every row: nothing lost, nothing
doubled — neither in Slack nor in the conversation the model keeps (the emulator's conversations and
threads, or the chat backend's history in the bridge's store).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.accounting import Sent
from tests.e2e.harness import BridgeProcess, eventually
from tests.e2e.replies import bot_messages
from tests.e2e.test_faults import TEST_TOOLS, check, say, settled
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

TURN = {"responses": "/v1/responses", "chat": "/v1/chat/completions", "assistants": "/v1/threads/*/runs"}
CONTEXT = {"responses": "/v1/conversations/*/items", "assistants": "/v1/threads/*/messages"}
CREATE = {"responses": "/v1/conversations", "assistants": "/v1/threads"}
TOOL_OUTPUTS = {"responses": "/v1/responses", "chat": "/v1/chat/completions",
                "assistants": "/v1/threads/*/runs/*/submit_tool_outputs"}

# (backend, respond_to, endpoint, how): the endpoint whose first write of the burst loses its answer.
ROWS = [
    *[(backend, "all", TURN[backend], how) for backend in TURN for how in ("status", "drop")],
    *[(backend, "mentions", endpoint, how) for backend in TURN
      for endpoint in (CONTEXT.get(backend), TURN[backend]) if endpoint for how in ("status", "drop")],
    *[(backend, "all", CREATE[backend], "status") for backend in CREATE],
]


def burst(slack: SlackEmulator, respond_to: str, sent: list[Sent],
          context_written: Callable[[], bool] | None = None) -> None:
    """Three messages from three people; in a mention-only channel the first two are context (with
    `context_written`, the mention waits until it says they were written as context: sent at once, all
    three would go in the mention's turn, and no context write would happen)."""
    to_bot = f"<@{slack.bot_user_id}> " if respond_to == "mentions" else ""
    say(slack, "general", "alice", "first of three", sent)
    say(slack, "general", "bob", "second of three", sent)
    if context_written is not None:
        eventually(context_written, timeout=20, message="the context written")
    say(slack, "general", "carol", f"{to_bot}third of three", sent)


@pytest.mark.parametrize(("backend", "respond_to", "endpoint", "how"), ROWS)
def test_a_write_whose_answer_is_lost_is_not_repeated(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess],
        fault_rows: list, backend: str, respond_to: str, endpoint: str, how: str) -> None:
    bridge = bridge_factory(env={"BRIDGE_RESPOND_TO": respond_to})
    model_api.lose_answer_next(endpoint, how=how)
    sent: list[Sent] = []
    burst(slack, respond_to, sent, (lambda: not model_api.faults.pending) if endpoint in CONTEXT.values() else None)
    settled(slack, model_api, sent, timeout=40, store=bridge.workdir / "bridge.sqlite3")
    check(fault_rows, f"{backend}/{respond_to}: {endpoint} stored, answer lost ({how})", slack, model_api, sent,
          store=bridge.workdir / "bridge.sqlite3")
    assert not model_api.faults.pending, "the fault never fired"


@pytest.mark.parametrize("backend", list(TOOL_OUTPUTS))
@pytest.mark.parametrize("how", ["status", "drop"])
def test_tool_outputs_whose_answer_is_lost_are_not_repeated(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess],
        fault_rows: list, backend: str, how: str) -> None:
    bridge = bridge_factory(env=TEST_TOOLS)
    model_api.model.enqueue(tool_calls=[{"name": "sleepy", "arguments": {"seconds": 0.5}}])
    sent: list[Sent] = []
    say(slack, "general", "alice", "use the tool please", sent)
    model_api.wait_for(lambda: len(model_api.model.seen) == 1, message="the round that calls the tool")
    model_api.lose_answer_next(TOOL_OUTPUTS[backend], how=how)  # the tool's result: stored, answer lost
    eventually(lambda: not model_api.faults.pending, timeout=20, message="the fault to fire")
    say(slack, "general", "bob", "and then a question", sent)
    settled(slack, model_api, sent, timeout=40, store=bridge.workdir / "bridge.sqlite3")
    check(fault_rows, f"{backend}: tool results stored, answer lost ({how})", slack, model_api, sent,
          store=bridge.workdir / "bridge.sqlite3")
    if backend != "assistants":  # (a run takes a call's output once: a second submission is refused)
        stored = tool_results(model_api, bridge.workdir / "bridge.sqlite3")
        assert stored and set(stored.values()) == {1}, stored  # each tool call's result stored once


def tool_results(model_api: OpenAIEmulator, store: Path) -> Counter[str]:
    """How often each tool call's result is in a stored conversation (Responses, or the chat history)."""
    found: Counter[str] = Counter(item["call_id"] for items in model_api.conversations.values() for item in items
                                  if item.get("type") == "function_call_output")
    if store.exists():
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT message FROM chat_messages").fetchall()
        found.update(message["tool_call_id"] for message in (json.loads(raw) for raw, in rows)
                     if message.get("role") == "tool")
    return found


# --- our own Slack writes ----------------------------------------------------------------------------

# (method, BRIDGE_REPLY_IN): the calls that add something each time they are made.
SLACK_ROWS = [(method, reply_in, how) for method, reply_in in (("chat.postMessage", "channel"),
                                                               ("chat.startStream", "thread"),
                                                               ("chat.appendStream", "thread"))
              for how in ("status", "drop")]


@pytest.mark.parametrize(("method", "reply_in", "how"), [*SLACK_ROWS, *[("chat.update", "channel", how)
                                                                       for how in ("status", "drop")]])
def test_a_slack_post_whose_answer_is_lost_is_not_posted_twice(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess],
        fault_rows: list, method: str, reply_in: str, how: str) -> None:
    """(chat.update sets the same text when made twice: slack_sdk's handlers may resend it, and do.)"""
    bridge_factory(env={"BRIDGE_REPLY_IN": reply_in})
    model_api.model.reply_length, model_api.model.chunk_delay = 300, 0.02  # posted early, then edited
    slack.lose_answer_next(method, how=how, channel="general")
    sent: list[Sent] = []
    burst(slack, "all", sent)
    settled(slack, model_api, sent, timeout=60)
    check(fault_rows, f"slack {method} ({reply_in}) done, answer lost ({how})", slack, model_api, sent)
    assert [c for c in slack.calls(method) if c.injected], "the fault never fired"


def test_a_kill_after_a_post_whose_ts_was_never_journalled(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess, fault_rows: list) -> None:
    """What a kill between a post and journalling its ts leaves (test_kill_mid_stream_then_restart's rare
    case), made certain: the post is in the channel, its answer never reached the bridge, and the bridge
    is killed before the turn goes on. The restarted bridge finds the message instead of posting another."""
    model_api.model.reply_length = 600
    model_api.model.chunk_delay = 0.1
    slack.lose_answer_next("chat.postMessage", how="drop", channel="general")
    sent: list[Sent] = []
    say(slack, "general", "alice", "long answer please", sent)
    eventually(lambda: [c for c in slack.calls("chat.postMessage") if c.injected], message="the post, unanswered")
    bridge.kill()
    model_api.model.chunk_delay = 0.0
    bridge.start()
    settled(slack, model_api, sent)
    check(fault_rows, "kill -9 after a post whose ts was never journalled", slack, model_api, sent)
    assert len(bot_messages(slack, "general")) == 1  # the unjournalled message was completed, not doubled


@pytest.mark.parametrize("how", ["status", "drop"])
def test_a_notice_whose_answer_is_lost_is_posted_once(slack: SlackEmulator, bridge: BridgeProcess, how: str) -> None:
    slack.lose_answer_next("chat.postMessage", how=how, channel="general")
    slack.slash_command("general", "alice", "/assistant", "reset")
    eventually(lambda: [c for c in slack.calls("chat.postMessage") if c.injected], message="the notice, unanswered")
    eventually(lambda: "reset channel=" in bridge.log, message="the reset done")
    announced = [m for m in bot_messages(slack, "general") if "started a new conversation" in m["text"]]
    assert len(announced) == 1  # found by its tag, not posted again


def test_a_notice_refused_before_it_was_made_is_sent_again(slack: SlackEmulator, bridge: BridgeProcess) -> None:
    slack.fail_next("chat.postMessage", status=503, channel="general")  # a 5xx with nothing posted
    slack.slash_command("general", "alice", "/assistant", "reset")
    eventually(lambda: "reset channel=" in bridge.log, message="the reset done")
    announced = [m for m in bot_messages(slack, "general") if "started a new conversation" in m["text"]]
    assert len(announced) == 1  # not found by its tag, so posted again
