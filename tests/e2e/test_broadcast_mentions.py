"""The model's reply never notifies a channel or a user group, in any field that carries it: posted,
edited (channel mode) or streamed (thread mode) — unless BRIDGE_ALLOW_BROADCAST_MENTIONS=true."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.e2e.harness import BridgeProcess
from tests.e2e.replies import WRITES, wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

ANSWER = ("Attention <!channel> and <!here|here>! Also @everyone, @Here and <!subteam^S0DEVS01|@devs> "
          "and <!subteam^S0OPS001>: the build is green. Meeting <!date^1392734382^{date}|Feb 18>.")
# What the channel must read instead: the same words, with an invisible word joiner after each "@".
SHOWN = ("Attention @\u2060channel and @\u2060here! Also @\u2060everyone, @\u2060Here and @\u2060devs "
         "and @\u2060S0OPS001: the build is green. Meeting <!date^1392734382^{date}|Feb 18>.")
NOTIFYING = re.compile(r"<!(channel|here|everyone|subteam\^)|@(channel|here|everyone)", re.IGNORECASE)


def written_texts(slack: SlackEmulator) -> list[str]:
    """Every text field of every reply write the bridge made (post, update, stream start/append/stop)."""
    texts = []
    for call in slack.calls():
        if call.method in WRITES:
            texts += [str(call.args[k]) for k in ("text", "markdown_text", "blocks", "chunks") if call.args.get(k)]
    return texts


@pytest.mark.parametrize("reply_in", ["channel", "thread"])
def test_broadcast_mentions_in_the_reply_are_shown_but_notify_nobody(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess],
        reply_in: str) -> None:
    model_api.model.chunk_size = 3  # every mention arrives split across stream deltas …
    model_api.model.chunk_delay = 0.02  # … slowly enough that the reply is written in many pieces
    model_api.model.enqueue(ANSWER)
    bridge_factory(env={"BRIDGE_REPLY_IN": reply_in})
    slack.user_says("general", "alice", "announce it to everyone please")
    (reply,) = wait_replies(slack, "general", timeout=30)
    assert reply == SHOWN
    writes = written_texts(slack)
    assert len(writes) >= 2, "the reply was written in pieces"
    assert not [t for t in writes if NOTIFYING.search(t)]
    methods = {c.method for c in slack.calls() if c.method in WRITES}
    if reply_in == "thread":
        assert {"chat.startStream", "chat.appendStream", "chat.stopStream"} <= methods
    else:
        assert {"chat.postMessage", "chat.update"} <= methods


def test_broadcast_mentions_pass_when_allowed(slack: SlackEmulator, model_api: OpenAIEmulator,
                                             bridge_factory: Callable[..., BridgeProcess]) -> None:
    model_api.model.enqueue(ANSWER)
    bridge_factory(env={"BRIDGE_ALLOW_BROADCAST_MENTIONS": "true"})
    slack.user_says("general", "alice", "announce it to everyone please")
    assert wait_replies(slack, "general") == [ANSWER]


def test_a_long_message_is_cut_with_a_note_to_the_model_and_to_its_author(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge_factory(env={"BRIDGE_MAX_MESSAGE_CHARS": "100"})
    slack.user_says("general", "alice", "word " * 60)
    wait_replies(slack, "general")
    (seen,) = model_api.model.seen
    (text,) = [item for item in seen.input if item.get("role", "user") == "user"]
    content = text["content"] if isinstance(text["content"], str) else text["content"][0]["text"]
    assert content == "[Alice] " + ("word " * 20).strip() + " [… message cut at 100 characters]"
    (note,) = [e for e in slack.ephemeral("general") if e["user"] == slack.users["alice"]]
    assert "300 characters" in note["text"] and "first 100" in note["text"]
