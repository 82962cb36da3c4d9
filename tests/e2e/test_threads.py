"""Threads, end to end: what the model reads says where each message was written; follow-ups in a
thread the assistant answered need no mention; a thread from before the bot joined is read once."""

from __future__ import annotations

import pytest

from tests.e2e.harness import eventually, settle
from tests.e2e.model_view import input_texts, turn_facts, turns
from tests.e2e.replies import bot_messages, replies, wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

BACKENDS = pytest.mark.parametrize("backend", ["responses", "chat", "assistants"])
MENTIONS = {"BRIDGE_RESPOND_TO": "mentions"}


def note(author: str, first: str) -> str:
    return f'[in thread on {author}: "{first}"] '


def wait_turns(model_api: OpenAIEmulator, count: int) -> None:
    model_api.wait_for(lambda: len(model_api.model.seen) >= count, message=f"{count} model requests")


def thread_replies(slack: SlackEmulator, channel: str, thread_ts: str) -> list[dict]:
    return [m for m in bot_messages(slack, channel, thread_ts) if m.get("thread_ts") == thread_ts]


@BACKENDS
def test_a_thread_reply_says_which_thread_it_is_in(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                  bridge_factory, backend: str) -> None:
    bridge_factory()
    root = slack.user_says("general", "alice", "can we ship friday?")
    wait_replies(slack, "general")
    slack.user_says("general", "bob", "only if QA signs off", thread_ts=root)
    eventually(lambda: thread_replies(slack, "general", root), message="the answer in the thread")
    first, second = turns(model_api)
    assert input_texts(first) == ["[Alice] can we ship friday?"]  # the top level: no thread note
    assert input_texts(second) == ['[Bob Builder] [in thread on Alice: "can we ship friday?"] only if QA signs off']
    assert "[in thread on" in (second.instructions or "")  # the fixed instructions say how threads are marked
    assert "on Alice" not in (second.instructions or "")  # … but no per-turn fact (that would re-bill the cache)


@BACKENDS
def test_three_threads_at_once_stay_apart(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory,
                                          backend: str) -> None:
    bridge_factory()
    starts = {"alice": "the offsite venue in Lisbon", "bob": "the Q3 budget numbers", "carol": "the new logo"}
    roots = {}
    for user, text in starts.items():
        roots[user] = slack.user_says("general", user, text)
    wait_replies(slack, "general", 1)
    wait_turns(model_api, 1)
    eventually(lambda: len(replies(slack, "general", None)) >= 1, message="the top-level answer")
    names = {"alice": "Alice", "bob": "Bob Builder", "carol": "Carol"}
    said = {}
    for round_ in range(2):  # replies interleaved across the three threads
        for user, other in (("bob", "alice"), ("carol", "bob"), ("alice", "carol")):
            text = f"reply {round_} from {names[other]} in {user}'s thread"
            slack.user_says("general", other, text, thread_ts=roots[user])
            said[text] = note(names[user], starts[user])
    for root in roots.values():
        eventually(lambda r=root: thread_replies(slack, "general", r), timeout=30, message="an answer in each thread")
    eventually(lambda: sum(len(input_texts(s)) for s in turns(model_api)) == 3 + len(said), timeout=30,
               message="every message sent to the model")
    seen_with_note = {}
    for seen in turns(model_api):
        for text in input_texts(seen):
            for words, expected in said.items():
                if text.endswith(words):
                    seen_with_note[words] = text
                    assert expected in text, f"{text!r} should carry {expected!r}"
        threads = {text.split('"')[1] for text in input_texts(seen) if "[in thread on" in text}
        assert len(threads) <= 1, "one request, one thread"
    assert set(seen_with_note) == set(said)
    for root in roots.values():  # each answer landed in its own thread
        assert all(m["thread_ts"] == root for m in thread_replies(slack, "general", root))


def test_a_follow_up_in_an_answered_thread_needs_no_mention(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                            bridge_factory) -> None:
    model_api.model.reply_fn = lambda _request: "Noted."
    bridge = bridge_factory(env=MENTIONS)
    root = slack.user_says("general", "alice", "can we ship friday?")
    eventually(lambda: bridge.log.count("context channel=") == 1, message="the first message as context")
    other = slack.user_says("general", "carol", "lunch anyone?")
    eventually(lambda: bridge.log.count("context channel=") == 2, message="the second message as context")
    slack.user_says("general", "bob", f"<@{slack.bot_user_id}> what do you think?", thread_ts=root)
    wait_replies(slack, "general", 1, thread_ts=root)
    slack.user_says("general", "carol", "and what about monday?", thread_ts=root)  # no mention
    wait_turns(model_api, 2)
    eventually(lambda: len(thread_replies(slack, "general", root)) == 2, message="the follow-up answered")
    assert input_texts(turns(model_api)[1]) == ['[Carol] [in thread on Alice: "can we ship friday?"] and what '
                                                'about monday?']
    # A reply in a thread the assistant never answered in is still only context.
    slack.user_says("general", "bob", "me!", thread_ts=other)
    eventually(lambda: bridge.log.count("context channel=") == 3, message="the reply elsewhere as context")
    # The bridge remembers answered threads across a restart.
    assert bridge.stop() == 0
    bridge_factory(env=MENTIONS)
    slack.user_says("general", "alice", "friday it is then", thread_ts=root)
    wait_turns(model_api, 3)
    eventually(lambda: len(thread_replies(slack, "general", root)) == 3, message="the follow-up after a restart")
    settle(0.5)
    assert thread_replies(slack, "general", other) == [] and len(turns(model_api)) == 3
    assert '[Bob Builder] [in thread on Carol: "lunch anyone?"] me!' in str(turns(model_api)[2].context)


def test_follow_ups_can_be_turned_off(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory) -> None:
    bridge = bridge_factory(env={**MENTIONS, "BRIDGE_THREAD_FOLLOWUPS": "false"})
    root = slack.user_says("general", "alice", "can we ship friday?")
    slack.user_says("general", "bob", f"<@{slack.bot_user_id}> what do you think?", thread_ts=root)
    wait_replies(slack, "general", 1, thread_ts=root)
    slack.user_says("general", "carol", "and what about monday?", thread_ts=root)
    eventually(lambda: bridge.log.count("context channel=") == 2, message="the follow-up taken as context")
    settle(0.5)
    assert len(turns(model_api)) == 1 and len(thread_replies(slack, "general", root)) == 1


def test_a_reply_to_the_assistants_own_message_is_a_follow_up(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                              bridge_factory) -> None:
    model_api.model.reply_fn = lambda _request: "Red, green and blue."
    bridge_factory(env=MENTIONS)
    slack.user_says("general", "alice", f"<@{slack.bot_user_id}> name three colours")
    (answer,) = wait_replies(slack, "general")
    answer_ts = next(m["ts"] for m in bot_messages(slack, "general", None) if m["text"] == answer)
    slack.user_says("general", "bob", "why those?", thread_ts=answer_ts)  # in a thread on the assistant's reply
    wait_turns(model_api, 2)
    eventually(lambda: thread_replies(slack, "general", answer_ts), message="the answer in that thread")
    (text,) = input_texts(turns(model_api)[1])
    assert text == '[Bob Builder] [in thread on your message: "Red, green and blue."] why those?'
    assert slack.calls("conversations.replies") == []  # the reply's text came from the store, not from Slack


@BACKENDS
def test_a_mention_in_a_thread_from_before_the_bot_joined_reads_it_once(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory, backend: str) -> None:
    people = [slack.users[name] for name in ("alice", "bob", "carol")]
    late = slack.add_channel("late", members=people, bot_is_member=False)
    root = slack.user_says(late, "alice", "incident: the checkout page is down")
    slack.user_says(late, "bob", "looking, the database is at 100% CPU", thread_ts=root)
    slack.user_says(late, "alice", "rolled back the deploy", thread_ts=root)
    model_api.model.reply_fn = lambda _request: "Noted."
    bridge_factory()
    slack.join_channel(late, slack.bot_user_id)  # invited after the thread started
    slack.user_says(late, "carol", f"<@{slack.bot_user_id}> summarise this please", thread_ts=root)
    eventually(lambda: thread_replies(slack, late, root), message="the answer in the thread")
    (seen,) = turns(model_api)
    earlier = '[earlier in thread on Alice: "incident: the checkout page is down"] '
    *before, asked = input_texts(seen)
    assert before == [f"[Alice] {earlier}incident: the checkout page is down",
                      f"[Bob Builder] {earlier}looking, the database is at 100% CPU",
                      f"[Alice] {earlier}rolled back the deploy"]
    assert asked.startswith('[Carol] [in thread on Alice: "incident: the checkout page is down"] @')
    assert asked.endswith(" summarise this please")
    assert "Please address the user as Carol." in turn_facts(seen)  # (the earlier speakers are not addressed)
    (read,) = slack.calls("conversations.replies")
    assert read.args["ts"] == root
    slack.user_says(late, "bob", f"<@{slack.bot_user_id}> thanks, anything else?", thread_ts=root)
    wait_turns(model_api, 2)
    eventually(lambda: len(thread_replies(slack, late, root)) == 2, message="the second answer")
    assert len(slack.calls("conversations.replies")) == 1  # read once
    assert [t for t in input_texts(turns(model_api)[1]) if "earlier in thread" in t] == []
    assert str(turns(model_api)[1].context).count("rolled back the deploy") == 1  # in the conversation once


def test_context_after_joining_is_not_read_twice(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                bridge_factory) -> None:
    people = [slack.users[name] for name in ("alice", "bob", "carol")]
    late = slack.add_channel("late", members=people, bot_is_member=False)
    root = slack.user_says(late, "alice", "who owns the billing service?")
    slack.user_says(late, "bob", "I think the payments team", thread_ts=root)
    model_api.model.reply_fn = lambda _request: "Noted."
    bridge = bridge_factory(env=MENTIONS)
    slack.join_channel(late, slack.bot_user_id)
    slack.user_says(late, "carol", "no, it moved to platform", thread_ts=root)  # seen by the bot: context
    eventually(lambda: "context channel=" in bridge.log, message="the reply taken as context")
    slack.user_says(late, "alice", f"<@{slack.bot_user_id}> so who is it?", thread_ts=root)
    eventually(lambda: thread_replies(slack, late, root), message="the answer")
    (seen,) = turns(model_api)
    context = str(seen.context)
    for words in ("who owns the billing service?", "I think the payments team", "no, it moved to platform"):
        assert context.count(words) >= 1, words
    assert context.count("I think the payments team") == 1 and context.count("no, it moved to platform") == 1
    assert len(slack.calls("conversations.replies")) == 1


def test_a_retried_thread_message_is_still_one_message(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                       bridge_factory) -> None:
    bridge_factory(env=MENTIONS)
    root = slack.user_says("general", "alice", "can we ship friday?")
    ts = slack.user_says("general", "bob", f"<@{slack.bot_user_id}> what do you think?", thread_ts=root)
    wait_replies(slack, "general", 1, thread_ts=root)
    event = next(e for e in slack.events("message") if e.get("ts") == ts)
    slack.deliver_event(dict(event))  # Slack delivers it again
    slack.deliver_event({**event, "type": "app_mention"})
    settle(1.5)
    assert len(turns(model_api)) == 1 and len(thread_replies(slack, "general", root)) == 1
    assert sum(text.endswith("what do you think?") for s in turns(model_api) for text in input_texts(s)) == 1


def test_an_app_outside_the_marketplace_reads_what_slack_allows(slack_factory, model_api: OpenAIEmulator,
                                                                 bridge_factory) -> None:
    """Slack gives such apps one conversations.replies a minute, 15 messages each: the first thread gets
    what Slack returns, a second one within the minute is answered at once with a plainer note."""
    slack = slack_factory(distribution="non_marketplace")
    people = [slack.users[name] for name in ("alice", "bob", "carol")]
    late = slack.add_channel("late", members=people, bot_is_member=False)
    long_thread = slack.user_says(late, "alice", "retro notes")
    for i in range(20):
        slack.user_says(late, "bob", f"note {i}", thread_ts=long_thread)
    short_thread = slack.user_says(late, "carol", "who has the projector?")
    model_api.model.reply_fn = lambda _request: "Noted."
    bridge_factory(slack=slack)
    slack.join_channel(late, slack.bot_user_id)
    slack.user_says(late, "carol", f"<@{slack.bot_user_id}> summarise", thread_ts=long_thread)
    eventually(lambda: thread_replies(slack, late, long_thread), message="the first answer")
    *earlier, _asked = input_texts(turns(model_api)[0])
    assert len(earlier) == 15 and earlier[0].endswith("retro notes") and earlier[-1].endswith("note 13")
    slack.user_says(late, "alice", f"<@{slack.bot_user_id}> anyone?", thread_ts=short_thread)
    eventually(lambda: thread_replies(slack, late, short_thread), timeout=10, message="the second answer, not held up")
    (text,) = input_texts(turns(model_api)[1])
    assert text.startswith(f"[Alice] [in thread {short_thread}] @") and text.endswith(" anyone?")
    assert [c.status for c in slack.calls("conversations.replies")] == [200, 429]


def test_a_failed_turn_keeps_the_past_it_read(slack: SlackEmulator, model_api: OpenAIEmulator,
                                              bridge_factory) -> None:
    """The model fails the first attempt: the retry still brings the thread's earlier messages, and
    Slack is not asked again."""
    people = [slack.users[name] for name in ("alice", "bob")]
    late = slack.add_channel("late", members=people, bot_is_member=False)
    root = slack.user_says(late, "alice", "the build is red")
    slack.user_says(late, "bob", "flaky test in payments", thread_ts=root)
    bridge_factory()
    slack.join_channel(late, slack.bot_user_id)
    model_api.fail_next(500)  # the turn fails once (a 5xx on a write is not resent blindly)
    slack.user_says(late, "alice", f"<@{slack.bot_user_id}> which test?", thread_ts=root)
    eventually(lambda: [m for m in thread_replies(slack, late, root) if "Heard" in m["text"]], timeout=30,
               message="the answer after the retry")
    (seen,) = turns(model_api)
    *earlier, _asked = input_texts(seen)
    assert [text.split("] ")[-1] for text in earlier] == ["the build is red", "flaky test in payments"]
    # (the thread read; the retry's look for a reply posted before asks with include_all_metadata)
    reads = [c for c in slack.calls("conversations.replies") if "include_all_metadata" not in c.args]
    assert len(reads) == 1


def test_thread_mode_follow_ups_in_the_thread_it_started(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                         bridge_factory) -> None:
    """BRIDGE_REPLY_IN=thread: a mention at the top level is answered in a thread under it; a reply there
    needs no mention."""
    bridge_factory(env={**MENTIONS, "BRIDGE_REPLY_IN": "thread"})
    asked = slack.user_says("general", "alice", f"<@{slack.bot_user_id}> plan the offsite")
    eventually(lambda: thread_replies(slack, "general", asked), message="the answer in a thread under it")
    slack.user_says("general", "bob", "add a budget please", thread_ts=asked)
    wait_turns(model_api, 2)
    eventually(lambda: len(thread_replies(slack, "general", asked)) == 2, message="the follow-up answered")
    (text,) = input_texts(turns(model_api)[1])
    assert text.startswith('[Bob Builder] [in thread on Alice: "@')
    assert text.endswith('plan the offsite"] add a budget please')
