"""A turn that fails with an error that is not a model failure (a store error, a bug) must not leave its
live reply's writer task waiting forever: the turn ends, the channel's worker tries again later, and a
task nobody will ever feed or finish would sit in the loop (and its message never be finished by it)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.backends.chat import ChatBackend
from bot.conversation.service import ConversationService
from bot.messages import IncomingMessage
from bot.outbound.channels import ChannelDirectory
from bot.outbound.people import NameDirectory
from bot.outbound.replies import ReplyFactory
from bot.outbound.writer import SlackWriter
from bot.store import Store
from bot.work.retry import RetryPolicy
from bot.work.runner import TurnRunner
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "bridge.sqlite3")
    yield opened
    await opened.close()


def writer_tasks() -> list[asyncio.Task]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("reply-") and not task.done()]


async def test_a_turn_failing_outside_the_backend_leaves_no_reply_task_waiting(
        slack: SlackEmulator, openai_emu: OpenAIEmulator, store: Store, tmp_path: Path) -> None:
    broken = await Store.open(tmp_path / "history.sqlite3")
    await broken.close()  # the chat history cannot be read: sqlite3.ProgrammingError, not a BackendError
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
    model = openai.AsyncOpenAI(base_url=openai_emu.base_url, api_key=openai_emu.api_key, max_retries=0)
    backend = ChatBackend(model, model="gpt-4.1-mini", history=broken.chat)
    conversations = ConversationService(conversation_map=store.conversations, backend=backend,
                                        names=NameDirectory(client), channels=ChannelDirectory(client),
                                        instructions="Be brief.")
    writer = SlackWriter.create(client)
    runner = TurnRunner(inbox=store.inbox, journal=store.journal, conversations=conversations,
                        replies=ReplyFactory(writer, stream_in_threads=False), writer=writer, policy=RetryPolicy(),
                        reply_in_thread=False, max_concurrent_turns=4)
    channel = slack.channels["general"]
    await store.inbox.add_message(IncomingMessage(channel=channel, ts=slack.user_says("general", "alice", "hi"),
                                                  user=slack.users["alice"], text="hi"))
    try:
        with pytest.raises(sqlite3.ProgrammingError):
            await runner.step(channel)
        await asyncio.sleep(0)
        assert writer_tasks() == []
    finally:
        for task in writer_tasks():
            task.cancel()
        await backend.aclose()
