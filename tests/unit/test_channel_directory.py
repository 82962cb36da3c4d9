"""A channel's facts are known before its first message where Slack lets the bridge know them: every
channel the bot is in is listed at start, a channel it joins is looked up as it joins, a rename comes as an
event, a direct message needs no lookup; facts past their hour are given while they are asked again.
Against the Slack emulator, through the real slack_sdk client."""

from __future__ import annotations

import asyncio

from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.channels import PAGE_SIZE, ChannelDirectory, ChannelInfo
from tests.emulators.slack import SlackEmulator


def directory(slack: SlackEmulator, **options: float) -> ChannelDirectory:
    return ChannelDirectory(AsyncWebClient(token=slack.bot_token, base_url=slack.base_url), **options)


def looked_up(slack: SlackEmulator) -> list[str]:
    return [call.args.get("channel") for call in slack.calls("conversations.info")]


async def settled(channels: ChannelDirectory, channel: str, name: str) -> ChannelInfo:
    for _ in range(300):
        info = channels.known(channel)
        if info is not None and info.name == name:
            return info
        await asyncio.sleep(0.01)
    raise AssertionError(f"{channel} never known as {name!r}: {channels.known(channel)}")


async def test_every_channel_the_bot_is_in_is_learned_at_start_a_page_at_a_time(slack: SlackEmulator) -> None:
    alice = slack.users["alice"]
    ids = [slack.add_channel(f"room-{i}", members=[alice]) for i in range(PAGE_SIZE + 5)]
    secret = slack.add_channel("secret", is_private=True, members=[alice])
    elsewhere = slack.add_channel("elsewhere", members=[alice], bot_is_member=False)
    channels = directory(slack)
    assert await channels.learn() == len(ids) + 2  # (#general too)
    assert [channels.known(c) for c in ids[:2]] == [ChannelInfo(ids[0], "room-0", False),
                                                     ChannelInfo(ids[1], "room-1", False)]
    assert channels.known(secret) == ChannelInfo(secret, "secret", False)
    assert channels.known(elsewhere) is None  # (not the bot's: looked up if a message ever comes from it)
    assert len(slack.calls("users.conversations")) == 2 and looked_up(slack) == []
    assert await channels.info(ids[-1]) == ChannelInfo(ids[-1], f"room-{len(ids) - 1}", False)
    assert looked_up(slack) == []


async def test_a_failed_listing_leaves_channels_to_be_looked_up_as_their_messages_come(
        slack: SlackEmulator) -> None:
    slack.fail_next("users.conversations", "internal_error", status=500, times=5)
    channels = directory(slack)
    assert await channels.learn() == 0
    general = slack.channels["general"]
    assert (await channels.info(general)).name == "general" and looked_up(slack) == [general]


async def test_a_channel_the_bot_joins_is_looked_up_as_it_joins(slack: SlackEmulator) -> None:
    channels = directory(slack)
    room = slack.add_channel("new-room", members=[slack.users["alice"]], bot_is_member=False)
    channels.joined(room)
    await settled(channels, room, "new-room")
    assert channels.look_up_ahead(room) is False  # (its first message asks nothing)
    assert (await channels.info(room)).name == "new-room" and looked_up(slack) == [room]


async def test_a_rename_is_taken_from_its_event_without_a_lookup(slack: SlackEmulator) -> None:
    channels = directory(slack)
    await channels.learn()
    general = slack.channels["general"]
    channels.renamed({"id": general, "name": "town-square", "created": 1700000000})
    assert channels.known(general) == ChannelInfo(general, "town-square", False)
    channels.renamed({"name": "no id"})  # (a malformed event changes nothing)
    elsewhere = slack.add_channel("elsewhere", members=[slack.users["alice"]], bot_is_member=False)
    channels.renamed({"id": elsewhere, "name": "still-elsewhere", "created": 1700000000})
    assert channels.known(elsewhere) is None  # (every app hears of a public rename: not the bot's, no news)
    assert looked_up(slack) == []


async def test_a_listing_replaces_what_a_failed_lookup_left(slack: SlackEmulator) -> None:
    channels = directory(slack)
    general = slack.channels["general"]
    slack.fail_next("conversations.info", "internal_error", status=500)
    assert (await channels.info(general)).name is None
    await channels.learn()
    assert channels.known(general) == ChannelInfo(general, "general", False)


async def test_learning_in_the_background_stops_at_close(slack: SlackEmulator) -> None:
    channels = directory(slack)
    channels.start_learning()
    await channels.close()  # (cancelled or done: either way nothing is left running)
    channels.start_learning()
    for _ in range(300):
        if channels.known(slack.channels["general"]) is not None:
            break
        await asyncio.sleep(0.01)
    assert channels.known(slack.channels["general"]) == ChannelInfo(slack.channels["general"], "general", False)
    await channels.close()


async def test_a_direct_message_needs_no_lookup(slack: SlackEmulator) -> None:
    channels = directory(slack)
    assert channels.look_up_ahead("D0123456") is False
    assert await channels.info("D0123456") == ChannelInfo("D0123456", None, True)
    assert looked_up(slack) == []


async def test_facts_past_their_hour_are_given_while_they_are_asked_again(slack: SlackEmulator) -> None:
    channels = directory(slack, ttl=0.05)
    general = slack.channels["general"]
    await channels.learn()
    slack.rename_channel("general", "town-square", by=slack.users["alice"])  # (an event this one never saw)
    await asyncio.sleep(0.1)
    assert channels.known(general) == ChannelInfo(general, "general", False)  # no wait: the old facts…
    await settled(channels, general, "town-square")  # …while they are asked again
    assert looked_up(slack) == [general]


async def test_a_failed_refresh_keeps_the_facts_from_before(slack: SlackEmulator) -> None:
    channels = directory(slack, ttl=0.05)
    general = slack.channels["general"]
    await channels.learn()
    await asyncio.sleep(0.1)
    slack.fail_next("conversations.info", "internal_error", status=500, times=5)
    assert await channels.info(general) == ChannelInfo(general, "general", False)
    for _ in range(300):
        if slack.calls("conversations.info"):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert channels.known(general) == ChannelInfo(general, "general", False)
    await asyncio.sleep(0.05)
    assert channels.known(general) is not None and len(slack.calls("conversations.info")) == 1  # (a minute's rest)


async def test_a_failed_first_lookup_gives_facts_without_a_name_for_a_while(slack: SlackEmulator) -> None:
    channels = directory(slack, ttl=0.05)
    general = slack.channels["general"]
    slack.fail_next("conversations.info", "channel_not_found")
    assert await channels.info(general) == ChannelInfo(general, None, False)
    assert channels.known(general) is not None  # (for a minute: Slack is not asked at every message)
