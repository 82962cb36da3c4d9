"""The `chat` backend against the OpenAI emulator (Chat Completions over SSE, real `openai` client) and a
real SQLite store."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest

from bot.backends.base import (
    NO_FUNCTION,
    BackendError,
    FailureKind,
    TextDelta,
    ToolCall,
    ToolOutput,
    ToolsRunning,
    TurnCompleted,
    TurnEvent,
    TurnRequest,
)
from bot.backends.chat import ChatBackend
from bot.backends.chat_window import message_chars
from bot.store import ChatHistory, ChatRecord, Store
from tests.emulators.openai import OpenAIEmulator

MODEL = "gpt-4.1-mini"
CHAT = "/v1/chat/completions"
GET_TIME = {"name": "get_time", "description": "The time in a zone",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}


def make_backend(emu: OpenAIEmulator, store: Store | ChatHistory, **options: Any) -> ChatBackend:
    client = openai.AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0)
    return ChatBackend(client, model=MODEL, history=store.chat if isinstance(store, Store) else store,
                       **options)


@pytest.fixture
async def backend(openai_emu: OpenAIEmulator, store: Store) -> AsyncIterator[ChatBackend]:
    chat = make_backend(openai_emu, store)
    yield chat
    await chat.aclose()


def turn(conversation_id: str, *said: tuple[str, str], **options: Any) -> TurnRequest:
    return TurnRequest(conversation_id=conversation_id, channel="C1", instructions="Be brief.",
                       messages=[f"[{name}] {text}" for name, text in said],
                       speaker_names=[name for name, _ in said], **options)


async def run(backend: ChatBackend, request: TurnRequest) -> list[TurnEvent]:
    return [event async for event in backend.stream_turn(request)]


async def fail(backend: ChatBackend, request: TurnRequest) -> tuple[BackendError, list[TurnEvent]]:
    events: list[TurnEvent] = []
    with pytest.raises(BackendError) as caught:
        async for event in backend.stream_turn(request):
            events.append(event)
    return caught.value, events


def completed(events: Sequence[TurnEvent]) -> TurnCompleted:
    assert isinstance(events[-1], TurnCompleted)
    assert sum(isinstance(event, TurnCompleted) for event in events) == 1
    return events[-1]


def streamed(events: Sequence[TurnEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


async def stored(store: Store, conversation_id: str) -> list[dict[str, Any]]:
    return [record.message for record in await store.chat.chat_history(conversation_id)]


def chat_bodies(emu: OpenAIEmulator) -> list[dict[str, Any]]:
    return [record.json for record in emu.requests(CHAT)]


class Tools:
    """A tool runner that answers every call with the time, and remembers the calls."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    async def __call__(self, calls: Sequence[ToolCall]) -> list[ToolOutput]:
        self.calls += calls
        return [ToolOutput(call.call_id, json.dumps({"time": "12:00", "args": json.loads(call.arguments)}))
                for call in calls]


# --- turns --------------------------------------------------------------------------------------------

async def test_a_turn_streams_and_stores_its_messages_once(backend: ChatBackend, store: Store,
                                                           openai_emu: OpenAIEmulator) -> None:
    conversation = await backend.create_conversation("C1")
    assert conversation.startswith("chat_") and len(conversation) == len("chat_") + 24
    events = await run(backend, turn(conversation, ("Alice Smith", "hello"), ("Bob", "hi")))

    done = completed(events)
    assert done.text == streamed(events) == "Heard: «Alice_Smith: [Alice Smith] hello» «Bob: [Bob] hi»"
    assert sum(isinstance(event, TextDelta) for event in events) > 1  # it streamed
    assert done.response_id and done.response_id.startswith("chatcmpl-")
    assert done.input_tokens and done.output_tokens
    history = await store.chat.chat_history(conversation)
    assert [record.message for record in history] == [
        {"role": "user", "content": "[Alice Smith] hello", "name": "Alice_Smith"},
        {"role": "user", "content": "[Bob] hi", "name": "Bob"},
        {"role": "assistant", "content": done.text}]
    assert done.last_item_id == str(history[-1].id)
    (body,) = chat_bodies(openai_emu)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "tools" not in body


async def test_the_next_turn_sees_the_conversation_so_far(backend: ChatBackend, store: Store,
                                                          openai_emu: OpenAIEmulator) -> None:
    conversation = await backend.create_conversation("C1")
    first = completed(await run(backend, turn(conversation, ("Alice", "my name is Alice"))))
    second = completed(await run(backend, turn(conversation, ("Bob", "what is her name?"))))

    seen = openai_emu.model.seen[-1]
    assert [message["content"] for message in seen.context] == [
        "Be brief.", "[Alice] my name is Alice", first.text, "[Bob] what is her name?"]
    assert second.text == "Heard: «Bob: [Bob] what is her name?»"
    assert len(await stored(store, conversation)) == 4
    other = await backend.create_conversation("C1")  # a reset: a fresh conversation
    completed(await run(backend, turn(other, ("Carol", "hi"))))
    assert [m["content"] for m in openai_emu.model.seen[-1].context] == ["Be brief.", "[Carol] hi"]


async def test_a_tool_call_round_trip(backend: ChatBackend, store: Store, openai_emu: OpenAIEmulator) -> None:
    openai_emu.model.enqueue("Let me look.", tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC"}}])
    tools = Tools()
    conversation = await backend.create_conversation("C1")
    events = await run(backend, turn(conversation, ("Alice", "what time is it?"), tools=[GET_TIME],
                                     run_tools=tools))

    assert [call.name for call in tools.calls] == ["get_time"]
    assert json.loads(tools.calls[0].arguments) == {"tz": "UTC"}
    assert ToolsRunning(("get_time",)) in events
    done = completed(events)
    output = json.dumps({"time": "12:00", "args": {"tz": "UTC"}})
    assert done.text == streamed(events) == f"Let me look.\n\nTool get_time returned: {output}"
    first, second = openai_emu.model.seen
    assert first.tools == [{"type": "function", "function": GET_TIME}]
    assert [(r.call_id, r.output) for r in second.tool_results] == [(tools.calls[0].call_id, output)]
    call_id = tools.calls[0].call_id
    assert await stored(store, conversation) == [
        {"role": "user", "content": "[Alice] what time is it?", "name": "Alice"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}}]},
        {"role": "tool", "tool_call_id": call_id, "content": output},
        {"role": "assistant", "content": f"Tool get_time returned: {output}"}]
    found = await backend.find_reply(conversation, ["[Alice] what time is it?"], None)
    assert found is not None and found.text == done.text and found.last_item_id == done.last_item_id


async def test_tool_rounds_are_capped_and_the_last_request_has_no_tools(backend: ChatBackend, store: Store,
                                                                          openai_emu: OpenAIEmulator) -> None:
    for _ in range(3):  # the model calls a tool whenever it may
        openai_emu.model.enqueue(tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC"}}],
                                 match=lambda request: bool(request.tools))
    tools = Tools()
    conversation = await backend.create_conversation("C1")
    done = completed(await run(backend, turn(conversation, ("Alice", "time?"), tools=[GET_TIME],
                                             run_tools=tools, max_tool_rounds=2)))

    assert len(tools.calls) == 2
    assert [bool(seen.tools) for seen in openai_emu.model.seen] == [True, True, False]
    assert "tools" not in chat_bodies(openai_emu)[-1]
    assert openai_emu.model.pending == 1
    assert done.text.startswith("Tool get_time returned")
    roles = [m["role"] for m in await stored(store, conversation)]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]


async def test_a_model_that_calls_tools_without_any_stores_nothing(backend: ChatBackend, store: Store,
                                                                   openai_emu: OpenAIEmulator) -> None:
    for _ in range(2):
        openai_emu.model.enqueue(tool_calls=[{"name": "get_time", "arguments": {}}])
    conversation = await backend.create_conversation("C1")
    error, _ = await fail(backend, turn(conversation, ("Alice", "time?"), max_tool_rounds=1))
    assert (error.kind, error.code) == (FailureKind.REQUEST, "tool_rounds")
    assert await stored(store, conversation) == []


async def test_calls_in_the_last_round_are_dropped_when_the_model_also_answered(
        backend: ChatBackend, store: Store, openai_emu: OpenAIEmulator) -> None:
    openai_emu.model.enqueue("Done.", tool_calls=[{"name": "get_time", "arguments": {}}])
    conversation = await backend.create_conversation("C1")
    done = completed(await run(backend, turn(conversation, ("Alice", "time?"), tools=[GET_TIME],
                                             max_tool_rounds=0)))
    assert done.text == "Done."
    assert await stored(store, conversation) == [
        {"role": "user", "content": "[Alice] time?", "name": "Alice"}, {"role": "assistant", "content": "Done."}]


async def test_without_a_tool_runner_every_call_gets_no_function_found(backend: ChatBackend, store: Store,
                                                                       openai_emu: OpenAIEmulator) -> None:
    openai_emu.model.enqueue(tool_calls=[{"name": "get_time", "arguments": {}}, {"name": "lookup", "arguments": {}}])
    conversation = await backend.create_conversation("C1")
    done = completed(await run(backend, turn(conversation, ("Alice", "time?"), tools=[GET_TIME])))
    assert [r.output for r in openai_emu.model.seen[-1].tool_results] == [NO_FUNCTION, NO_FUNCTION]
    assert done.text == f"Tool get_time returned: {NO_FUNCTION} Tool lookup returned: {NO_FUNCTION}"
    assert len(await stored(store, conversation)) == 5


# --- names --------------------------------------------------------------------------------------------

async def test_names_refused_by_the_server_are_dropped_for_good(backend: ChatBackend, store: Store,
                                                                openai_emu: OpenAIEmulator) -> None:
    openai_emu.fail_next(400, "invalid_value", "Invalid 'messages[1].name': string does not match pattern. "
                         "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", path=CHAT)
    conversation = await backend.create_conversation("C1")
    done = completed(await run(backend, turn(conversation, ("Alice", "hello"))))
    completed(await run(backend, turn(conversation, ("Bob", "hi"))))

    assert done.text == "Heard: «[Alice] hello»"  # the speaker is still in the text
    first, retried, later = chat_bodies(openai_emu)
    assert first["messages"][1]["name"] == "Alice"
    assert all("name" not in message for body in (retried, later) for message in body["messages"])
    assert backend.send_names is False
    assert (await stored(store, conversation))[0]["name"] == "Alice"  # kept, for a server that takes it


async def test_other_bad_requests_are_not_retried(backend: ChatBackend, store: Store,
                                                  openai_emu: OpenAIEmulator) -> None:
    openai_emu.fail_next(400, "invalid_value", "Invalid 'messages[1].content': too long.", path=CHAT)
    conversation = await backend.create_conversation("C1")
    error, events = await fail(backend, turn(conversation, ("Alice", "hello")))
    assert (error.kind, error.status, error.outcome_unknown) == (FailureKind.REQUEST, 400, False)
    assert events == [] and len(chat_bodies(openai_emu)) == 1
    assert backend.send_names is True
    assert await stored(store, conversation) == []


async def test_send_names_off_from_the_start(openai_emu: OpenAIEmulator, store: Store) -> None:
    backend = make_backend(openai_emu, store, send_names=False)
    try:
        conversation = await backend.create_conversation("C1")
        completed(await run(backend, turn(conversation, ("Alice", "hello"))))
    finally:
        await backend.aclose()
    (body,) = chat_bodies(openai_emu)
    assert all("name" not in message for message in body["messages"])


# --- failures -----------------------------------------------------------------------------------------

async def test_a_server_error_stores_nothing(backend: ChatBackend, store: Store,
                                             openai_emu: OpenAIEmulator) -> None:
    openai_emu.fail_next(500, path=CHAT)
    conversation = await backend.create_conversation("C1")
    error, events = await fail(backend, turn(conversation, ("Alice", "hello")))
    assert (error.kind, error.status, error.outcome_unknown) == (FailureKind.TRANSIENT, 500, False)
    assert events == []
    assert await stored(store, conversation) == []


async def test_a_cut_stream_stores_nothing_and_the_turn_can_be_sent_again(backend: ChatBackend, store: Store,
                                                                          openai_emu: OpenAIEmulator) -> None:
    openai_emu.model.reply_length, openai_emu.model.chunk_size = 200, 5
    openai_emu.cut_stream_next(after_chars=30, path=CHAT)
    conversation = await backend.create_conversation("C1")
    request = turn(conversation, ("Alice", "hello"))
    error, events = await fail(backend, request)

    assert (error.kind, error.code, error.outcome_unknown) == (FailureKind.TRANSIENT, "stream_cut", True)
    assert streamed(events)  # part of the answer had been shown
    assert await stored(store, conversation) == []
    assert await backend.find_reply(conversation, request.messages, None) is None
    done = completed(await run(backend, request))
    assert len(done.text) == 200
    assert [m["role"] for m in await stored(store, conversation)] == ["user", "assistant"]


async def test_a_failure_reported_inside_the_stream(backend: ChatBackend, store: Store,
                                                    openai_emu: OpenAIEmulator) -> None:
    openai_emu.model.reply_length = 100
    openai_emu.fail_stream_next(after_chars=10, path=CHAT)
    conversation = await backend.create_conversation("C1")
    error, _ = await fail(backend, turn(conversation, ("Alice", "hello")))
    assert (error.kind, error.code) == (FailureKind.TRANSIENT, "server_error")
    assert await stored(store, conversation) == []


async def test_a_failure_in_a_later_round_stores_nothing(backend: ChatBackend, store: Store,
                                                         openai_emu: OpenAIEmulator) -> None:
    openai_emu.model.enqueue(tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC"}}])
    tools = Tools()

    async def run_tools_then_break(calls: Sequence[ToolCall]) -> list[ToolOutput]:
        openai_emu.fail_next(503, path=CHAT)  # the request that sends the results fails
        return await tools(calls)

    conversation = await backend.create_conversation("C1")
    error, events = await fail(backend, turn(conversation, ("Alice", "time?"), tools=[GET_TIME],
                                             run_tools=run_tools_then_break))
    assert (error.kind, error.status) == (FailureKind.TRANSIENT, 503)
    assert len(tools.calls) == 1 and ToolsRunning(("get_time",)) in events
    assert len(chat_bodies(openai_emu)) == 2
    assert await stored(store, conversation) == []


async def test_rate_limits_and_quota(backend: ChatBackend, openai_emu: OpenAIEmulator) -> None:
    conversation = await backend.create_conversation("C1")
    openai_emu.fail_next(429, retry_after=3, path=CHAT)
    error, _ = await fail(backend, turn(conversation, ("Alice", "hello")))
    assert (error.kind, error.retry_after) == (FailureKind.TRANSIENT, 3.0)
    openai_emu.fail_next(429, "insufficient_quota", path=CHAT)
    error, _ = await fail(backend, turn(conversation, ("Alice", "hello")))
    assert error.kind is FailureKind.ACCOUNT


# --- recovery and context -----------------------------------------------------------------------------

async def test_find_reply_before_and_after_a_turn(backend: ChatBackend) -> None:
    conversation = await backend.create_conversation("C1")
    first = turn(conversation, ("Alice", "one"))
    assert await backend.find_reply(conversation, first.messages, None) is None
    done = completed(await run(backend, first))
    found = await backend.find_reply(conversation, first.messages, None)
    assert found is not None and (found.text, found.last_item_id) == (done.text, done.last_item_id)
    assert found.pending_calls == ()

    second = turn(conversation, ("Bob", "two"), ("Carol", "three"))
    assert await backend.find_reply(conversation, second.messages, done.last_item_id) is None
    again = completed(await run(backend, second))
    found = await backend.find_reply(conversation, second.messages, done.last_item_id)
    assert found is not None and (found.text, found.last_item_id) == (again.text, again.last_item_id)
    assert await backend.find_reply(conversation, second.messages, again.last_item_id) is None
    assert await backend.find_reply(conversation, [], None) is None


async def test_context_joins_the_conversation_without_an_answer(backend: ChatBackend, store: Store,
                                                                openai_emu: OpenAIEmulator) -> None:
    conversation = await backend.create_conversation("C1")
    last = await backend.add_context(conversation, ["[Alice Smith] lunch at noon", "[Bob] ok"])
    assert openai_emu.requests(CHAT) == []
    history = await store.chat.chat_history(conversation)
    assert last == str(history[-1].id)
    assert [record.message for record in history] == [
        {"role": "user", "content": "[Alice Smith] lunch at noon", "name": "Alice_Smith"},
        {"role": "user", "content": "[Bob] ok", "name": "Bob"}]
    found = await backend.find_reply(conversation, ["[Alice Smith] lunch at noon", "[Bob] ok"], None)
    assert found is not None and (found.text, found.last_item_id) == ("", last)

    completed(await run(backend, turn(conversation, ("Carol", "when is lunch?"))))
    seen = openai_emu.model.seen[-1]
    assert [m["content"] for m in seen.context[1:]] == [
        "[Alice Smith] lunch at noon", "[Bob] ok", "[Carol] when is lunch?"]
    assert await backend.add_context(conversation, []) is None


# --- trimming -----------------------------------------------------------------------------------------

async def test_history_is_trimmed_to_the_budget_keeping_the_newest(openai_emu: OpenAIEmulator,
                                                                   store: Store) -> None:
    openai_emu.model.usage = False  # no calibration: 4 characters per token
    backend = make_backend(openai_emu, store, context_tokens=300)  # 1,200 characters
    try:
        conversation = await backend.create_conversation("C1")
        for n in range(8):
            completed(await run(backend, turn(conversation, ("Alice", f"message {n} " + "x" * 150))))
    finally:
        await backend.aclose()

    full = await stored(store, conversation)
    context = openai_emu.model.seen[-1].context
    history = context[1:-1]
    assert history and len(history) < len(full) - 2
    assert history == full[-2 - len(history):-2]  # the newest messages before this turn's
    assert history[-1]["role"] == "assistant"
    assert sum(message_chars(message) for message in context) <= 1200


class WindowSpy(ChatHistory):
    """The store's chat history, noting the role that opens each window of history it hands out."""

    window_starts: list[str]

    async def chat_history(self, conversation_id: str, *, max_chars: int | None = None) -> list[ChatRecord]:
        records = await super().chat_history(conversation_id, max_chars=max_chars)
        if max_chars is not None and records:
            self.window_starts.append(records[0].message["role"])
        return records


async def test_trimming_never_separates_tool_calls_from_their_results(openai_emu: OpenAIEmulator,
                                                                      tmp_path: Path) -> None:
    openai_emu.model.usage = False
    spied = await Store.open(tmp_path / "spy.sqlite3")
    spy = WindowSpy(spied.db)
    spy.window_starts = []
    backend = make_backend(openai_emu, spy, context_tokens=250)
    tools = Tools()
    try:
        conversation = await backend.create_conversation("C1")
        for n in range(10):  # the emulator refuses a call without its result (and vice versa) with a 400
            openai_emu.model.enqueue(tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC" * n}}])
            completed(await run(backend, turn(conversation, ("Alice", "time?" + "!" * (n * 7)),
                                              tools=[GET_TIME], run_tools=tools)))
    finally:
        await backend.aclose()
        await spied.close()
    assert "tool" in spy.window_starts  # the store's window did cut between calls and results …
    sent_starts = [seen.context[1]["role"] for seen in openai_emu.model.seen if len(seen.context) > 2]
    assert "tool" not in sent_starts and len(set(sent_starts)) > 1  # … and what was sent never did


async def test_the_estimate_follows_the_servers_token_counts(openai_emu: OpenAIEmulator, store: Store) -> None:
    backend = make_backend(openai_emu, store)
    try:
        conversation = await backend.create_conversation("C1")
        assert backend.chars_per_token == 4.0
        openai_emu.model.usage = {"input_tokens": 10, "output_tokens": 5}
        completed(await run(backend, turn(conversation, ("Alice", "hello " * 10))))
        sent = sum(message_chars(m) for m in chat_bodies(openai_emu)[-1]["messages"])
        assert backend.chars_per_token == pytest.approx(min(sent / 10, 8.0))
        openai_emu.model.usage = {"input_tokens": 10_000, "output_tokens": 5}
        done = completed(await run(backend, turn(conversation, ("Alice", "again"))))
        assert backend.chars_per_token == 1.5  # clamped
        assert (done.input_tokens, done.output_tokens) == (10_000, 5)
    finally:
        await backend.aclose()


# --- check --------------------------------------------------------------------------------------------

async def test_check(openai_emu: OpenAIEmulator, store: Store) -> None:
    backend = make_backend(openai_emu, store)
    missing = ChatBackend(openai.AsyncOpenAI(base_url=openai_emu.base_url, api_key=openai_emu.api_key,
                                             max_retries=0), model="llama-nope", history=store.chat)
    wrong_key = ChatBackend(openai.AsyncOpenAI(base_url=openai_emu.base_url, api_key="sk-wrong", max_retries=0),
                            model=MODEL, history=store.chat)
    try:
        assert await backend.check() == f"model {MODEL} is available (Chat Completions at {openai_emu.base_url}/)"
        with pytest.raises(BackendError) as caught:
            await missing.check()
        assert (caught.value.kind, caught.value.code) == (FailureKind.ACCOUNT, "model_not_found")
        assert "llama-nope" in caught.value.message
        with pytest.raises(BackendError) as caught:
            await wrong_key.check()
        assert caught.value.kind is FailureKind.ACCOUNT
    finally:
        for chat in (backend, missing, wrong_key):
            await chat.aclose()


async def test_a_long_conversation_keeps_its_prompt_prefix_cached(openai_emu: OpenAIEmulator, store: Store) -> None:
    """Past the history budget, the history sent starts at the same message for several turns (not one
    message later every turn), so the server's prompt cache keeps serving the prefix; the per-turn note
    comes after the history and `prompt_cache_key` names the channel."""
    openai_emu.model.reply_length = 400
    backend = make_backend(openai_emu, store, context_tokens=3000)
    speakers = ("Alice", "Bob", "Carol")
    try:
        conversation = await backend.create_conversation("C1")
        for number in range(30):
            name = speakers[number % 3]
            request = turn(conversation, (name, f"message {number}: " + "words " * 100),
                           note=f"Please address the user as {name}. Today is day {number}.")
            completed(await run(backend, request))
    finally:
        await backend.aclose()
    seen = openai_emu.model.seen
    assert len(seen) == 30 and all(body.get("prompt_cache_key") == "slack-C1" for body in chat_bodies(openai_emu))
    assert sum(s.input_tokens for s in seen[:12]) < 3000 * 12  # (the budget was reached: the window moved)
    later = seen[5:]
    cached = sum(s.cached_tokens for s in later) / sum(s.input_tokens for s in later)
    assert cached >= 0.6, [(s.input_tokens, s.cached_tokens) for s in seen]
    assert sum(1 for s in later if s.cached_tokens) >= 0.75 * len(later)


# --- safety_identifier --------------------------------------------------------------------------------

async def test_safety_identifier_is_sent_and_dropped_for_good_where_refused(backend: ChatBackend,
                                                                            openai_emu: OpenAIEmulator) -> None:
    conversation = await backend.create_conversation("C1")
    request = dataclasses.replace(turn(conversation, ("Alice", "hello")), safety_identifier="a1b2c3")
    completed(await run(backend, request))
    openai_emu.fail_next(400, "invalid_request_error", "Unrecognized request argument supplied: safety_identifier",
                         path=CHAT)  # (what an OpenAI-compatible server without the field answers)
    completed(await run(backend, request))
    completed(await run(backend, request))
    sent = [body.get("safety_identifier") for body in chat_bodies(openai_emu)]
    assert sent == ["a1b2c3", "a1b2c3", None, None]  # refused once: asked again without it, never sent again
    assert all(body.get("prompt_cache_key") == "slack-C1" for body in chat_bodies(openai_emu))
