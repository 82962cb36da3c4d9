"""A channel's conversation is created while its first message reaches the disk, so the first turn does
not wait for that round trip; created ahead or by the turn, by this process or another, a channel ends
with one conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.backends.responses import ResponsesBackend
from bot.conversation.service import ConversationService
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


def service(store: Store, slack: SlackEmulator, openai_emu: OpenAIEmulator) -> ConversationService:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
    model = openai.AsyncOpenAI(base_url=openai_emu.base_url, api_key=openai_emu.api_key, max_retries=0)
    return ConversationService(conversation_map=store.conversations, backend=ResponsesBackend(model, model="m"),
                               names=NameDirectory(client), channels=ChannelDirectory(client), instructions="Hi.")


def created(openai_emu: OpenAIEmulator) -> int:
    return len(openai_emu.requests("/v1/conversations"))


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
