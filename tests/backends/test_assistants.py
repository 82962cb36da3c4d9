"""The `assistants` backend against the OpenAI emulator's legacy Assistants API, with the real SDK.

No test here silences DeprecationWarning: the backend must keep the SDK's Assistants warnings to itself
(the suite turns warnings into errors). Only the tests' own direct SDK calls are wrapped in `quiet()`.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
import pytest

from bot.backends.assistants import SHUTDOWN_WARNING, TOOL_LIMIT, AssistantsBackend
from bot.backends.base import (
    CONVERSATION_GONE,
    BackendError,
    FailureKind,
    FoundReply,
    TextDelta,
    ToolCall,
    ToolOutput,
    ToolsRunning,
    TurnCompleted,
    TurnEvent,
    TurnRequest,
)
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import async_wait_until

MODEL = "gpt-4.1-mini"
OURS = "Address Alice by name. Today is Friday, 2026-05-01. The channel is #general."
CURRENT_TIME = {"name": "current_time", "description": "The current time in a time zone",
                "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}
LOOKUP = {"type": "function", "function": {"name": "lookup_order", "description": "An order by number",
                                           "parameters": {"type": "object", "properties": {}}}}


def quiet(method: Any, *args: Any, **kwargs: Any) -> Any:
    """The tests' own direct calls of the deprecated Assistants methods."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return method(*args, **kwargs)


@pytest.fixture
async def sdk(openai_emu: OpenAIEmulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=openai_emu.base_url, api_key=openai_emu.api_key, max_retries=0) as c:
        yield c


@pytest.fixture
async def assistant_id(sdk: openai.AsyncOpenAI) -> str:
    assistant = await quiet(sdk.beta.assistants.create, model=MODEL, instructions="You are Sam.", tools=[LOOKUP])
    return assistant.id


def make_backend(emu: OpenAIEmulator, assistant_id: str, **options: Any) -> AssistantsBackend:
    client = openai.AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0)
    return AssistantsBackend(client, assistant_id=assistant_id, **options)


@pytest.fixture
async def backend(openai_emu: OpenAIEmulator, assistant_id: str) -> AsyncIterator[AssistantsBackend]:
    backend = make_backend(openai_emu, assistant_id)
    yield backend
    await backend.aclose()


def turn(thread: str, *messages: str, **options: Any) -> TurnRequest:
    return TurnRequest(conversation_id=thread, channel="C1", instructions=OURS, messages=messages, **options)


async def collect(backend: AssistantsBackend, request: TurnRequest) -> list[TurnEvent]:
    return [event async for event in backend.stream_turn(request)]


def text_of(events: Sequence[TurnEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def user_texts(emu: OpenAIEmulator, thread: str) -> list[str]:
    return [m["content"][0]["text"]["value"] for m in emu.threads[thread] if m["role"] == "user"]


def run_tools_recording(seen: list[ToolCall]) -> Any:
    async def run_tools(calls: Sequence[ToolCall]) -> list[ToolOutput]:
        seen.extend(calls)
        return [ToolOutput(call.call_id, json.dumps({"time": "12:00"})) for call in calls]
    return run_tools


# --- turns --------------------------------------------------------------------------------------------

async def test_a_turn_streams_its_text_and_completes(backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    openai_emu.model.enqueue(text="Hi Alice, how can I help you today?")
    events = await collect(backend, turn(thread, "[Alice] hello"))
    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert len(deltas) > 1 and text_of(events) == "Hi Alice, how can I help you today?"
    completed = events[-1]
    assert isinstance(completed, TurnCompleted) and completed.text == "Hi Alice, how can I help you today?"
    messages = openai_emu.threads[thread]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert completed.last_item_id == messages[-1]["id"] and completed.response_id.startswith("run_")
    assert completed.input_tokens and completed.output_tokens
    seen = openai_emu.model.seen[-1]
    assert seen.instructions == f"You are Sam.\n{OURS}"  # the assistant's own, then ours
    assert [m["content"] for m in seen.input] == ["[Alice] hello"]
    body = openai_emu.requests(f"/v1/threads/{thread}/runs")[-1].json
    assert "model" not in body and "tools" not in body and "instructions" not in body
    assert body["additional_instructions"] == OURS and body["assistant_id"] == backend._assistant_id
    assert body["additional_messages"] == [{"role": "user", "content": "[Alice] hello"}]
    assert backend.model == MODEL


async def test_the_thread_is_created_with_the_channel_in_its_metadata(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C42")
    (created,) = openai_emu.requests("/v1/threads")
    assert created.json == {"metadata": {"slack_channel": "C42"}} and thread.startswith("thread_")


async def test_two_turns_share_the_thread(backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    first = (await collect(backend, turn(thread, "[Alice] hello", "[Bob] hi")))[-1]
    second = (await collect(backend, turn(thread, "[Alice] and again")))[-1]
    assert first.text == "Heard: «[Alice] hello» «[Bob] hi»" and second.text == "Heard: «[Alice] and again»"
    assert [m["role"] for m in openai_emu.threads[thread]] == ["user", "user", "assistant", "user", "assistant"]
    assert [m["content"] for m in openai_emu.model.seen[-1].context][:3] == [
        "[Alice] hello", "[Bob] hi", "Heard: «[Alice] hello» «[Bob] hi»"]
    assert len(openai_emu.requests("/v1/assistants/")) == 1  # the assistant is fetched once


async def test_an_overridden_model_goes_with_every_run(openai_emu: OpenAIEmulator, assistant_id: str) -> None:
    backend = make_backend(openai_emu, assistant_id, model="gpt-4.1")
    try:
        assert backend.model == "gpt-4.1"
        thread = await backend.create_conversation("C1")
        completed = (await collect(backend, turn(thread, "[Alice] hi")))[-1]
        assert openai_emu.run(completed.response_id)["model"] == "gpt-4.1"
        assert backend.model == "gpt-4.1"
    finally:
        await backend.aclose()


# --- tools --------------------------------------------------------------------------------------------

async def test_a_tool_call_round_trip(backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    calls: list[ToolCall] = []
    openai_emu.model.enqueue(text="Let me look.", tool_calls=[{"name": "current_time", "arguments": {"tz": "UTC"}}])
    events = await collect(backend, turn(thread, "[Alice] what time is it?", tools=[CURRENT_TIME],
                                         run_tools=run_tools_recording(calls)))
    assert [type(e).__name__ for e in events if not isinstance(e, TextDelta)] == ["ToolsRunning", "TurnCompleted"]
    assert next(e for e in events if isinstance(e, ToolsRunning)).names == ("current_time",)
    (call,) = calls
    assert call.name == "current_time" and json.loads(call.arguments) == {"tz": "UTC"}
    final = 'Tool current_time returned: {"time": "12:00"}'
    assert events[-1].text == text_of(events) == f"Let me look.\n\n{final}"
    assert openai_emu.model.seen[-1].tool_results[0].output == '{"time": "12:00"}'
    tool_names = [tool["function"]["name"] for tool in openai_emu.model.seen[0].tools]
    assert tool_names == ["lookup_order", "current_time"]  # the assistant's own tools are kept
    assert events[-1].last_item_id == openai_emu.threads[thread][-1]["id"]


async def test_without_a_tool_runner_the_model_hears_no_function_found(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    openai_emu.model.enqueue(tool_calls=[{"name": "lookup_order", "arguments": {}}])
    events = await collect(backend, turn(thread, "[Alice] where is my order?"))
    assert openai_emu.model.seen[-1].tool_results[0].output == '{"status": "error", "message": "No function found"}'
    assert isinstance(events[-1], TurnCompleted) and "No function found" in events[-1].text


async def test_tool_rounds_are_capped(backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    calls: list[ToolCall] = []
    for _ in range(2):
        openai_emu.model.enqueue(tool_calls=[{"name": "current_time", "arguments": {"tz": "UTC"}}])
    openai_emu.model.enqueue(text="It is noon.")
    events = await collect(backend, turn(thread, "[Alice] time?", tools=[CURRENT_TIME], max_tool_rounds=1,
                                         run_tools=run_tools_recording(calls)))
    assert len(calls) == 1  # the second round is answered without running the tool
    assert openai_emu.model.seen[-1].tool_results[0].output == TOOL_LIMIT
    assert events[-1].text == "It is noon."


async def test_a_run_that_keeps_calling_tools_is_cancelled(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator, sdk: openai.AsyncOpenAI) -> None:
    thread = await backend.create_conversation("C1")
    for _ in range(10):
        openai_emu.model.enqueue(tool_calls=[{"name": "current_time", "arguments": {"tz": "UTC"}}])
    with pytest.raises(BackendError) as caught:
        await collect(backend, turn(thread, "[Alice] time?", tools=[CURRENT_TIME], max_tool_rounds=1))
    assert caught.value.code == "tool_rounds" and caught.value.outcome_unknown
    assert len(openai_emu.model.seen) == 4  # 1 round, 2 more answered "limit reached", then cancelled
    (run,) = (await quiet(sdk.beta.threads.runs.list, thread)).data
    assert run.status == "cancelled"
    openai_emu.model.clear()
    await collect(backend, turn(thread, "[Alice] still there?"))  # the thread is free again


# --- the active-run rule and recovery -------------------------------------------------------------------

async def start_waiting_run(sdk: openai.AsyncOpenAI, emu: OpenAIEmulator, thread: str, assistant_id: str) -> str:
    """A run left waiting for tool outputs (as after a crash mid-tool-call)."""
    emu.model.enqueue(tool_calls=[{"name": "lookup_order", "arguments": {}}])
    run = await quiet(sdk.beta.threads.runs.create, thread, assistant_id=assistant_id,
                      additional_messages=[{"role": "user", "content": "[Zed] orphan"}])
    await async_wait_until(lambda: emu.run(run.id)["status"] == "requires_action")
    return run.id


async def test_an_active_run_is_conversation_locked(backend: AssistantsBackend, openai_emu: OpenAIEmulator,
                                                    sdk: openai.AsyncOpenAI, assistant_id: str) -> None:
    thread = await backend.create_conversation("C1")
    await start_waiting_run(sdk, openai_emu, thread, assistant_id)
    for attempt in (collect(backend, turn(thread, "[Alice] hi")), backend.add_context(thread, ["[Bob] psst"])):
        with pytest.raises(BackendError) as caught:
            await attempt
        error = caught.value
        assert (error.kind, error.code, error.outcome_unknown) == (FailureKind.TRANSIENT, "conversation_locked", True)
    assert user_texts(openai_emu, thread) == ["[Zed] orphan"]


async def test_find_reply_waits_for_a_busy_run_and_frees_an_orphan(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator, sdk: openai.AsyncOpenAI, assistant_id: str) -> None:
    thread = await backend.create_conversation("C1")
    orphan = await start_waiting_run(sdk, openai_emu, thread, assistant_id)
    assert await backend.find_reply(thread, ["[Alice] hi"]) is None
    assert openai_emu.run(orphan)["status"] == "cancelled"
    openai_emu.model.ttft = 0.5
    slow = await quiet(sdk.beta.threads.runs.create, thread, assistant_id=assistant_id)
    with pytest.raises(BackendError) as caught:
        await backend.find_reply(thread, ["[Alice] hi"])
    assert caught.value.code == "conversation_locked" and caught.value.outcome_unknown
    openai_emu.model.ttft = 0
    await async_wait_until(lambda: openai_emu.run(slow.id)["status"] == "completed")


async def test_find_reply_before_and_after_a_turn(backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    assert await backend.find_reply(thread, ["[Alice] hello"]) is None
    first = (await collect(backend, turn(thread, "[Alice] hello")))[-1]
    assert await backend.find_reply(thread, ["[Alice] hello"]) == FoundReply(first.text, first.last_item_id)
    assert await backend.find_reply(thread, ["[Alice] hello"], first.last_item_id) is None
    second = (await collect(backend, turn(thread, "[Bob] one", "[Bob] two")))[-1]
    found = FoundReply(second.text, second.last_item_id)
    assert await backend.find_reply(thread, ["[Bob] one", "[Bob] two"], first.last_item_id) == found
    assert await backend.find_reply(thread, ["[Bob] one", "[Bob] two"], "msg_gone") == found  # ends with them
    assert await backend.find_reply(thread, ["[Bob] two"], first.last_item_id) is None
    assert await backend.find_reply("thread_unknown", ["[Bob] two"]) is None


async def test_a_cut_stream_is_found_once_the_run_completes(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    openai_emu.model.chunk_size, openai_emu.model.chunk_delay = 4, 0.01
    openai_emu.model.enqueue(text="A long answer that is cut off in the middle of its stream.")
    openai_emu.cut_stream_next(after_chars=8, path="/v1/threads/")
    with pytest.raises(BackendError) as caught:
        await collect(backend, turn(thread, "[Alice] tell me"))
    assert (caught.value.code, caught.value.outcome_unknown) == ("stream_cut", True)
    found = None
    for _ in range(200):
        try:
            found = await backend.find_reply(thread, ["[Alice] tell me"])
            break
        except BackendError as error:  # the run goes on without us: wait for it
            assert error.code == "conversation_locked"
            await asyncio.sleep(0.02)
    assert found == FoundReply("A long answer that is cut off in the middle of its stream.",
                               openai_emu.threads[thread][-1]["id"])


async def test_a_run_interrupted_mid_tool_call_is_continued(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    openai_emu.model.enqueue(text="Checking.", tool_calls=[{"name": "current_time", "arguments": {"tz": "UTC"}}])
    stream = backend.stream_turn(turn(thread, "[Alice] time?", tools=[CURRENT_TIME]))
    async for event in stream:
        if isinstance(event, ToolsRunning):
            break  # the process dies while the tool runs
    await stream.aclose()
    found = await backend.find_reply(thread, ["[Alice] time?"])
    assert found is not None and found.text == "Checking." and len(found.pending_calls) == 1
    call = found.pending_calls[0]
    assert call.name == "current_time" and json.loads(call.arguments) == {"tz": "UTC"}
    continued = turn(thread, tools=[CURRENT_TIME], tool_outputs=[ToolOutput(call.call_id, '"noon"')])
    completed = (await collect(backend, continued))[-1]
    assert completed.text == 'Tool current_time returned: "noon"'
    assert user_texts(openai_emu, thread) == ["[Alice] time?"]
    assert await backend.find_reply(thread, ["[Alice] time?"]) == FoundReply(
        f"Checking.\n\n{completed.text}", completed.last_item_id)


async def test_a_continuation_whose_run_stopped_waiting_starts_a_run_without_messages(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator, sdk: openai.AsyncOpenAI) -> None:
    thread = await backend.create_conversation("C1")
    openai_emu.model.enqueue(tool_calls=[{"name": "current_time", "arguments": {"tz": "UTC"}}])
    stream = backend.stream_turn(turn(thread, "[Alice] time?", tools=[CURRENT_TIME]))
    async for event in stream:
        if isinstance(event, ToolsRunning):
            break
    await stream.aclose()
    found = await backend.find_reply(thread, ["[Alice] time?"])
    assert found is not None and len(found.pending_calls) == 1
    (waiting,) = (await quiet(sdk.beta.threads.runs.list, thread)).data
    await quiet(sdk.beta.threads.runs.cancel, waiting.id, thread_id=thread)  # as if it had expired meanwhile
    outputs = [ToolOutput(found.pending_calls[0].call_id, '"noon"')]
    completed = (await collect(backend, turn(thread, tools=[CURRENT_TIME], tool_outputs=outputs)))[-1]
    assert completed.text == "Heard: «[Alice] time?»" and user_texts(openai_emu, thread) == ["[Alice] time?"]
    assert "additional_messages" not in openai_emu.requests(f"/v1/threads/{thread}/runs")[-1].json


async def test_a_failed_run_is_resent_without_its_messages(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    openai_emu.model.reply_length = 40
    first = (await collect(backend, turn(thread, "[Alice] hi")))[-1]
    openai_emu.fail_stream_next(after_chars=10, path="/v1/threads/")
    with pytest.raises(BackendError) as caught:
        await collect(backend, turn(thread, "[Alice] one", "[Bob] two"))
    error = caught.value
    assert (error.kind, error.code, error.outcome_unknown) == (FailureKind.TRANSIENT, "server_error", True)
    assert await backend.find_reply(thread, ["[Alice] one", "[Bob] two"], first.last_item_id) is None
    # the turn runner sends the turn again, with a message that arrived meanwhile
    completed = (await collect(backend, turn(thread, "[Alice] one", "[Bob] two", "[Cy] three")))[-1]
    assert user_texts(openai_emu, thread) == ["[Alice] hi", "[Alice] one", "[Bob] two", "[Cy] three"]
    assert [m["content"] for m in openai_emu.model.seen[-1].input] == ["[Cy] three"]
    assert await backend.find_reply(thread, ["[Alice] one", "[Bob] two", "[Cy] three"], first.last_item_id) \
        == FoundReply(completed.text, completed.last_item_id)


async def test_a_retry_after_a_failed_resend_still_adds_nothing_twice(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    openai_emu.fail_stream_next(after_chars=1, path="/v1/threads/")
    with pytest.raises(BackendError):
        await collect(backend, turn(thread, "[Alice] one"))
    assert await backend.find_reply(thread, ["[Alice] one"]) is None
    openai_emu.fail_next(500, path=f"/v1/threads/{thread}/runs")
    with pytest.raises(BackendError) as caught:  # refused before the run existed, but the message is there
        await collect(backend, turn(thread, "[Alice] one"))
    assert caught.value.outcome_unknown
    assert await backend.find_reply(thread, ["[Alice] one"]) is None
    completed = (await collect(backend, turn(thread, "[Alice] one")))[-1]
    assert user_texts(openai_emu, thread) == ["[Alice] one"]
    assert "additional_messages" not in openai_emu.requests(f"/v1/threads/{thread}/runs")[-1].json
    assert await backend.find_reply(thread, ["[Alice] one"]) == FoundReply(completed.text, completed.last_item_id)


# --- context --------------------------------------------------------------------------------------------

async def test_add_context_joins_the_thread_without_an_answer(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator) -> None:
    thread = await backend.create_conversation("C1")
    last = await backend.add_context(thread, ["[Alice] lunch?", "[Bob] sure"])
    assert user_texts(openai_emu, thread) == ["[Alice] lunch?", "[Bob] sure"]
    assert last == openai_emu.threads[thread][-1]["id"]
    assert not openai_emu.requests(f"/v1/threads/{thread}/runs")
    assert await backend.find_reply(thread, ["[Alice] lunch?", "[Bob] sure"]) == FoundReply("", last)
    completed = (await collect(backend, turn(thread, "[Cy] @Sam where?")))[-1]
    assert [m["content"] for m in openai_emu.model.seen[-1].input] == [
        "[Alice] lunch?", "[Bob] sure", "[Cy] @Sam where?"]
    assert completed.last_item_id == openai_emu.threads[thread][-1]["id"]


async def test_context_cut_short_is_completed_without_duplicates(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator, sdk: openai.AsyncOpenAI) -> None:
    thread = await backend.create_conversation("C1")
    first = (await collect(backend, turn(thread, "[Alice] hi")))[-1]
    await quiet(sdk.beta.threads.messages.create, thread, role="user", content="[Bob] a")  # then a crash
    context = ["[Bob] a", "[Cy] c"]
    assert await backend.find_reply(thread, context, first.last_item_id) is None
    last = await backend.add_context(thread, context)
    assert user_texts(openai_emu, thread) == ["[Alice] hi", "[Bob] a", "[Cy] c"]
    assert await backend.find_reply(thread, context, first.last_item_id) == FoundReply("", last)


@pytest.mark.parametrize(("status", "code", "unknown"), [
    (400, "invalid_value", False),  # refused: nothing was stored
    (500, None, True),  # a 5xx may come after the server stored it (see the lost-answer rows below)
])
async def test_a_failed_context_message_is_reported_unknown_once_others_are_in(
        backend: AssistantsBackend, openai_emu: OpenAIEmulator, status: int, code: str | None,
        unknown: bool) -> None:
    thread = await backend.create_conversation("C1")
    openai_emu.fail_next(status, code, path=f"/v1/threads/{thread}/messages", method="POST")
    with pytest.raises(BackendError) as caught:
        await backend.add_context(thread, ["[Bob] a", "[Cy] c"])
    assert caught.value.outcome_unknown is unknown and user_texts(openai_emu, thread) == []


# --- failures and the rest ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "code", "kind", "unknown"), [
    (429, "rate_limit_exceeded", FailureKind.TRANSIENT, False),
    (500, None, FailureKind.TRANSIENT, True),  # a 5xx may come after the run was made: look before resending
    (401, "invalid_api_key", FailureKind.ACCOUNT, False),
    (429, "insufficient_quota", FailureKind.ACCOUNT, False),
    (400, "invalid_value", FailureKind.REQUEST, False),
])
async def test_refused_runs_are_classified(backend: AssistantsBackend, openai_emu: OpenAIEmulator,
                                           status: int, code: str | None, kind: FailureKind, unknown: bool) -> None:
    thread = await backend.create_conversation("C1")
    await backend.check()  # the assistant is known before the fault
    openai_emu.fail_next(status, code, path=f"/v1/threads/{thread}/runs", times=3)  # (a 429 is resent twice)
    with pytest.raises(BackendError) as caught:
        await collect(backend, turn(thread, "[Alice] hi"))
    assert (caught.value.kind, caught.value.status, caught.value.outcome_unknown) == (kind, status, unknown)
    assert user_texts(openai_emu, thread) == []  # nothing reached the thread: a plain resend is right


async def test_a_thread_that_is_gone(backend: AssistantsBackend) -> None:
    with pytest.raises(BackendError) as caught:
        await collect(backend, turn("thread_gone", "[Alice] hi"))
    assert caught.value.code == CONVERSATION_GONE


async def test_check_names_the_assistant_and_warns_of_the_shutdown(
        backend: AssistantsBackend, assistant_id: str) -> None:
    report = await backend.check()
    assert report == f"assistant {assistant_id} (model {MODEL}) is available — {SHUTDOWN_WARNING}"
    assert "2026-08-26" in report


async def test_check_failures(openai_emu: OpenAIEmulator) -> None:
    missing = make_backend(openai_emu, "asst_missing")
    try:
        with pytest.raises(BackendError) as caught:
            await missing.check()
        assert (caught.value.kind, caught.value.code) == (FailureKind.ACCOUNT, "assistant_not_found")
        openai_emu.set_api_key("sk-rotated")
        with pytest.raises(BackendError) as caught:
            await missing.check()
        assert caught.value.kind is FailureKind.ACCOUNT and caught.value.status == 401
    finally:
        await missing.aclose()


async def test_aclose_closes_the_client(openai_emu: OpenAIEmulator, assistant_id: str) -> None:
    backend = make_backend(openai_emu, assistant_id)
    await backend.aclose()
    assert backend._client.is_closed()
