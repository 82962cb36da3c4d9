"""The bridge's core scenarios on every backend (`ASSISTANT_BACKEND`): the same tests, parametrised.

Responses keeps the conversation at the model (a Conversation), Chat Completions in our store, and
Assistants in a thread; what people see and what the model reads must not depend on that.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.e2e.harness import MODEL, BridgeProcess, eventually
from tests.e2e.model_view import context_text, in_use, input_texts, never_overlapping, turn_facts, turns
from tests.e2e.replies import replies, wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

BACKENDS = ["responses", "chat", "assistants"]
pytestmark = pytest.mark.parametrize("backend", BACKENDS)


def test_reply_names_the_speaker(slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess,
                                 backend: str) -> None:
    slack.user_says("general", "alice", "hello there")
    (reply,) = wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert input_texts(seen) == ["[Alice] hello there"]
    assert "[Alice] hello there" in reply  # the scripted model echoes what it heard
    today = dt.date.today()
    assert "Please address the user as Alice." in turn_facts(seen)
    assert f"Today is {today:%A}, {today.day} {today:%B %Y}." in turn_facts(seen)
    assert "#general" in seen.instructions
    assert seen.model == MODEL


def test_two_users_share_one_conversation(slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess,
                                          backend: str) -> None:
    slack.user_says("general", "alice", "I like tea")
    wait_replies(slack, "general")
    slack.user_says("general", "carol", "what does Alice like?")
    wait_replies(slack, "general", 2)
    first, second = turns(model_api)
    assert input_texts(second) == ["[Carol] what does Alice like?"]
    assert "[Alice] I like tea" in context_text(second)  # the second turn knows the first …
    assert first.reply.text in context_text(second)  # … and what the assistant answered
    if backend == "responses":
        assert first.conversation_id == second.conversation_id


def test_two_channels_never_share(slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess,
                                  backend: str) -> None:
    slack.add_channel("random", members=[slack.users["alice"], slack.users["bob"]])
    slack.user_says("general", "alice", "secret plan in general")
    wait_replies(slack, "general")
    slack.user_says("random", "bob", "hello random")
    wait_replies(slack, "random")
    general, random = turns(model_api)
    assert "secret plan" not in context_text(random)
    assert "#random" in random.instructions
    if backend == "responses":
        assert general.conversation_id != random.conversation_id


def test_restart_keeps_the_channel_conversation(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                bridge: BridgeProcess, backend: str) -> None:
    slack.user_says("general", "alice", "remember 42")
    wait_replies(slack, "general")
    bridge.restart()
    slack.user_says("general", "alice", "what did I say?")
    wait_replies(slack, "general", 2)
    first, second = turns(model_api)
    assert "[Alice] remember 42" in context_text(second)
    if backend == "responses":
        assert first.conversation_id == second.conversation_id
        assert in_use(model_api) == [first.conversation_id]  # one conversation, kept over the restart


def test_reset_starts_afresh_in_that_channel_only(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                  bridge: BridgeProcess, backend: str) -> None:
    slack.add_channel("random", members=[slack.users["alice"]])
    slack.user_says("general", "alice", "before the reset")
    wait_replies(slack, "general")
    slack.user_says("random", "alice", "in random")
    wait_replies(slack, "random")
    slack.slash_command("general", "bob", "/assistant", "reset")
    eventually(lambda: any("started a new conversation" in t for t in replies(slack, "general")),
               message="the reset announcement")
    announcement = next(t for t in replies(slack, "general") if "started a new conversation" in t)
    assert f"<@{slack.users['bob']}>" in announcement
    slack.user_says("general", "alice", "after the reset")
    wait_replies(slack, "general", 3)
    slack.user_says("random", "alice", "still random")
    wait_replies(slack, "random", 2)
    seen = {input_texts(s)[0]: s for s in turns(model_api)}
    assert "before the reset" not in context_text(seen["[Alice] after the reset"])
    assert "[Alice] in random" in context_text(seen["[Alice] still random"])  # the other channel kept its own


def test_burst_from_three_users_reaches_the_model_once_each_in_order(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess, backend: str) -> None:
    model_api.model.ttft = 0.4
    model_api.model.chunk_delay = 0.02
    sent = []
    for i in range(15):
        text = f"burst message {i:02d}"
        slack.user_says("general", ("alice", "bob", "carol")[i % 3], text)
        sent.append(text)
    eventually(lambda: sum(len(input_texts(s)) for s in turns(model_api)) == 15, timeout=30,
               message="all 15 messages at the model")
    wait_replies(slack, "general", len(turns(model_api)), timeout=30)
    delivered = [text.split("] ", 1)[1] for s in turns(model_api) for text in input_texts(s)]
    assert delivered == sent  # exactly once each, in Slack order
    assert len(turns(model_api)) < 15  # messages that arrived mid-reply were answered together
    assert never_overlapping(model_api, backend)  # never two requests in flight on the conversation


def test_model_401_reported_and_answered_after_recovery(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                        bridge: BridgeProcess, backend: str) -> None:
    model_api.set_api_key("sk-rotated")  # the bridge's key is no longer accepted
    slack.user_says("general", "alice", "are you ok?")
    (notice,) = wait_replies(slack, "general")
    assert "couldn't answer" in notice and "kept" in notice
    assert "Traceback" not in notice and "sk-" not in notice
    assert bridge.alive
    model_api.set_api_key(model_api.api_key)
    slack.user_says("general", "alice", "how about now?")
    wait_replies(slack, "general", 2)
    assert input_texts(turns(model_api)[-1]) == ["[Alice] are you ok?", "[Alice] how about now?"]


def test_the_next_turn_starts_with_the_last_turns_prompt(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                         bridge: BridgeProcess, backend: str) -> None:
    """A turn with another speaker leaves everything the model read before unchanged, so a model service
    can serve it from its prompt cache: the same instructions, the same tools, and the whole previous
    prompt as the start of the new one (the speaker and the date are in the turn's note, after it)."""
    from tests.emulators.openai.model import prompt_pieces

    slack.user_says("general", "alice", "first question")
    wait_replies(slack, "general")
    slack.user_says("general", "carol", "second question")
    wait_replies(slack, "general", 2)
    first, second = turns(model_api)
    if backend == "assistants":  # (a thread: the assistant's own instructions come first; ours are extra)
        assert second.context[:len(first.context)] == first.context
        return
    assert second.instructions.startswith(first.instructions.split("Please address")[0])
    before = prompt_pieces(first.tools, first.instructions if backend == "responses" else None, first.context)
    after = prompt_pieces(second.tools, second.instructions if backend == "responses" else None, second.context)
    assert after[:len(before)] == before
    keys = {record.json.get("prompt_cache_key") for record in model_api.requests()
            if record.method == "POST" and record.path in ("/v1/responses", "/v1/chat/completions")}
    assert keys == {f"slack-{slack.channels['general']}"}  # one cache key per channel, on every request
