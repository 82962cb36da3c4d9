"""The bridge end to end: the real `assistant-bridge run` process against the Slack and OpenAI emulators."""

from __future__ import annotations

import time

from tests.e2e.harness import MODEL, BridgeProcess, eventually, settle
from tests.e2e.model_view import input_texts, turn_facts, turns
from tests.e2e.replies import WORKING, bot_messages, replies, wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


def test_names_fall_back_when_display_name_is_empty(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                    bridge: BridgeProcess) -> None:
    dave = slack.add_user(name="dave")  # neither display nor real name
    slack.join_channel("general", dave)
    slack.user_says("general", "bob", "I have only a real name")
    wait_replies(slack, "general")
    slack.user_says("general", dave, "and I only a user name")
    wait_replies(slack, "general", 2)
    first, second = turns(model_api)
    assert input_texts(first) == ["[Bob Builder] I have only a real name"]
    assert input_texts(second) == ["[dave] and I only a user name"]
    assert "Please address the user as dave." in turn_facts(second)


def test_mentions_and_markup_become_readable(slack: SlackEmulator, model_api: OpenAIEmulator,
                                             bridge: BridgeProcess) -> None:
    bob = slack.users["bob"]
    slack.user_says("general", "alice", f"ask <@{bob}> about <https://example.com|the site> &amp; more")
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert input_texts(seen) == ["[Alice] ask @Bob Builder about the site (https://example.com) & more"]


def test_reset_applies_exactly_between_the_messages_around_it(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess) -> None:
    model_api.model.ttft = 1.0  # the first turn is still running when the rest arrives
    slack.user_says("general", "alice", "one")
    eventually(lambda: turns(model_api) or model_api.requests("/v1/responses"), message="first turn")
    slack.user_says("general", "alice", "two")
    slack.slash_command("general", "alice", "/assistant", "reset")
    slack.user_says("general", "alice", "three")
    eventually(lambda: len(turns(model_api)) == 3, timeout=20, message="three turns")
    wait_replies(slack, "general", 4, timeout=20)
    one, two, three = turns(model_api)
    assert [input_texts(s) for s in (one, two, three)] == [["[Alice] one"], ["[Alice] two"], ["[Alice] three"]]
    assert one.conversation_id == two.conversation_id != three.conversation_id


def test_status_and_help(slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess) -> None:
    status = slack.slash_command("general", "alice", "/assistant", "status")
    text = eventually(lambda: status.responses(), message="the status answer")[0]["text"]
    assert "responses" in text and MODEL in text and "none yet" in text and "0 messages waiting" in text
    slack.user_says("general", "alice", "hi")
    wait_replies(slack, "general")
    status = slack.slash_command("general", "alice", "/assistant", "status")
    text = eventually(lambda: status.responses(), message="the status answer")[0]["text"]
    assert turns(model_api)[-1].conversation_id in text
    for words in ("", "help", "bogus"):
        handle = slack.slash_command("general", "alice", "/assistant", words)
        answer = eventually(lambda h=handle: h.responses(), message="the help answer")[0]["text"]
        assert "/assistant reset" in answer and "/assistant status" in answer
    assert replies(slack, "general") == [replies(slack, "general")[0]]  # commands answered privately


def test_duplicate_delivery_processed_once(slack: SlackEmulator, model_api: OpenAIEmulator,
                                           bridge: BridgeProcess) -> None:
    # A mention arrives twice (message + app_mention); Slack also retries an event now and then.
    ts = slack.user_says("general", "alice", f"<@{slack.bot_user_id}> are you there?")
    wait_replies(slack, "general")
    event = next(e for e in slack.events("message") if e.get("ts") == ts)
    slack.deliver_event(dict(event))
    settle(1.0)
    assert len(turns(model_api)) == 1
    assert len(replies(slack, "general")) == 1
    assert {e.type for e in slack.envelopes()} >= {"events_api"}
    assert all(e.acked_at is not None for e in slack.envelopes())


def test_bot_edit_join_and_own_events_are_acked_and_ignored(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess) -> None:
    slack.user_says("general", "alice", "first")
    wait_replies(slack, "general")  # the bridge's own post and edit come back as events too
    ts = next(e["ts"] for e in slack.events("message") if e.get("text") == "first")
    slack.edit_message("general", ts, "first (edited)")
    slack.delete_message("general", ts)
    dave = slack.add_user(name="dave", display_name="Dave")
    slack.join_channel("general", dave)
    slack.deliver_event({"type": "message", "subtype": "bot_message", "bot_id": "B0OTHER", "text": "beep",
                         "channel": slack.channels["general"], "ts": "1900000000.000100"})
    slack.deliver_event({"type": "message", "subtype": "channel_topic", "user": dave, "topic": "t",
                         "text": "set the topic", "channel": slack.channels["general"], "ts": "1900000000.000200"})
    slack.deliver_event({"type": "reaction_added", "user": dave, "reaction": "eyes",
                         "item": {"type": "message", "channel": slack.channels["general"], "ts": ts}})
    settle(1.0)
    eventually(lambda: all(e.acked_at is not None for e in slack.envelopes()), message="every envelope acked")
    assert len(turns(model_api)) == 1
    assert all(e.retry_attempt == 0 for e in slack.envelopes()), "an envelope was re-delivered"
    own = [e for e in slack.events("message") if e.get("bot_id") == slack.bot_id]
    assert own, "the emulator echoes the bot's own posts"


def test_channels_are_known_before_their_first_message(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                       bridge: BridgeProcess) -> None:
    """Every channel the bot is in is listed at start, one it is invited to is looked up as it joins, a
    rename comes as an event: no first message waits for conversations.info."""
    eventually(lambda: "channels are known" in bridge.log, message="the bot's channels listed at start")
    slack.user_says("general", "alice", "hello")
    wait_replies(slack, "general")
    room = slack.add_channel("new-room", members=[slack.users["alice"]], bot_is_member=False)
    slack.join_channel(room, slack.bot_user_id)
    eventually(lambda: slack.calls("conversations.info"), message="the channel looked up as the bot joins")
    slack.user_says(room, "alice", "hi there")
    wait_replies(slack, room)
    slack.rename_channel(room, "renamed-room", by=slack.users["alice"])
    eventually(lambda: all(e.acked_at is not None for e in slack.envelopes()), message="the rename acked")
    slack.user_says(room, "alice", "and now?")
    wait_replies(slack, room, 2)
    first, joined, renamed = turns(model_api)
    assert "#general" in turn_facts(first) and "#new-room" in turn_facts(joined)
    assert "#renamed-room" in turn_facts(renamed) and "#new-room" not in turn_facts(renamed)
    assert [call.args.get("channel") for call in slack.calls("conversations.info")] == [room]
    assert len(turns(model_api)) == 3  # (the bot's own join and the rename message are no turns)


def test_long_reply_with_code_block_delivered_whole(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                    bridge: BridgeProcess) -> None:
    code = "\n".join(f"print('line {i}')" for i in range(1500))
    prose = "An explanation follows. " * 250
    answer = f"Here you go:\n\n```python\n{code}\n```\n\n{prose}".strip()
    assert len(answer) > 30_000
    model_api.model.enqueue(answer)
    slack.user_says("general", "alice", "write me a long script")
    texts = eventually(lambda: (r := replies(slack, "general")) and sum(map(len, r)) >= len(answer) and r,
                       timeout=20, message="the whole reply")
    assert len(texts) >= 3
    assert all(len(t) <= 12_000 for t in texts)
    rebuilt = texts[0]
    for previous, text in zip(texts, texts[1:], strict=False):
        assert text.count("```") % 2 == 0, "a message leaves a code block open"
        if previous.endswith("```") and text.startswith("```python\n"):  # a cut inside the code block
            rebuilt = rebuilt.removesuffix("```")
            text = text.removeprefix("```python\n")
        rebuilt += text
    assert rebuilt.split() == answer.split()  # the whole answer, in order (whitespace at cuts aside)


def test_working_indicator_shows_quickly(slack: SlackEmulator, model_api: OpenAIEmulator,
                                         bridge: BridgeProcess) -> None:
    model_api.model.ttft = 3.0
    slack.user_says("general", "alice", "think hard")
    eventually(lambda: any(m["text"] == WORKING for m in bot_messages(slack, "general")), timeout=1.5,
               message="the working indicator within a second or so")
    assert not replies(slack, "general")
    (reply,) = wait_replies(slack, "general", timeout=10)
    assert len(bot_messages(slack, "general")) == 1  # the indicator became the reply


def test_thread_message_answered_in_thread(slack: SlackEmulator, model_api: OpenAIEmulator,
                                           bridge: BridgeProcess) -> None:
    parent = slack.user_says("general", "alice", "top level")
    wait_replies(slack, "general")
    slack.user_says("general", "bob", "in the thread", thread_ts=parent)
    wait_replies(slack, "general", 1, thread_ts=parent)
    thread_replies = [m for m in bot_messages(slack, "general", parent) if m.get("thread_ts") == parent]
    assert len(thread_replies) == 1
    assert len({s.conversation_id for s in turns(model_api)}) == 1  # still the channel's conversation


def test_files_are_mentioned_to_the_model(slack: SlackEmulator, model_api: OpenAIEmulator,
                                          bridge: BridgeProcess) -> None:
    slack.user_says("general", "alice", "see attached",
                    files=[{"name": "report.pdf", "mimetype": "application/pdf", "size": 2048}])
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert input_texts(seen) == ["[Alice] see attached\n(attached files: report.pdf (application/pdf, 2.0 KB))"]


def test_allowlist_ignores_other_channels(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory) -> None:
    slack.add_channel("random", members=[slack.users["alice"]])
    bridge_factory(env={"BRIDGE_CHANNELS": slack.channels["general"]})
    slack.user_says("random", "alice", "not served here")
    slack.user_says("general", "alice", "served here")
    wait_replies(slack, "general")
    settle(0.5)
    assert replies(slack, "random") == []
    assert [input_texts(s) for s in turns(model_api)] == [["[Alice] served here"]]


def test_a_channels_first_message_takes_a_conversation_made_ahead(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                                  bridge: BridgeProcess) -> None:
    def created() -> list[float]:
        return [r.time_received for r in model_api.requests("/v1/conversations")
                if r.method == "POST" and r.path == "/v1/conversations"]
    eventually(lambda: len(created()) == 3, message="three spare conversations made at start")
    said = time.time()
    slack.user_says("general", "alice", "hello")
    wait_replies(slack, "general")
    (turn,) = turns(model_api)
    asked = model_api.requests("/v1/responses")[0].time_received
    assert not [at for at in created() if said <= at <= asked]  # its turn waited for no creation
    assert turn.conversation_id in model_api.conversations
    eventually(lambda: len(created()) == 4, message="the pool topped up after the turn")

    def labelled() -> bool:
        return any(r.path == f"/v1/conversations/{turn.conversation_id}" and r.method == "POST"
                   and r.json == {"metadata": {"slack_channel": slack.channels["general"]}}
                   for r in model_api.requests("/v1/conversations/"))
    eventually(labelled, message="the conversation labelled with its channel")
