"""A channel's conversation is created while its first message reaches the disk, so the first turn does
not wait for that round trip; created ahead or by the turn, by this process or another, a channel ends
with one conversation. Better still, a spare made before the channel needed one is taken (no round trip
at all); the spares are labelled with their channel and topped up at the next quiet moment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import openai
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.backends.responses import ResponsesBackend
from bot.conversation.service import ConversationService
from bot.conversation.spares import SpareConversations
from bot.messages import InboxItem, ItemKind
from bot.outbound.channels import ChannelDirectory
from bot.outbound.people import NameDirectory
from bot.store import Store
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "bridge.sqlite3")
    yield opened
    await opened.close()


def model_client(openai_emu: OpenAIEmulator, organization: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=openai_emu.base_url, api_key=openai_emu.api_key, max_retries=0,
                              organization=organization)


def service(store: Store, slack: SlackEmulator, openai_emu: OpenAIEmulator,
            spares: int | None = None, organization: str | None = None) -> ConversationService:
    """With `spares`, the service keeps that many spare conversations (none are made until a top-up)."""
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
    backend = ResponsesBackend(model_client(openai_emu, organization), model="m")
    return ConversationService(conversation_map=store.conversations, backend=backend,
                               names=NameDirectory(client), channels=ChannelDirectory(client), instructions="Hi.",
                               spares=None if spares is None else SpareConversations(store.conversations, backend,
                                                                                     size=spares, retry_after=0))


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def pool(conversations: ConversationService) -> str:
    return conversations.backend.spare_pool  # type: ignore[attr-defined]


async def spares_made(store: Store, conversations: ConversationService, count: int) -> None:
    async def made() -> bool:
        return await store.conversations.spare_count(pool(conversations)) == count
    await until(made, f"{count} spare conversations")


def created(openai_emu: OpenAIEmulator) -> int:
    """Conversations created (POST /v1/conversations; not a label, POST /v1/conversations/{id})."""
    return sum(r.method == "POST" and r.path == "/v1/conversations" for r in openai_emu.requests("/v1/conversations"))


async def test_prepared_ahead_the_turn_finds_it(store: Store, slack: SlackEmulator,
                                                openai_emu: OpenAIEmulator) -> None:
    conversations = service(store, slack, openai_emu)
    conversations.prepare("C1")
    conversations.prepare("C1")  # (the channel's second message, while the first is being prepared)
    first = await conversations.conversation_id("C1")  # waits for the one being created: no second one
    assert created(openai_emu) == 1
    assert await store.conversations.conversation("C1", "responses") == first
    conversations.prepare("C1")  # known now: nothing to do
    assert await conversations.conversation_id("C1") == first and created(openai_emu) == 1


async def test_two_processes_creating_at_once_agree_on_one(store: Store, slack: SlackEmulator,
                                                           openai_emu: OpenAIEmulator) -> None:
    here, there = service(store, slack, openai_emu), service(store, slack, openai_emu)
    there.prepare("C1")  # another replica's intake got the message; this one runs the turn
    ours = await here.conversation_id("C1")
    await there.conversation_id("C1")
    assert await there.conversation_id("C1") == ours == await store.conversations.conversation("C1", "responses")


async def test_a_reset_is_not_undone_by_a_conversation_made_ahead(store: Store, slack: SlackEmulator,
                                                                  openai_emu: OpenAIEmulator) -> None:
    conversations = service(store, slack, openai_emu)
    old = await conversations.conversation_id("C1")
    await conversations.reset("C1")
    conversations.prepare("C1")  # the next message, after the reset
    new = await conversations.conversation_id("C1")
    assert new != old and await store.conversations.conversation("C1", "responses") == new


async def test_a_new_channel_takes_a_spare_without_waiting_for_a_creation(store: Store, slack: SlackEmulator,
                                                                          openai_emu: OpenAIEmulator) -> None:
    conversations = service(store, slack, openai_emu, spares=2)
    conversations.top_up()  # (at start)
    await spares_made(store, conversations, 2)
    made = [r.json for r in openai_emu.requests("/v1/conversations")]
    assert made == [{"metadata": {"slack_channel": "(spare)"}}] * 2  # empty, for no channel yet
    conversations.prepare("C1")
    first = await conversations.conversation_id("C1")
    assert created(openai_emu) == 2  # nothing was created for it: a spare was taken
    assert await store.conversations.spare_count(pool(conversations)) == 1
    conversations.top_up()  # (its turn was delivered)
    await spares_made(store, conversations, 2)

    async def labelled() -> bool:
        return (await model_client(openai_emu).conversations.retrieve(first)).metadata == {"slack_channel": "C1"}
    await until(labelled, "the spare labelled with its channel")
    assert created(openai_emu) == 3  # one more spare


async def test_after_a_reset_the_next_conversation_is_a_spare(store: Store, slack: SlackEmulator,
                                                              openai_emu: OpenAIEmulator) -> None:
    conversations = service(store, slack, openai_emu, spares=1)
    conversations.top_up()
    await spares_made(store, conversations, 1)
    old = await conversations.conversation_id("C1")
    conversations.top_up()
    await spares_made(store, conversations, 1)
    ((spare,),) = await store.db.fetchall("SELECT conversation_id FROM spare_conversations WHERE channel IS NULL")
    await conversations.reset("C1")
    conversations.prepare("C1")
    assert await conversations.conversation_id("C1") == spare != old


async def test_without_a_spare_the_conversation_is_created_and_the_pool_refilled_after(
        store: Store, slack: SlackEmulator, openai_emu: OpenAIEmulator) -> None:
    conversations = service(store, slack, openai_emu, spares=1)
    openai_emu.fail_next(500, path="/v1/conversations")  # (the SDK client here does not retry)
    conversations.top_up()  # fails: no spare (only the log says so)
    await until(lambda: asyncio.sleep(0, result=bool(openai_emu.requests("/v1/conversations"))), "the try")
    assert await store.conversations.spare_count(pool(conversations)) == 0
    first = await conversations.conversation_id("C1")  # created for it, as without spares
    assert openai_emu.requests("/v1/conversations")[-1].json == {"metadata": {"slack_channel": "C1"}}
    assert await store.conversations.conversation("C1", "responses") == first

    async def refilled() -> bool:
        conversations.top_up()  # the next quiet moment tries the pool again (once the failed try ended)
        return await store.conversations.spare_count(pool(conversations)) == 1
    await until(refilled, "the pool filled after the failure")


async def test_the_channel_and_the_speaker_are_looked_up_ahead_once(store: Store, slack: SlackEmulator,
                                                                     openai_emu: OpenAIEmulator) -> None:
    channel, user = slack.add_channel("ahead"), slack.add_user("ann", display_name="Ann")
    conversations = service(store, slack, openai_emu)
    item = InboxItem(id=1, channel=channel, kind=ItemKind.MESSAGE, order_ts="1.0", user=user, text="hi")

    def asked() -> tuple[int, int]:
        return len(slack.calls("conversations.info")), len(slack.calls("users.info"))
    assert conversations.prepare(channel, user)  # (at intake, while the message reaches the disk: it says
    # the turn will wait for lookups, so the disk's sync need not wait for the turn's request to leave)
    await until(lambda: asyncio.sleep(0, result=asked() == (1, 1)), "the lookups, before any turn")
    turn = asyncio.ensure_future(conversations.build_turn(channel, [item]))  # (may join them still under way)
    request = await turn
    assert "#ahead" in request.instructions and request.messages == ["[Ann] hi"]
    assert asked() == (1, 1)
    assert not conversations.prepare(channel, user)  # (both known now: nothing to wait for)


async def test_a_first_messages_lookups_are_asked_before_its_conversation_is_taken(
        store: Store, slack: SlackEmulator, openai_emu: OpenAIEmulator) -> None:
    """Their round trips overlap the rest of the message's way (the spare taken, the turn prepared)."""
    channel, user = slack.add_channel("first"), slack.add_user("bo", display_name="Bo")
    events: list[str] = []

    async def request_start(_session: object, _context: object, params: aiohttp.TraceRequestStartParams) -> None:
        events.append(params.url.path.rsplit("/", 1)[-1])
    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(request_start)
    conversations = service(store, slack, openai_emu, spares=1)
    conversations.top_up()
    await spares_made(store, conversations, 1)
    store.db._db.set_trace_callback(lambda sql: events.append("take") if "UPDATE spare_conversations" in sql else None)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url, session=session)
        conversations._names, conversations._channels = NameDirectory(client), ChannelDirectory(client)
        conversations.prepare(channel, user)
        item = InboxItem(id=1, channel=channel, kind=ItemKind.MESSAGE, order_ts="1.0", user=user, text="hi")
        request = await conversations.build_turn(channel, [item])
    store.db._db.set_trace_callback(None)
    assert sorted(events[:2]) == ["conversations.info", "users.info"] and events[2:] == ["take"], events
    assert "#first" in request.instructions and request.messages == ["[Bo] hi"]


async def test_a_channel_looked_up_twice_at_once_is_asked_once(slack: SlackEmulator) -> None:
    channels = ChannelDirectory(AsyncWebClient(token=slack.bot_token, base_url=slack.base_url))
    channel = slack.add_channel("twice")
    first, second = await asyncio.gather(channels.info(channel), channels.info(channel))
    assert first == second and first.name == "twice" and len(slack.calls("conversations.info")) == 1


async def metadata(openai_emu: OpenAIEmulator, conversation_id: str) -> object:
    return (await model_client(openai_emu).conversations.retrieve(conversation_id)).metadata


async def test_a_spare_taken_is_labelled_by_the_next_process_if_this_one_stopped(
        store: Store, slack: SlackEmulator, openai_emu: OpenAIEmulator) -> None:
    before = service(store, slack, openai_emu, spares=1)
    before.top_up()
    await spares_made(store, before, 1)
    taken = await before.conversation_id("C1")  # ... and the process stops before its next quiet moment
    assert await metadata(openai_emu, taken) == {"slack_channel": "(spare)"}
    after = service(store, slack, openai_emu, spares=1)
    after.top_up()  # (at start)

    async def labelled() -> bool:
        return await metadata(openai_emu, taken) == {"slack_channel": "C1"}
    await until(labelled, "the spare labelled by the next process")


async def test_spares_belong_to_the_account_they_were_made_in(store: Store, slack: SlackEmulator,
                                                              openai_emu: OpenAIEmulator) -> None:
    ours = service(store, slack, openai_emu, spares=1)
    ours.top_up()
    await spares_made(store, ours, 1)
    other = service(store, slack, openai_emu, spares=1, organization="org-elsewhere")  # another account's key
    assert pool(other) != pool(ours)
    await other.conversation_id("C1")  # created: that account may not have our spare
    assert created(openai_emu) == 2 and await store.conversations.spare_count(pool(ours)) == 1


async def test_a_lost_conversation_drops_the_spares_made_beside_it(store: Store, slack: SlackEmulator,
                                                                   openai_emu: OpenAIEmulator) -> None:
    conversations = service(store, slack, openai_emu, spares=2)
    conversations.top_up()
    await spares_made(store, conversations, 2)
    await conversations.conversation_id("C1")
    await conversations.reset("C1", lost=True)  # (the service answered 404 for it: the spares may be gone too)
    assert await store.conversations.spare_count(pool(conversations)) == 0
    fresh = await conversations.conversation_id("C1")  # created, not taken
    assert openai_emu.requests("/v1/conversations")[-1].json == {"metadata": {"slack_channel": "C1"}}
    conversations.top_up()
    await spares_made(store, conversations, 2)
    assert await store.conversations.conversation("C1", "responses") == fresh
