"""The Slack emulator speaks Slack's protocols well enough for the real slack_sdk and slack_bolt clients.

Each test drives the emulator with the real clients over sockets and checks both what the client
saw and what the emulator recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.emulators.slack import RateLimitPolicy, SlackEmulator

FAST_PING = 0.2  # seconds; lets the SDK notice a dropped socket quickly


def web_client(emu: SlackEmulator, token: str | None = None, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=token or emu.bot_token, base_url=emu.base_url, **kwargs)


async def api_error(coro: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await coro
    return info.value


@dataclass
class SocketSession:
    client: SocketModeClient
    requests: list[SocketModeRequest] = field(default_factory=list)  # envelopes
    messages: list[dict[str, Any]] = field(default_factory=list)  # every frame received (hello, disconnect...)


@asynccontextmanager
async def socket_client(emu: SlackEmulator, *, auto_ack: bool = True) -> AsyncIterator[SocketSession]:
    """A connected slack_sdk SocketModeClient that records (and by default acks) every request."""
    session = SocketSession(SocketModeClient(app_token=emu.app_token, web_client=web_client(emu),
                                             ping_interval=FAST_PING))

    async def on_frame(frame: aiohttp.WSMessage) -> None:
        session.messages.append(json.loads(frame.data))

    async def on_request(c: SocketModeClient, req: SocketModeRequest) -> None:
        session.requests.append(req)
        if auto_ack:
            await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    session.client.on_message_listeners.append(on_frame)
    session.client.socket_mode_request_listeners.append(on_request)
    try:
        await session.client.connect()
        yield session
    finally:
        await session.client.close()


# -- Web API ----------------------------------------------------------------------------------------

async def test_auth_users_and_conversations_info(slack: SlackEmulator) -> None:
    client = web_client(slack)
    auth = await client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == (slack.bot_user_id, slack.bot_id, slack.team_id)
    assert auth["is_enterprise_install"] is False

    bob = (await client.users_info(user=slack.users["bob"]))["user"]
    assert bob["profile"]["display_name"] == "" and bob["profile"]["real_name"] == "Bob Builder"
    assert bob["name"] == "bob" and bob["is_bot"] is False and bob["deleted"] is False and bob["tz"]

    info = (await client.conversations_info(channel=slack.channels["general"]))["channel"]
    assert info["name"] == "general" and info["is_channel"] and info["is_member"] and not info["is_private"]
    members = (await client.conversations_members(channel=slack.channels["general"]))["members"]
    assert set(slack.users.values()) <= set(members)


async def test_post_update_delete_history_and_replies(slack: SlackEmulator) -> None:
    client = web_client(slack)
    general = slack.channels["general"]
    question = slack.user_says(general, "alice", "what is 2+2?")
    first = await client.chat_postMessage(channel=general, thread_ts=question, markdown_text="**4**")
    second = await client.chat_postMessage(channel=general, text="also top level")
    assert float(second["ts"]) > float(first["ts"]) > float(question)

    await client.chat_update(channel=general, ts=first["ts"], markdown_text="**four**")
    replies = (await client.conversations_replies(channel=general, ts=question))["messages"]
    assert [m["ts"] for m in replies] == [question, first["ts"]]
    assert replies[1]["text"] == "**four**" and replies[1]["edited"]["user"] == slack.bot_user_id
    assert replies[0]["reply_count"] == 1

    history = (await client.conversations_history(channel=general))["messages"]
    assert [m["ts"] for m in history] == [second["ts"], question]  # newest first, no thread replies
    page = await client.conversations_history(channel=general, limit=1)
    assert page["has_more"] and page["response_metadata"]["next_cursor"]

    await client.chat_delete(channel=general, ts=second["ts"])
    stored = slack.messages("general")
    assert [m["ts"] for m in stored] == [question]
    thread = slack.messages("general", thread_ts=question)
    assert thread[1]["markdown_text"] == "**four**" and thread[1]["history"][0]["text"] == "**4**"


async def test_replies_limit_latest_and_a_reply_ts(slack: SlackEmulator) -> None:
    client = web_client(slack)
    general = slack.channels["general"]
    root = slack.user_says(general, "alice", "root")
    answers = [slack.user_says(general, "bob", f"reply {i}", thread_ts=root) for i in range(120)]
    thread = await client.conversations_replies(channel=general, ts=root)  # the spec's default limit: 1000
    assert len(thread["messages"]) == 121 and not thread["has_more"]
    assert thread["messages"][1]["parent_user_id"] == slack.users["alice"]
    first = await client.conversations_replies(channel=general, ts=root, limit=1)  # the first message alone
    assert [m["ts"] for m in first["messages"]] == [root] and first["has_more"]
    before = await client.conversations_replies(channel=general, ts=root, latest=answers[2])
    assert [m["ts"] for m in before["messages"]] == [root, *answers[:2]]  # `latest` is exclusive
    by_reply = await client.conversations_replies(channel=general, ts=answers[5], limit=2)
    assert [m["ts"] for m in by_reply["messages"]] == [root, answers[0]]  # a reply's ts names its thread


async def test_apps_outside_the_marketplace_read_15_objects_once_a_minute(slack_factory) -> None:
    emu = slack_factory(distribution="non_marketplace")  # (the tiers are off: this limit is the app's own)
    client = web_client(emu)
    general = emu.channels["general"]
    root = emu.user_says(general, "alice", "root")
    for i in range(20):
        emu.user_says(general, "bob", f"reply {i}", thread_ts=root)
    thread = await client.conversations_replies(channel=general, ts=root, limit=100)
    assert len(thread["messages"]) == 15 and thread["has_more"]
    limited = await api_error(client.conversations_replies(channel=general, ts=root))
    assert limited.response.status_code == 429 and 1 <= int(limited.response.headers["Retry-After"]) <= 60
    history = await client.conversations_history(channel=general)  # its own minute
    assert len(history["messages"]) == 1


async def test_ephemeral_reactions_status_and_permalink(slack: SlackEmulator) -> None:
    client = web_client(slack)
    general = slack.channels["general"]
    ts = slack.user_says(general, "carol", "hello")
    await client.chat_postEphemeral(channel=general, user=slack.users["carol"], text="only for you")
    assert slack.ephemeral("general")[0]["text"] == "only for you"
    assert all(m["text"] != "only for you" for m in slack.messages("general"))

    await client.reactions_add(channel=general, timestamp=ts, name="eyes")
    assert (await api_error(client.reactions_add(channel=general, timestamp=ts, name="eyes"))).response[
        "error"] == "already_reacted"
    assert slack.messages("general")[0]["reactions"] == [{"name": "eyes", "users": [slack.bot_user_id], "count": 1}]
    await client.reactions_remove(channel=general, timestamp=ts, name="eyes")
    assert (await api_error(client.reactions_remove(channel=general, timestamp=ts, name="eyes"))).response[
        "error"] == "no_reaction"

    await client.assistant_threads_setStatus(channel_id=general, thread_ts=ts, status="is thinking…")
    assert slack.statuses()[0]["status"] == "is thinking…"
    link = await client.chat_getPermalink(channel=general, message_ts=ts)
    assert link["permalink"].endswith(ts.replace(".", ""))


async def test_native_streaming(slack: SlackEmulator) -> None:
    client = web_client(slack)
    general = slack.channels["general"]
    question = slack.user_says(general, "alice", "stream please")
    start = await client.chat_startStream(channel=general, thread_ts=question, markdown_text="Hel",
                                          recipient_user_id=slack.users["alice"], recipient_team_id=slack.team_id)
    await client.chat_appendStream(channel=general, ts=start["ts"], markdown_text="lo")
    conflict = await api_error(client.chat_update(channel=general, ts=start["ts"], text="no"))
    assert conflict.response["error"] == "streaming_state_conflict"
    assert slack.messages("general", thread_ts=question)[1]["streaming"] is True

    await client.chat_stopStream(channel=general, ts=start["ts"], markdown_text=" world")
    reply = slack.messages("general", thread_ts=question)[1]
    assert reply["markdown_text"] == "Hello world" and reply["streaming"] is False
    late = await api_error(client.chat_appendStream(channel=general, ts=start["ts"], markdown_text="!"))
    assert late.response["error"] == "message_not_in_streaming_state"
    await client.chat_update(channel=general, ts=start["ts"], markdown_text="Hello again")

    missing = await api_error(client.chat_startStream(channel=general, thread_ts=question))
    assert missing.response["error"] == "missing_recipient_user_id"


async def test_stream_expires(slack_factory) -> None:
    emu = slack_factory(stream_expiry=0.2)
    client = web_client(emu)
    general = emu.channels["general"]
    question = emu.user_says(general, "alice", "long answer")
    start = await client.chat_startStream(channel=general, thread_ts=question, markdown_text="partial",
                                          recipient_user_id=emu.users["alice"], recipient_team_id=emu.team_id)
    await asyncio.sleep(0.3)
    expired = await api_error(client.chat_appendStream(channel=general, ts=start["ts"], markdown_text="more"))
    assert expired.response["error"] == "message_not_in_streaming_state"
    stopped = await api_error(client.chat_stopStream(channel=general, ts=start["ts"]))
    assert stopped.response["error"] == "message_not_in_streaming_state"
    await client.chat_update(channel=general, ts=start["ts"], markdown_text="partial, finished by update")
    assert emu.messages("general", thread_ts=question)[1]["text"] == "partial, finished by update"


async def test_rules_bite(slack: SlackEmulator) -> None:
    client = web_client(slack)
    general = slack.channels["general"]
    outside = slack.add_channel("elsewhere", members=[slack.users["alice"]], bot_is_member=False)
    secret = slack.add_channel("secret", is_private=True, members=[slack.users["alice"]], bot_is_member=False)
    alice_ts = slack.user_says(general, "alice", "mine")
    cases = [
        (client.chat_postMessage(channel=general, markdown_text="x" * 12_001), "msg_too_long"),
        (client.chat_postMessage(channel=general, text="x" * 40_001), "msg_too_long"),
        (client.chat_postMessage(channel=general, text="a", markdown_text="b"), "markdown_text_conflict"),
        (client.chat_postMessage(channel=outside, text="hi"), "not_in_channel"),
        (client.chat_postMessage(channel=secret, text="hi"), "channel_not_found"),
        (client.chat_postMessage(channel="C9999999999", text="hi"), "channel_not_found"),
        (client.chat_update(channel=general, ts=alice_ts, text="edit"), "cant_update_message"),
        (client.chat_update(channel=general, ts="1.000001", text="edit"), "message_not_found"),
        (client.conversations_replies(channel=general, ts="1.000001"), "thread_not_found"),
        (web_client(slack, token="xoxb-wrong").auth_test(), "invalid_auth"),
        (web_client(slack, token=slack.app_token).chat_postMessage(channel=general, text="hi"),
         "not_allowed_token_type"),
        (client.apps_connections_open(app_token=slack.bot_token), "not_allowed_token_type"),
    ]
    for call, error in cases:
        assert (await api_error(call)).response["error"] == error
    no_token = await api_error(AsyncWebClient(base_url=slack.base_url).api_call("auth.test"))
    assert no_token.response["error"] == "not_authed"
    assert slack.violations == ["auth.test: missing required argument(s) token"]
    slack.clear_violations()
    assert [m["text"] for m in slack.messages("general")] == ["mine"]  # nothing else got through


async def test_form_and_query_bodies_carry_json_strings_and_token(slack: SlackEmulator) -> None:
    client = AsyncWebClient(base_url=slack.base_url)
    blocks = json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}])
    sent = await client.api_call("chat.postMessage", params={
        "token": slack.bot_token, "channel": slack.channels["general"], "text": "hi", "blocks": blocks,
        "unfurl_links": "false"})
    assert sent["message"]["blocks"][0]["type"] == "section"
    assert slack.calls("chat.postMessage")[0].args["unfurl_links"] == "false"
    assert "token" not in slack.calls("chat.postMessage")[0].args


# -- rate limits and injected faults -------------------------------------------------------------------

async def test_rate_limit_answers_429_with_retry_after(slack_factory) -> None:
    emu = slack_factory(rate_limits=RateLimitPolicy(method_limits={"chat.update": (1, 60.0)}))
    client = web_client(emu)
    general = emu.channels["general"]
    ts = (await client.chat_postMessage(channel=general, text="one"))["ts"]
    await client.chat_update(channel=general, ts=ts, text="two")
    limited = await api_error(client.chat_update(channel=general, ts=ts, text="three"))
    assert limited.response.status_code == 429 and limited.response["error"] == "ratelimited"
    assert 1 <= int(limited.response.headers["Retry-After"]) <= 60
    assert [c.status for c in emu.calls("chat.update")] == [200, 429]


async def test_post_message_is_limited_per_channel(slack_factory) -> None:
    emu = slack_factory(rate_limits="real")
    client = web_client(emu)
    general, other = emu.channels["general"], emu.add_channel("other")
    for n in range(3):  # the burst
        await client.chat_postMessage(channel=general, text=f"burst {n}")
    assert (await api_error(client.chat_postMessage(channel=general, text="too fast"))).response.status_code == 429
    await client.chat_postMessage(channel=other, text="another channel has its own budget")


async def test_sdk_retry_handler_honours_retry_after(slack_factory) -> None:
    emu = slack_factory(rate_limits=RateLimitPolicy(method_limits={"chat.update": (1, 1.0)}))
    client = web_client(emu, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    general = emu.channels["general"]
    ts = (await client.chat_postMessage(channel=general, text="v1"))["ts"]
    await client.chat_update(channel=general, ts=ts, text="v2")
    await client.chat_update(channel=general, ts=ts, text="v3")  # waits out the 429, then succeeds
    assert [c.status for c in emu.calls("chat.update")] == [200, 429, 200]
    assert emu.calls("chat.update")[1].retry_after == 1
    assert emu.messages("general")[0]["text"] == "v3"


async def test_fail_next_injects_errors(slack: SlackEmulator) -> None:
    client = web_client(slack)
    general = slack.channels["general"]
    other = slack.add_channel("other")
    slack.fail_next("chat.postMessage", error="not_in_channel", channel=general)
    await client.chat_postMessage(channel=other, text="other channels unaffected")
    assert (await api_error(client.chat_postMessage(channel=general, text="x"))).response["error"] == "not_in_channel"
    slack.fail_next("chat.postMessage", status=500)
    assert (await api_error(client.chat_postMessage(channel=general, text="x"))).response.status_code == 500
    slack.fail_next("chat.update", error="ratelimited", status=429, retry_after=7)
    limited = await api_error(client.chat_update(channel=general, ts="1.000001", text="x"))
    assert limited.response.headers["Retry-After"] == "7"
    await client.chat_postMessage(channel=general, text="works again")
    assert [c.injected for c in slack.calls("chat.postMessage")] == [False, True, True, False]


# -- spec checking -------------------------------------------------------------------------------------

async def test_spec_violations_are_recorded(slack: SlackEmulator) -> None:
    client = web_client(slack)
    general = slack.channels["general"]
    await client.api_call("chat.postMessage", json={"channel": general, "text": "hi", "colour": "red"})
    missing = await api_error(client.api_call("reactions.add", json={"channel": general, "name": "eyes"}))
    assert missing.response["error"] == "invalid_arguments"
    await client.api_call("chat.postMessage", json={"channel": general, "text": "hi", "thread_ts": 1.5})
    violations = slack.violations
    assert any("unknown argument colour" in v for v in violations)
    assert any("reactions.add: missing required argument(s) timestamp" in v for v in violations)
    assert any("thread_ts=1.5" in v for v in violations)
    slack.clear_violations()


async def test_unknown_method(slack: SlackEmulator) -> None:
    error = await api_error(web_client(slack).api_call("chat.postMessages", json={"channel": "C1"}))
    assert error.response["error"] == "unknown_method"
    assert slack.violations == ["chat.postMessages: no such Slack Web API method"]
    slack.clear_violations()


# -- events the app receives ------------------------------------------------------------------------

def test_user_message_mentioning_the_bot_is_delivered_twice(slack: SlackEmulator) -> None:
    ts = slack.user_says("general", "alice", f"hey <@{slack.bot_user_id}> hello")
    message, mention = slack.events()
    assert message["type"] == "message" and mention["type"] == "app_mention"
    assert message["ts"] == mention["ts"] == ts and message["channel_type"] == "channel"
    envelopes = slack.envelopes()
    assert envelopes[0].event_id != envelopes[1].event_id
    assert envelopes[0].payload["authorizations"][0]["user_id"] == slack.bot_user_id

    dm = slack.add_channel("alice-dm", is_im=True, members=[slack.users["alice"]])
    slack.user_says(dm, "alice", "private question")
    assert slack.events()[-1]["channel_type"] == "im"


def test_only_conversations_with_the_bot_produce_events(slack: SlackEmulator) -> None:
    elsewhere = slack.add_channel("elsewhere", members=[slack.users["alice"]], bot_is_member=False)
    slack.user_says(elsewhere, "alice", "the bot is not here")
    assert slack.events() == []
    slack.join_channel("general", slack.add_user("dave", display_name="Dave"))
    assert [e.get("subtype", e["type"]) for e in slack.events()] == ["member_joined_channel", "channel_join"]


def test_a_rename_is_announced_like_slack(slack: SlackEmulator) -> None:
    general = slack.channels["general"]
    slack.rename_channel("general", "town-square", by=slack.users["alice"])
    renamed, message = slack.events()
    assert renamed["type"] == "channel_rename" and renamed["channel"]["id"] == general
    assert renamed["channel"]["name"] == "town-square" and isinstance(renamed["channel"]["created"], int)
    assert (message["subtype"], message["old_name"], message["name"]) == ("channel_name", "general", "town-square")
    assert slack.channels["town-square"] == general and "general" not in slack.channels
    secret = slack.add_channel("secret", is_private=True, members=[slack.users["alice"]])
    slack.rename_channel(secret, "still-secret", by=slack.users["alice"])
    assert slack.events()[-2]["type"] == "group_rename"
    elsewhere = slack.add_channel("elsewhere", members=[slack.users["alice"]], bot_is_member=False)
    hidden = slack.add_channel("hidden", is_private=True, members=[slack.users["alice"]], bot_is_member=False)
    before = len(slack.events())
    slack.rename_channel(elsewhere, "still-elsewhere", by=slack.users["alice"])
    slack.rename_channel(hidden, "still-hidden", by=slack.users["alice"])
    assert [e["type"] for e in slack.events()[before:]] == ["channel_rename"]  # (a public one's, to every app)


async def test_bot_activity_echoes_back_like_slack(slack_factory) -> None:
    emu = slack_factory()
    client = web_client(emu)
    general = emu.channels["general"]
    ts = (await client.chat_postMessage(channel=general, text="hello"))["ts"]
    await client.chat_update(channel=general, ts=ts, text="hello, edited")
    await client.chat_delete(channel=general, ts=ts)
    posted, changed, deleted = emu.events()
    assert posted["bot_id"] == emu.bot_id and posted["user"] == emu.bot_user_id and posted["app_id"] == emu.app_id
    assert posted["bot_profile"]["id"] == emu.bot_id
    assert changed["subtype"] == "message_changed" and changed["hidden"] is True
    assert changed["message"]["text"] == "hello, edited" and changed["previous_message"]["text"] == "hello"
    assert deleted["subtype"] == "message_deleted" and deleted["deleted_ts"] == ts

    quiet = slack_factory(echo_bot_events=False)
    await web_client(quiet).chat_postMessage(channel=quiet.channels["general"], text="hello")
    assert quiet.events() == []


def test_people_edit_delete_and_change_profiles(slack: SlackEmulator) -> None:
    ts = slack.user_says("general", "bob", "typo")
    slack.edit_message("general", ts, "fixed")
    slack.delete_message("general", ts)
    slack.update_user(slack.users["bob"], display_name="Bobby")
    _, changed, deleted, user_change = slack.events()
    assert changed["message"]["text"] == "fixed" and changed["message"]["edited"]["user"] == slack.users["bob"]
    assert deleted["previous_message"]["text"] == "fixed"
    assert user_change["type"] == "user_change" and user_change["user"]["profile"]["display_name"] == "Bobby"


async def test_user_groups_and_admin_flags(slack: SlackEmulator) -> None:
    client = web_client(slack)
    boss = slack.add_user("boss", display_name="Boss", is_admin=True)
    owner = slack.add_user("owner", display_name="Owner", is_primary_owner=True, is_owner=True)
    assert (await client.users_info(user=boss))["user"]["is_admin"] is True
    assert (await client.users_info(user=owner))["user"]["is_primary_owner"] is True
    assert (await client.users_info(user=slack.users["alice"]))["user"]["is_admin"] is False
    devs = slack.add_usergroup("devs", ["alice", "bob"])
    assert devs.startswith("S")
    assert (await client.usergroups_users_list(usergroup=devs))["users"] == [slack.users["alice"], slack.users["bob"]]
    assert (await api_error(client.usergroups_users_list(usergroup="S0NOPE"))).response["error"] == "no_such_subteam"
    slack.set_usergroup_members(devs, ["bob", "carol"])
    (changed,) = slack.events("subteam_members_changed")
    assert changed["subteam_id"] == devs and changed["team_id"] == slack.team_id
    assert changed["added_users"] == [slack.users["carol"]] and changed["removed_users"] == [slack.users["alice"]]
    assert changed["added_users_count"] == "1" and changed["date_update"] >= changed["date_previous_update"]
    assert (await client.usergroups_users_list(usergroup=devs))["users"] == [slack.users["bob"], slack.users["carol"]]


def test_raw_events_from_other_bots_are_stored_and_delivered(slack: SlackEmulator) -> None:
    general = slack.channels["general"]
    event_id = slack.deliver_event({"type": "message", "subtype": "bot_message", "bot_id": "B0OTHER001",
                                    "text": "I am another bot", "channel": general})
    assert slack.envelopes()[0].event_id == event_id
    assert slack.messages("general")[0]["bot_id"] == "B0OTHER001"
    slack.deliver_event({"type": "no_such_event"})
    assert slack.violations == ["event type 'no_such_event' is not in slack-events.json"]
    slack.clear_violations()


# -- Socket Mode with slack_sdk's own client -----------------------------------------------------------

async def test_socket_mode_client_receives_and_acks(slack: SlackEmulator) -> None:
    early = slack.user_says("general", "alice", "sent before anyone connected")  # queued until then
    async with socket_client(slack) as session:
        received = session.requests
        assert slack.connections_open_count == 1
        hello = (await slack.async_wait_for(lambda: session.messages))[0]
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"]["app_id"] == slack.app_id
        later = slack.user_says("general", "bob", "sent while connected")
        await slack.async_wait_for(lambda: len(received) == 2, timeout=5)
        assert [r.payload["event"]["ts"] for r in received] == [early, later]
        assert received[0].type == "events_api" and received[0].retry_attempt == 0
        envelopes = await slack.async_wait_for(lambda: [e for e in slack.envelopes() if e.acked] or None)
        assert envelopes[0].ack_payload is None and envelopes[0].attempts[0]["connection"]
        await asyncio.sleep(5 * FAST_PING)  # the SDK's ping/pong keeps the socket fresh: no reconnect
        assert slack.connections_total == 1


async def test_envelopes_are_spread_over_open_sockets(slack: SlackEmulator) -> None:
    async with socket_client(slack) as first, socket_client(slack) as second:
        assert slack.connections_open_count == 2
        for n in range(4):
            slack.user_says("general", "alice", f"message {n}")
        await slack.async_wait_for(lambda: len(first.requests) + len(second.requests) == 4, timeout=5)
        assert len(first.requests) == len(second.requests) == 2


async def test_unacked_envelope_is_redelivered(slack_factory) -> None:
    emu = slack_factory(ack_timeout=0.2)
    async with socket_client(emu, auto_ack=False) as session:
        client, received = session.client, session.requests
        emu.user_says("general", "alice", "ack me")
        await emu.async_wait_for(lambda: len(received) == 2, timeout=5)
        assert [(r.retry_attempt, r.retry_reason) for r in received] == [(0, ""), (1, "timeout")]
        assert received[0].envelope_id == received[1].envelope_id
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=received[1].envelope_id))
        await emu.async_wait_for(lambda: emu.envelopes()[0].acked, timeout=5)
        await asyncio.sleep(0.3)  # no further delivery after the ack
        assert len(received) == 2


async def test_unacked_envelope_gives_up_after_three_retries(slack_factory) -> None:
    emu = slack_factory(ack_timeout=0.05)
    async with socket_client(emu, auto_ack=False) as session:
        received = session.requests
        emu.user_says("general", "alice", "nobody acks")
        envelope = await emu.async_wait_for(lambda: emu.envelopes()[0].gave_up and emu.envelopes()[0], timeout=5)
        assert [a["attempt"] for a in envelope.attempts] == [0, 1, 2, 3]
        assert len(received) == 4


async def test_unacked_slash_command_is_not_redelivered(slack_factory) -> None:
    emu = slack_factory(ack_timeout=0.05)
    async with socket_client(emu, auto_ack=False) as session:
        command = emu.slash_command("general", "alice", "/assistant", "reset")
        await emu.async_wait_for(lambda: command.envelope().gave_up, timeout=5)
        assert len(session.requests) == 1 and session.requests[0].accepts_response_payload
        assert session.requests[0].payload["command"] == "/assistant"
        assert session.requests[0].payload["response_url"] == command.response_url


async def test_refresh_requested_makes_the_client_reconnect(slack_factory) -> None:
    emu = slack_factory(refresh_grace=0.2)
    async with socket_client(emu) as session:
        received = session.requests
        emu.request_refresh()
        await emu.async_wait_for(lambda: emu.connections_total == 2 and emu.connections_open_count == 1, timeout=5)
        assert [m["type"] for m in session.messages] == ["hello", "disconnect", "hello"]
        assert [m["reason"] for m in session.messages if m["type"] == "disconnect"] == ["refresh_requested"]
        emu.user_says("general", "carol", "after the refresh")
        await emu.async_wait_for(lambda: received, timeout=5)


async def test_dropped_connection_is_reestablished(slack: SlackEmulator) -> None:
    async with socket_client(slack) as session:
        received = session.requests
        slack.drop_connections()
        await slack.async_wait_for(lambda: slack.connections_total == 2 and slack.connections_open_count == 1,
                                   timeout=5)
        slack.user_says("general", "carol", "after the drop")
        await slack.async_wait_for(lambda: received, timeout=5)


# -- slack_bolt end to end ---------------------------------------------------------------------------------

def bolt_app(emu: SlackEmulator, **kwargs: Any) -> tuple[AsyncApp, list[dict[str, Any]]]:
    """A Bolt app that replies in thread to messages and answers `/assistant` in its ack."""
    seen: list[dict[str, Any]] = []
    app = AsyncApp(client=web_client(emu), **kwargs)

    @app.event("message")
    async def on_message(event: dict[str, Any], say: Any) -> None:
        seen.append(event)
        if "subtype" not in event:
            await say(text=f"heard: {event['text']}", thread_ts=event["ts"])

    @app.command("/assistant")
    async def on_command(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack(text=f"resetting for {command['user_name']}")
        await respond(response_type="in_channel", text="conversation reset")

    return app, seen


async def test_bolt_socket_mode_message_and_slash_command(slack: SlackEmulator) -> None:
    app, seen = bolt_app(slack)
    handler = AsyncSocketModeHandler(app, slack.app_token)
    await handler.connect_async()
    try:
        ts = slack.user_says("general", "alice", "hello bolt")
        replies = await slack.async_wait_for(lambda: slack.messages("general", thread_ts=ts)[1:], timeout=5)
        assert replies[0]["text"] == "heard: hello bolt" and replies[0]["bot_id"] == slack.bot_id
        assert [e["text"] for e in seen] == ["hello bolt"]  # Bolt dropped the echo of its own reply

        command = slack.slash_command("general", "bob", "/assistant", "reset")
        responses = await slack.async_wait_for(lambda: len(command.responses()) == 2 and command.responses(),
                                               timeout=5)
        by_way = {r.pop("via"): r for r in responses}  # Bolt may post to response_url before acking
        assert by_way["ack"] == {"text": "resetting for bob"}
        assert by_way["response_url"] == {"response_type": "in_channel", "text": "conversation reset"}
        assert slack.messages("general")[-1]["text"] == "conversation reset"
        await slack.async_wait_for(lambda: all(e.acked for e in slack.envelopes()), timeout=5)
    finally:
        await handler.close_async()


# -- signed HTTP delivery ------------------------------------------------------------------------------------

class Endpoint:
    """An aiohttp server in the test's loop that hands requests to a Bolt app (set once it exists)."""

    def __init__(self, fail_first: int, stall_first: float) -> None:
        self.app: AsyncApp | None = None
        self.fail_first = fail_first
        self.stall_first = stall_first
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append({k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-slack")})
        if len(self.headers) <= self.fail_first:
            return web.Response(status=500, text="not now")
        if len(self.headers) == 1 and self.stall_first:
            await asyncio.sleep(self.stall_first)
        assert self.app is not None
        return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))


@asynccontextmanager
async def http_endpoint(fail_first: int = 0, stall_first: float = 0.0) -> AsyncIterator[tuple[str, Endpoint]]:
    endpoint = Endpoint(fail_first, stall_first)
    web_app = web.Application()
    web_app.router.add_post("/slack/events", endpoint.handle)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/slack/events", endpoint
    finally:
        await runner.cleanup()


async def test_http_events_are_signed_and_retried_after_an_error(slack_factory) -> None:
    async with http_endpoint(fail_first=1) as (url, endpoint):
        emu = slack_factory(events_url=url)
        endpoint.app, seen = bolt_app(emu, signing_secret=emu.signing_secret)
        ts = emu.user_says("general", "alice", "over http")
        await emu.async_wait_for(lambda: emu.messages("general", thread_ts=ts)[1:], timeout=5)
        envelope = emu.envelopes()[0]
        assert [a["status"] for a in envelope.attempts] == [500, 200]
        assert (envelope.retry_attempt, envelope.retry_reason) == (1, "http_error")
        first, retry = endpoint.headers[:2]
        assert first["x-slack-signature"].startswith("v0=") and "x-slack-retry-num" not in first
        assert (retry["x-slack-retry-num"], retry["x-slack-retry-reason"]) == ("1", "http_error")
        assert [e["text"] for e in seen] == ["over http"]  # Bolt verified the signature and handled it


async def test_http_url_verification_and_slash_command(slack_factory) -> None:
    emu = slack_factory()  # started before the app's URL is known, as an end-to-end test would
    async with http_endpoint() as (url, endpoint):
        emu.set_events_url(url)
        endpoint.app, _ = bolt_app(emu, signing_secret=emu.signing_secret)
        challenge = emu.verify_url("challenge-123")
        verified = await emu.async_wait_for(lambda: [e for e in emu.envelopes() if e.id == challenge and e.acked])
        assert verified[0].ack_payload == {"challenge": "challenge-123"}

        command = emu.slash_command("general", "carol", "/assistant", "reset")
        responses = await emu.async_wait_for(lambda: len(command.responses()) == 2 and command.responses(),
                                             timeout=5)
        assert {"via": "ack", "text": "resetting for carol"} in responses
        assert emu.response_url_posts()[0]["body"]["text"] == "conversation reset"


async def test_http_signature_with_the_wrong_secret_is_refused(slack_factory) -> None:
    async with http_endpoint() as (url, endpoint):
        emu = slack_factory(events_url=url, signing_secret="not-the-apps-secret", http_retry_delays=(0, 0, 0))
        endpoint.app, seen = bolt_app(emu, signing_secret="the-apps-secret")
        emu.user_says("general", "alice", "forged?")
        envelope = await emu.async_wait_for(lambda: emu.envelopes()[0].gave_up and emu.envelopes()[0], timeout=5)
        assert {a["status"] for a in envelope.attempts} == {401} and len(envelope.attempts) == 4
        assert seen == []


async def test_http_event_answered_too_late_is_retried(slack_factory) -> None:
    async with http_endpoint(stall_first=0.5) as (url, endpoint):
        emu = slack_factory(events_url=url, ack_timeout=0.2)
        endpoint.app, seen = bolt_app(emu, signing_secret=emu.signing_secret)
        emu.user_says("general", "alice", "slow")
        envelope = await emu.async_wait_for(lambda: emu.envelopes()[0].acked and emu.envelopes()[0], timeout=5)
        assert [a["reason"] for a in envelope.attempts] == ["http_timeout", None]
        assert endpoint.headers[1]["x-slack-retry-reason"] == "http_timeout"


async def test_a_revoked_then_rotated_bot_token() -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    from tests.emulators.slack import SlackEmulator

    with SlackEmulator() as emu:
        client = AsyncWebClient(token=emu.bot_token, base_url=emu.base_url)
        assert (await client.auth_test())["ok"]
        emu.revoke_bot_token()
        with pytest.raises(SlackApiError) as caught:
            await client.auth_test()
        assert caught.value.response["error"] == "token_revoked"
        emu.restore_bot_token()
        assert (await client.auth_test())["ok"]
        emu.rotate_bot_token("xoxb-reinstalled")
        with pytest.raises(SlackApiError) as caught:
            await client.auth_test()
        assert caught.value.response["error"] == "invalid_auth"
        assert (await AsyncWebClient(token="xoxb-reinstalled", base_url=emu.base_url).auth_test())["ok"]
