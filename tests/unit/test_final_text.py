"""A finished answer never queues behind other replies' progress: the final text of a reply goes out
at once, whatever the workspace's shared edit and stream budgets have left.

Real `SlackWriter`, `UpdatingReply` and `StreamingReply` against the Slack emulator, with budgets so
small that a write waiting for them would wait for hours: a final that queued behind them would never
arrive (each test would hit its timeout), so a test passing says it did not wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.pacing import ChannelPacers, Pacer
from bot.outbound.posted import PostTag
from bot.outbound.streaming_reply import StreamingReply
from bot.outbound.updating_reply import UpdatingReply
from bot.outbound.writer import SlackWriter
from bot.store import Store
from tests.emulators.slack import SlackEmulator

HOURS = 1 / 60  # a budget of one call an hour, per minute
TIMEOUT = 20.0  # seconds: far more than a final needs, far less than the budgets would take


def starved_writer(slack: SlackEmulator, *, updates: int = 1, starts: int = 5, stops: int = 5,
                   appends: int = 1, deletes: int | None = None) -> SlackWriter:
    """A writer whose workspace-wide budgets allow a few calls at once, then one an hour (deletes: 40 a
    minute unless told)."""
    delete_budget = Pacer(per_minute=40, burst=10) if deletes is None else Pacer(per_minute=HOURS, burst=deletes)
    return SlackWriter(client=AsyncWebClient(token=slack.bot_token, base_url=slack.base_url),
                       updates=Pacer(per_minute=HOURS, burst=updates), deletes=delete_budget,
                       appends=Pacer(per_minute=HOURS, burst=appends), starts=Pacer(per_minute=HOURS, burst=starts),
                       stops=Pacer(per_minute=HOURS, burst=stops), posts=ChannelPacers(per_minute=55, burst=3),
                       team_id=slack.team_id)


def bot_texts(slack: SlackEmulator, channel: str) -> list[str]:
    return [m["text"] for m in slack.messages(channel, "all") if m.get("bot_id") == slack.bot_id]


class Journal:
    """What the turn journal would hold: the reply's messages, in order."""

    def __init__(self, messages: Sequence[str] = ()) -> None:
        self.messages = list(messages)

    async def posted(self, ts: str) -> None:
        self.messages.append(ts)

    async def replaced(self, old: Sequence[str], new: Sequence[str]) -> None:
        at = next(i for i, ts in enumerate(self.messages) if ts in old)
        self.messages[at:at + len(old)] = list(new)


async def grow(reply: UpdatingReply | StreamingReply, words: int) -> None:
    for index in range(words):
        reply.feed(f"word{index} ")
        await asyncio.sleep(0.01)


def growing_replies(slack: SlackEmulator, writer: SlackWriter, count: int) -> tuple[list[str], list[Journal],
                                                                                   list[UpdatingReply]]:
    channels = [slack.add_channel(f"team-{i}", members=[slack.users["alice"]]) for i in range(count)]
    journals = [Journal() for _ in channels]
    replies = [UpdatingReply(writer, channel=c, thread_ts=None, on_post=j.posted, on_replace=j.replaced,
                             tag=PostTag(turn, "conv")) for turn, (c, j) in enumerate(zip(channels, journals,
                                                                                          strict=True))]
    for reply in replies:
        reply.start()
    return channels, journals, replies


async def test_finals_are_not_queued_behind_progress_edits(slack: SlackEmulator) -> None:
    writer = starved_writer(slack, updates=1)  # one edit, then one an hour: progress spends it at once
    channels, journals, replies = growing_replies(slack, writer, 3)
    await asyncio.gather(*(grow(reply, 150) for reply in replies))  # 1.5 s: first texts, a progress edit
    finals = [f"the whole answer for {c}" for c in channels]
    async with asyncio.timeout(TIMEOUT):
        shown = await asyncio.gather(*(r.finish(text) for r, text in zip(replies, finals, strict=True)))
        assert await writer.settle(TIMEOUT) == 0  # the replaced partial messages, deleted meanwhile
    for channel, final, timestamps, journal in zip(channels, finals, shown, journals, strict=True):
        assert bot_texts(slack, channel) == [final]  # the final text, once: the partial message is gone
        assert journal.messages == timestamps  # the journal holds the message that stayed, not the deleted one
    edits = [c for c in slack.calls("chat.update") if c.ok]
    assert len(edits) <= 1  # the budget's one edit, no more
    edited_finals = sum(c.args["markdown_text"] in finals for c in edits)
    deleted = [c.args["ts"] for c in slack.calls("chat.delete") if c.ok]
    assert len(deleted) == 3 - edited_finals and not set(deleted) & {ts for t in shown for ts in t}


async def test_a_final_waits_for_no_delete_of_the_message_it_replaces(slack: SlackEmulator) -> None:
    writer = starved_writer(slack, updates=1, deletes=1)  # one delete, then one an hour
    channels, _, replies = growing_replies(slack, writer, 3)
    await asyncio.gather(*(grow(reply, 150) for reply in replies))
    async with asyncio.timeout(TIMEOUT):
        for reply, channel in zip(replies, channels, strict=True):
            await reply.finish(f"the whole answer for {channel}")
    for channel in channels:  # every final shows (two beside the partial message still to delete)
        assert f"the whole answer for {channel}" in bot_texts(slack, channel)
    assert await writer.settle(0.1) >= 1  # deletes still waiting for their budget held no reply up


async def test_a_final_edit_that_can_go_out_at_once_is_an_edit(slack: SlackEmulator) -> None:
    writer = starved_writer(slack, updates=10)
    journal = Journal()
    reply = UpdatingReply(writer, channel=slack.channels["general"], thread_ts=None, on_post=journal.posted,
                          on_replace=journal.replaced)
    reply.start()
    await grow(reply, 100)
    async with asyncio.timeout(TIMEOUT):
        (ts,) = await reply.finish("all of it")
    assert bot_texts(slack, "general") == ["all of it"] and journal.messages == [ts]
    assert slack.calls("chat.delete") == []  # edited in place: nothing posted anew


async def test_a_replacement_the_journal_never_heard_of_is_adopted_and_the_stale_message_deleted(
        slack: SlackEmulator) -> None:
    """A crash between posting a final anew and journalling it: the journal still names the partial
    message. The next attempt finds both (same turn, same part), keeps the newer and deletes the other."""
    channel = slack.channels["general"]
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
    tag = PostTag(7, "conv")
    partial = (await client.chat_postMessage(channel=channel, markdown_text="half an ans",
                                             metadata=tag.metadata(0)))["ts"]
    final = (await client.chat_postMessage(channel=channel, markdown_text="half an answer, whole",
                                           metadata=tag.metadata(0)))["ts"]
    journal = Journal([partial])
    retry = UpdatingReply(SlackWriter.create(client), channel=channel, thread_ts=None, messages=[partial],
                          on_post=journal.posted, on_replace=journal.replaced,
                          tag=PostTag(7, "conv", look_first=True))
    async with asyncio.timeout(TIMEOUT):
        assert await retry.finish("half an answer, whole") == [final]
    assert bot_texts(slack, "general") == ["half an answer, whole"] and journal.messages == [final]
    assert [c.args["ts"] for c in slack.calls("chat.delete") if c.ok] == [partial]


async def test_a_stream_starts_only_when_its_stop_can_go_out_and_its_end_waits_for_no_append(
        slack: SlackEmulator) -> None:
    writer = starved_writer(slack, stops=1, appends=1)  # room to close one stream; one append, then none
    channel = slack.channels["general"]
    threads = [slack.user_says("general", "alice", f"question {i}") for i in range(2)]
    alice = slack.users["alice"]
    replies = [StreamingReply(writer, channel=channel, thread_ts=ts, recipient=alice) for ts in threads]
    for reply in replies:
        reply.start()
    await asyncio.gather(*(grow(reply, 150) for reply in replies))
    async with asyncio.timeout(TIMEOUT):
        for reply, ts in zip(replies, threads, strict=True):
            await reply.finish("".join(f"word{i} " for i in range(150)) + f"end of {ts}")
        await writer.settle(TIMEOUT)
    assert len([c for c in slack.calls("chat.startStream") if c.ok]) == 1  # the second had no stop to keep
    (stop,) = [c for c in slack.calls("chat.stopStream") if c.ok]
    assert stop.args.get("markdown_text", "").endswith(f"end of {threads[0]}")  # the rest went with the stop
    for ts in threads:
        (message,) = [m for m in slack.messages(channel, ts) if m.get("bot_id") == slack.bot_id]
        assert message["text"].endswith(f"end of {ts}") and not message.get("streaming")


async def test_replaced_messages_still_to_delete_are_deleted_by_the_next_process(
        slack: SlackEmulator, tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bridge.sqlite3")
    try:
        writer = starved_writer(slack, updates=1, deletes=1)  # the process stops before the deletes go out
        writer.cleanup_log = store.stale_messages
        channels, _, replies = growing_replies(slack, writer, 3)
        await asyncio.gather(*(grow(reply, 150) for reply in replies))
        async with asyncio.timeout(TIMEOUT):
            for reply, channel in zip(replies, channels, strict=True):
                await reply.finish(f"the whole answer for {channel}")
        await writer.settle(0.1)
        left = await store.stale_messages.pending()
        assert left and all(len(bot_texts(slack, channel)) == 2 for channel, _ in left)
        for task in list(writer._cleanup):
            task.cancel()  # (the process is gone)
        again = starved_writer(slack, deletes=10)  # the next start
        again.cleanup_log = store.stale_messages
        assert await again.resume_cleanup() == len(left)
        assert await again.settle(TIMEOUT) == 0
        assert await store.stale_messages.pending() == []
        for channel in channels:
            assert bot_texts(slack, channel) == [f"the whole answer for {channel}"]
    finally:
        await store.close()
