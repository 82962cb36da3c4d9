"""The emulators' "stored, then the answer is lost" faults, driven by the real clients (no retries): the
write happens, the client gets a 5xx or a dropped connection, and cannot tell."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable

import aiohttp
import openai
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

MODEL = "gpt-4.1-mini"
LOST = {"status": openai.InternalServerError, "drop": openai.APIConnectionError}


@pytest.fixture
def emu(openai_factory: Callable[..., OpenAIEmulator]) -> OpenAIEmulator:
    emulator = openai_factory(self_check=True)
    yield emulator
    assert emulator.self_violations == []
    assert emulator.violations == []


@pytest.fixture
async def client(emu: OpenAIEmulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0) as c:
        yield c


def user(text: str) -> dict[str, object]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


@pytest.mark.parametrize("how", ["status", "drop"])
async def test_conversation_items_are_stored_though_the_answer_is_lost(
        client: openai.AsyncOpenAI, emu: OpenAIEmulator, how: str) -> None:
    conv = await client.conversations.create()
    emu.lose_answer_next("/v1/conversations/*/items", how=how)
    with pytest.raises(LOST[how]):
        await client.conversations.items.create(conv.id, items=[user("[Alice] hi")])
    assert [i["content"][0]["text"] for i in emu.conversation_items(conv.id)] == ["[Alice] hi"]
    await client.conversations.items.create(conv.id, items=[user("[Bob] next")])  # one use only
    assert len(emu.conversation_items(conv.id)) == 2


@pytest.mark.parametrize("how", ["status", "drop"])
async def test_a_streamed_response_runs_to_its_end_though_its_answer_is_lost(
        client: openai.AsyncOpenAI, emu: OpenAIEmulator, how: str) -> None:
    conv = await client.conversations.create()
    emu.lose_answer_next("/v1/responses", how=how, status=500)
    with pytest.raises(LOST[how]):
        stream = await client.responses.create(model=MODEL, conversation=conv.id, input=[user("[Alice] hi")],
                                               stream=True)
        async for _event in stream:
            pass
    stored = emu.conversation_items(conv.id)
    assert [i["role"] for i in stored] == ["user", "assistant"]  # the turn completed at the server
    assert emu.requests("/v1/responses")[-1].status == (500 if how == "status" else 200)


async def test_a_conversation_created_though_its_answer_is_lost(client: openai.AsyncOpenAI,
                                                               emu: OpenAIEmulator) -> None:
    emu.lose_answer_next("/v1/conversations", how="status", status=503)
    with pytest.raises(openai.InternalServerError):
        await client.conversations.create()
    assert len(emu.conversations) == 1  # (an orphan nobody knows the id of)


@pytest.mark.parametrize("how", ["status", "drop"])
async def test_assistants_writes_are_stored_though_their_answers_are_lost(
        client: openai.AsyncOpenAI, emu: OpenAIEmulator, how: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assistant = await client.beta.assistants.create(model=MODEL)
        thread = await client.beta.threads.create()
        emu.lose_answer_next("/v1/threads/*/messages", how=how)
        with pytest.raises(LOST[how]):
            await client.beta.threads.messages.create(thread.id, role="user", content="[Alice] one")
        emu.lose_answer_next("/v1/threads/*/runs", how=how)
        with pytest.raises(LOST[how]):
            stream = await client.beta.threads.runs.create(
                thread.id, assistant_id=assistant.id, stream=True,
                additional_messages=[{"role": "user", "content": "[Bob] two"}])
            async for _event in stream:
                pass
    messages = emu.threads[thread.id]
    assert [m["role"] for m in messages] == ["user", "user", "assistant"]  # the run went on to the end


# --- Slack -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["status", "drop"])
async def test_a_slack_post_is_made_though_its_answer_is_lost(slack: SlackEmulator, how: str) -> None:
    # (retry_handlers=[]: by default slack_sdk resends a call once after a connection error)
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url, retry_handlers=[])
    slack.lose_answer_next("chat.postMessage", how=how)
    metadata = {"event_type": "test_event", "event_payload": {"turn": "7"}}
    with pytest.raises(SlackApiError if how == "status" else aiohttp.ClientError):
        await client.chat_postMessage(channel=slack.channels["general"], text="hello", metadata=metadata)
    (posted,) = [m for m in slack.messages("general") if m.get("bot_id")]
    assert posted["text"] == "hello"
    plain = await client.conversations_history(channel=slack.channels["general"])
    assert all("metadata" not in m for m in plain["messages"])  # only when asked for
    full = await client.conversations_history(channel=slack.channels["general"], include_all_metadata=True)
    assert [m["metadata"] for m in full["messages"] if m.get("bot_id")] == [metadata]
    await client.chat_postMessage(channel=slack.channels["general"], text="again")  # one use only
    assert len([m for m in slack.messages("general") if m.get("bot_id")]) == 2
