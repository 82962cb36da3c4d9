"""Live replies end to end: the answer grows in Slack while the model writes, within Slack's limits."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.harness import BridgeProcess, eventually
from tests.e2e.model_view import in_use
from tests.e2e.replies import WORKING, bot_messages, replies, wait_replies, wait_text
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

CUT_OFF = "the answer was cut off"


def slow_model(model_api: OpenAIEmulator, *, length: int, seconds: float) -> None:
    """The model writes `length` characters over about `seconds`."""
    model = model_api.model
    model.reply_length = length
    model.chunk_size = 20
    model.chunk_delay = seconds / (length / model.chunk_size)


def model_done_at(model_api: OpenAIEmulator) -> list[float]:
    return [r.time_done for r in model_api.requests("/v1/responses") if r.time_done]


def test_channel_reply_grows_then_ends_with_the_final_text(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                           bridge: BridgeProcess) -> None:
    slow_model(model_api, length=1200, seconds=4.0)
    slack.user_says("general", "alice", "tell me a story")
    (seen,) = model_api.wait_for(lambda: model_api.model.seen, message="the model request")
    message = wait_text(slack, "general", seen.reply.text.strip())
    (done,) = model_done_at(model_api)
    assert len(bot_messages(slack, "general")) == 1
    updates = [c for c in slack.calls("chat.update") if c.ok]
    # The first text was posted, then the message changed at least twice before the model finished.
    shown_before_done = [c for c in updates if c.time < done]
    assert len(shown_before_done) >= 2, [c.time - done for c in updates]
    texts = [c.args["markdown_text"] for c in shown_before_done]
    assert all(len(a) < len(b) for a, b in zip(texts, texts[1:], strict=False)), "the text only grows"
    assert message["text"] == seen.reply.text.strip()  # ends with exactly the model's final text


def test_six_channels_stream_at_once_within_real_limits(slack_factory: Callable[..., SlackEmulator],
                                                        model_api: OpenAIEmulator, bridge_factory) -> None:
    slack = slack_factory(rate_limits="real")
    users = [slack.users[name] for name in ("alice", "bob", "carol")]
    channels = [slack.add_channel(f"team-{i}", members=users) for i in range(6)]
    slow_model(model_api, length=2500, seconds=6.0)
    bridge_factory(slack=slack)
    for channel in channels:
        slack.user_says(channel, "alice", f"a long answer for {channel}, please")
    model_api.wait_for(lambda: len(model_api.model.seen) == 6, message="six model requests")
    for seen in model_api.model.seen:
        wait_text(slack, next(c for c in channels if c in str(seen.input)), seen.reply.text.strip(), timeout=60)
    assert [c for c in slack.calls() if c.status == 429] == [], "the bridge went over a Slack rate limit"
    finals = {s.conversation_id: s.reply.text.strip() for s in model_api.model.seen}
    assert sorted(finals.values()) == sorted(replies(slack, c)[0] for c in channels)
    updates = [c for c in slack.calls("chat.update") if c.ok]
    assert len(updates) <= 50 + 12  # at most a Tier-3 window's worth (and the final writes)


def test_injected_429_on_update_is_honoured_and_the_final_text_does_not_wait_for_it(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess) -> None:
    slow_model(model_api, length=800, seconds=2.0)
    slack.fail_next("chat.update", error="ratelimited", status=429, retry_after=10, times=3)
    slack.user_says("general", "alice", "keep going")
    (seen,) = model_api.wait_for(lambda: model_api.model.seen, message="the model request")
    text = seen.reply.text.strip()
    wait_text(slack, "general", text, timeout=30)
    limited = [c for c in slack.calls("chat.update") if c.status == 429]
    assert limited
    early = [c for c in slack.calls("chat.update") if limited[0].time < c.time < limited[0].time + 9.9]
    assert early == [], "Retry-After was not honoured"
    # The final text did not wait out the pause: it was posted anew and the partial message deleted.
    (final,) = [c for c in slack.calls("chat.postMessage") if c.ok and c.args.get("markdown_text") == text]
    assert final.time < limited[0].time + 10
    eventually(lambda: len(bot_messages(slack, "general")) == 1, message="the partial message deleted")
    assert [c.args["ts"] for c in slack.calls("chat.delete") if c.ok] == [limited[0].args["ts"]]


def test_thread_mode_streams_natively(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory) -> None:
    bridge_factory(env={"BRIDGE_REPLY_IN": "thread"})
    slow_model(model_api, length=900, seconds=2.0)
    ts = slack.user_says("general", "alice", "stream it")
    (seen,) = model_api.wait_for(lambda: model_api.model.seen, message="the model request")
    wait_text(slack, "general", seen.reply.text.strip(), thread_ts=ts)
    (message,) = bot_messages(slack, "general", ts)
    assert message["thread_ts"] == ts and not message["streaming"]
    assert len(slack.calls("chat.startStream")) == 1
    assert len([c for c in slack.calls("chat.appendStream") if c.ok]) >= 2
    assert len(slack.calls("chat.stopStream")) == 1
    assert not slack.calls("chat.update")
    start = slack.calls("chat.startStream")[0].args
    assert start["recipient_user_id"] == slack.users["alice"] and start["thread_ts"] == ts


def test_thread_mode_with_six_at_once_never_waits_for_a_stream(slack_factory: Callable[..., SlackEmulator],
                                                                model_api: OpenAIEmulator, bridge_factory) -> None:
    slack = slack_factory(rate_limits="real")
    users = [slack.users[name] for name in ("alice", "bob", "carol")]
    channels = [slack.add_channel(f"thread-{i}", members=users) for i in range(6)]
    bridge_factory(slack=slack, env={"BRIDGE_REPLY_IN": "thread"})
    slow_model(model_api, length=600, seconds=2.0)
    for round_number in range(2):
        asked = {c: slack.user_says(c, "alice", f"round {round_number} in {c}") for c in channels}
        eventually(lambda: len(model_api.model.seen) == 6 * (round_number + 1), timeout=20,  # noqa: B023
                   message="six model requests")
        for seen in model_api.model.seen[-6:]:
            channel = next(c for c in channels if c in str(seen.input))
            wait_text(slack, channel, seen.reply.text.strip(), timeout=40, thread_ts=asked[channel])
    assert [c for c in slack.calls() if c.status == 429] == [], "the bridge went over a Slack rate limit"
    streams = len(slack.calls("chat.startStream"))
    assert 0 < streams < 12  # Tier 2 allows only a few new streams at once: the rest were ordinary messages
    assert [c for c in slack.calls("chat.postMessage") if c.args.get("thread_ts")]


def test_thread_mode_falls_back_when_the_stream_expires(slack_factory: Callable[..., SlackEmulator],
                                                        model_api: OpenAIEmulator, bridge_factory) -> None:
    slack = slack_factory(stream_expiry=1.5)
    bridge_factory(slack=slack, env={"BRIDGE_REPLY_IN": "thread"})
    slow_model(model_api, length=1500, seconds=4.0)
    ts = slack.user_says("general", "alice", "a slow one")
    (seen,) = model_api.wait_for(lambda: model_api.model.seen, message="the model request")
    wait_text(slack, "general", seen.reply.text.strip(), timeout=30, thread_ts=ts)
    assert any(c.error == "message_not_in_streaming_state" for c in slack.calls("chat.appendStream"))
    assert [c for c in slack.calls("chat.update") if c.ok], "no chat.update fallback"
    assert len(bot_messages(slack, "general", ts)) == 1  # completed on the same message


def test_forty_thousand_characters_arrive_whole_across_messages(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                                bridge: BridgeProcess) -> None:
    paragraph = "A sentence that goes on for a while, to fill the reply. " * 10 + "\n\n"
    code = "```sql\n" + "SELECT * FROM big_table WHERE id = 1;\n" * 80 + "```\n\n"
    answer = ((paragraph * 8 + code) * 8)[:40_000].rstrip()
    model_api.model.enqueue(answer)
    model_api.model.chunk_size = 400
    model_api.model.chunk_delay = 0.02
    slack.user_says("general", "alice", "everything, please")
    texts = eventually(lambda: (r := replies(slack, "general")) and sum(map(len, r)) >= len(answer) and r,
                       timeout=40, message="the whole 40,000-character reply")
    texts = wait_replies(slack, "general", len(texts), timeout=10)
    assert len(texts) >= 4
    assert all(len(t) <= 12_000 for t in texts)
    rebuilt = texts[0]
    for previous, text in zip(texts, texts[1:], strict=False):
        assert text.count("```") % 2 == 0, "a message leaves a code block open"
        if previous.endswith("```") and text.startswith("```sql\n"):  # cut inside a code block
            rebuilt = rebuilt.removesuffix("```")
            text = text.removeprefix("```sql\n")
        rebuilt += text
    assert rebuilt.split() == answer.split()


def wait_notice(slack: SlackEmulator, words: str) -> str:
    return eventually(lambda: next((t for t in replies(slack, "general") if words in t), None), timeout=20,
                      message=f"a message saying {words!r}")


def test_cut_stream_is_marked_then_retried_into_the_same_message(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess) -> None:
    model_api.model.reply_length = 400
    model_api.model.chunk_delay = 0.05
    model_api.cut_stream_next(after_chars=200)
    slack.user_says("general", "alice", "first question")
    notice = wait_notice(slack, CUT_OFF)
    assert "kept" in notice and notice.startswith("Heard: «[Alice] first question»")  # the partial answer
    # The bridge tries again by itself; the answer replaces the notice.
    model_api.wait_for(lambda: len(model_api.model.seen) == 2, timeout=20, message="the retry")
    wait_text(slack, "general", model_api.model.seen[1].reply.text.strip())
    assert len(bot_messages(slack, "general")) == 1
    # Nothing of the cut answer entered the conversation, and the message entered it exactly once.
    (conversation_id,) = in_use(model_api)
    conversation = model_api.conversations[conversation_id]
    users = [i for i in conversation if i.get("role") == "user"]
    assert [part["text"] for i in users for part in i["content"]] == ["[Alice] first question"]


def test_failed_stream_is_marked_then_retried(slack: SlackEmulator, model_api: OpenAIEmulator,
                                              bridge: BridgeProcess) -> None:
    model_api.model.reply_length = 300
    model_api.model.chunk_delay = 0.05
    model_api.fail_stream_next(after_chars=100)
    slack.user_says("general", "alice", "hello")
    notice = wait_notice(slack, CUT_OFF)
    assert "couldn't answer" in notice and WORKING not in notice
    model_api.wait_for(lambda: len(model_api.model.seen) == 2, timeout=20, message="the retry")
    wait_text(slack, "general", model_api.model.seen[1].reply.text.strip())


def test_the_answer_goes_to_slack_once_the_model_says_its_text_is_final(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess) -> None:
    slow_model(model_api, length=800, seconds=2.0)
    model_api.model.finish_delay = 3.0  # the service takes its time over the rest of the stream
    slack.fail_next("chat.update", error="ratelimited", status=429, retry_after=30)  # no progress edit shows it
    slack.user_says("general", "alice", "a quick one")
    (seen,) = model_api.wait_for(lambda: model_api.model.seen, message="the model request")
    text = seen.reply.text.strip()
    wait_text(slack, "general", text)
    done = model_api.wait_for(lambda: model_done_at(model_api), message="the model's stream to end")[0]
    shown = min(c.time for c in slack.calls() if c.ok and c.args.get("markdown_text") == text)
    assert shown < done - 1.5  # written at response.output_text.done, not once the stream ended
    eventually(lambda: "outcome=answered" in bridge.log, message="the turn journalled as answered")
