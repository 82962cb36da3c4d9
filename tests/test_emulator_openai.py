"""Fidelity tests of the OpenAI emulator, driven by the real `openai` client over real sockets.

Every test runs the emulator with `self_check=True`, so its own answers and stream events are
validated against the official spec too (asserted empty at teardown).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import httpx2
import openai
import pytest
from openai import AsyncAssistantEventHandler

from tests.emulators.openai import ModelRequest, OpenAIEmulator
from tests.emulators.openai.spec_check import spec_checker
from tests.emulators.server import async_wait_until

MODEL = "gpt-4.1-mini"
GET_TIME = {"type": "function", "name": "get_time", "description": "Current time in a zone",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"],
                           "additionalProperties": False}, "strict": True}
CHAT_GET_TIME = {"type": "function", "function": {"name": "get_time", "description": "Current time",
                                                  "parameters": {"type": "object",
                                                                 "properties": {"tz": {"type": "string"}}}}}


@pytest.fixture
def emu(openai_factory: Callable[..., OpenAIEmulator]) -> OpenAIEmulator:
    emulator = openai_factory(self_check=True)
    yield emulator
    assert emulator.self_violations == []


@pytest.fixture
async def client(emu: OpenAIEmulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0) as c:
        yield c


def user(text: str) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "input_text", "text": text}]}


# -- models ------------------------------------------------------------------------------------------
async def test_models_list_and_retrieve(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    listed = [m.id async for m in await client.models.list()]
    assert MODEL in listed
    model = await client.models.retrieve(MODEL)
    assert (model.id, model.object) == (MODEL, "model")
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("gpt-nope")
    assert caught.value.code == "model_not_found"
    assert "The model `gpt-nope` does not exist" in caught.value.body["message"]


# -- conversations -----------------------------------------------------------------------------------
async def test_conversation_lifecycle_and_item_pagination(client: openai.AsyncOpenAI) -> None:
    conv = await client.conversations.create(metadata={"channel": "C1"}, items=[user("first")])
    assert conv.id.startswith("conv_") and conv.object == "conversation" and conv.metadata == {"channel": "C1"}
    added = await client.conversations.items.create(conv.id, items=[user(f"m{i}") for i in range(4)])
    assert [i.type for i in added.data] == ["message"] * 4 and added.first_id == added.data[0].id

    page = await client.conversations.items.list(conv.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["first", "m0"] and page.has_more
    everything = [i.content[0].text async for i in client.conversations.items.list(conv.id, limit=2, order="asc")]
    assert everything == ["first", "m0", "m1", "m2", "m3"]
    newest = await client.conversations.items.list(conv.id, limit=1)  # default order: desc
    assert newest.data[0].content[0].text == "m3"

    one = await client.conversations.items.retrieve(newest.data[0].id, conversation_id=conv.id)
    assert one.role == "user" and one.status == "completed"
    await client.conversations.items.delete(one.id, conversation_id=conv.id)
    updated = await client.conversations.update(conv.id, metadata={"channel": "C2"})
    assert updated.metadata == {"channel": "C2"}
    assert (await client.conversations.retrieve(conv.id)).id == conv.id
    deleted = await client.conversations.delete(conv.id)
    assert deleted.deleted and deleted.id == conv.id
    with pytest.raises(openai.NotFoundError) as caught:
        await client.conversations.retrieve(conv.id)
    assert caught.value.body == {"message": f"Conversation with id '{conv.id}' not found.",
                                 "type": "invalid_request_error", "param": None, "code": None}


# -- responses ---------------------------------------------------------------------------------------
async def test_response_sees_history_and_appends_on_completion(client: openai.AsyncOpenAI,
                                                              emu: OpenAIEmulator) -> None:
    conv = await client.conversations.create(items=[user("Zed: earlier")])
    resp = await client.responses.create(model=MODEL, conversation=conv.id, instructions="Be brief.",
                                         input=[user("Alice: hello"), {"role": "user", "content": "Bob: hi"}])
    assert resp.output_text == "Heard: «Alice: hello» «Bob: hi»"
    assert resp.status == "completed" and resp.conversation.id == conv.id and resp.usage.total_tokens > 0
    seen = emu.model.seen[-1]
    assert seen.endpoint == "responses" and seen.conversation_id == conv.id and seen.instructions == "Be brief."
    assert [i["content"][0]["text"] for i in seen.context] == ["Zed: earlier", "Alice: hello", "Bob: hi"]
    items = emu.conversation_items(conv.id)
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        ("user", "Zed: earlier"), ("user", "Alice: hello"), ("user", "Bob: hi"),
        ("assistant", "Heard: «Alice: hello» «Bob: hi»")]
    assert "Be brief." not in json.dumps(items)  # instructions are never stored
    again = await client.responses.retrieve(resp.id)
    assert again.output_text == resp.output_text


async def test_streamed_response_event_sequence(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.model.chunk_size = 5
    conv = await client.conversations.create()
    stream = await client.responses.create(model=MODEL, conversation=conv.id, input="Carol: hey", stream=True)
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 2 and all(len(d.delta) <= 5 and d.logprobs == [] for d in deltas)
    assert "".join(d.delta for d in deltas) == "Heard: «Carol: hey»" == events[-1].response.output_text
    assert events[-1].response.usage.output_tokens > 0


async def test_stream_helper_returns_final_response(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    conv = await client.conversations.create()
    async with client.responses.stream(model=MODEL, conversation=conv.id, input=[user("Dan: yo")]) as stream:
        texts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(texts) == final.output_text == "Heard: «Dan: yo»"
    assert len(emu.conversation_items(conv.id)) == 2


async def test_items_join_the_conversation_only_when_the_response_completes(
        client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.model.chunk_size, emu.model.chunk_delay = 2, 0.02
    conv = await client.conversations.create()
    mid_stream = None
    async with client.responses.stream(model=MODEL, conversation=conv.id, input="Eve: slow one") as stream:
        async for event in stream:
            if event.type == "response.output_text.delta" and mid_stream is None:
                mid_stream = emu.conversation_items(conv.id)
    assert mid_stream == []
    assert [i["role"] for i in emu.conversation_items(conv.id)] == ["user", "assistant"]


async def test_second_response_on_a_busy_conversation_is_locked(client: openai.AsyncOpenAI,
                                                               emu: OpenAIEmulator) -> None:
    emu.model.ttft = 0.3
    busy, other = await client.conversations.create(), await client.conversations.create()
    first = asyncio.create_task(client.responses.create(model=MODEL, conversation=busy.id, input="Ann: one"))
    await async_wait_until(lambda: len(emu.model.seen) == 1)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, conversation={"id": busy.id}, input="Ben: two")
    assert caught.value.code == "conversation_locked" and caught.value.param == "conversation"
    assert caught.value.body["message"].startswith("Another process is currently operating on this conversation.")
    elsewhere = await client.responses.create(model=MODEL, conversation=other.id, input="Cid: three")
    assert elsewhere.status == "completed"
    assert (await first).output_text == "Heard: «Ann: one»"
    assert emu.max_concurrent_per_conversation == 2
    assert [i["content"][0]["text"] for i in emu.conversation_items(busy.id)] == ["Ann: one", "Heard: «Ann: one»"]


async def test_function_call_roundtrip(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.model.enqueue(tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC"}}])
    conv = await client.conversations.create()
    async with client.responses.stream(model=MODEL, conversation=conv.id, input="Fay: time?",
                                       tools=[GET_TIME]) as stream:
        arg_deltas = [e.delta async for e in stream if e.type == "response.function_call_arguments.delta"]
        first = await stream.get_final_response()
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_time" and call.id.startswith("fc_")
    assert json.loads(call.arguments) == {"tz": "UTC"} == json.loads("".join(arg_deltas))
    assert emu.model.seen[-1].tools[0]["name"] == "get_time"

    with pytest.raises(openai.BadRequestError) as caught:  # moving on without the tool's output
        await client.responses.create(model=MODEL, conversation=conv.id, input="Fay: well?")
    assert caught.value.body["message"] == f"No tool output found for function call {call.call_id}."

    second = await client.responses.create(model=MODEL, conversation=conv.id, tools=[GET_TIME], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"time": "12:00"}'}])
    assert second.output_text == 'Tool get_time returned: {"time": "12:00"}'
    assert [i["type"] for i in emu.conversation_items(conv.id)] == [
        "message", "function_call", "function_call_output", "message"]
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input=[
            {"type": "function_call_output", "call_id": "call_unknown", "output": "x"}])
    assert "No tool call found for function call output with call_id call_unknown." in caught.value.body["message"]


async def test_previous_response_id_chains_context(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    first = await client.responses.create(model=MODEL, input="Gus: one")
    await client.responses.create(model=MODEL, input="Gus: two", previous_response_id=first.id)
    texts = [i["content"][0]["text"] for i in emu.model.seen[-1].context]
    assert texts == ["Gus: one", "Heard: «Gus: one»", "Gus: two"]
    conv = await client.conversations.create()
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input="x", previous_response_id=first.id, conversation=conv.id)
    assert caught.value.code == "mutually_exclusive_parameters"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="gpt-nope", input="x")
    assert caught.value.body["message"] == "The requested model 'gpt-nope' does not exist."


async def test_scripted_steps_match_and_knobs(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    a, b = await client.conversations.create(), await client.conversations.create()
    emu.model.enqueue("only for b", match=lambda req: req.conversation_id == b.id)
    assert (await client.responses.create(model=MODEL, conversation=a.id, input="x")).output_text == "Heard: «x»"
    assert (await client.responses.create(model=MODEL, conversation=b.id, input="y")).output_text == "only for b"
    emu.model.reply_length = 120
    padded = (await client.responses.create(model=MODEL, input="z")).output_text
    assert len(padded) == 120 and padded.startswith("Heard: «z» and the assistant")
    emu.model.reply_length = None
    emu.model.reply_fn = lambda req: f"{len(req.context)} items"
    assert (await client.responses.create(model=MODEL, input="w")).output_text == "1 items"
    emu.model.reply_fn, emu.model.ttft = None, 0.25
    started = time.monotonic()
    await client.responses.create(model=MODEL, input="v")
    assert time.monotonic() - started >= 0.25


async def test_hosted_tools_and_hints_are_accepted(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    resp = await client.responses.create(
        model=MODEL, input="Hal: search", tools=[GET_TIME, {"type": "web_search"}],
        tool_choice="auto", truncation="auto", safety_identifier="u-hash", prompt_cache_key="C123",
        metadata={"channel": "C123"}, max_output_tokens=500, store=True)
    assert resp.safety_identifier == "u-hash" and resp.prompt_cache_key == "C123"
    assert [t["type"] for t in emu.model.seen[-1].tools] == ["function", "web_search"]


# -- chat completions --------------------------------------------------------------------------------
async def test_chat_completion_with_names_and_usage(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    done = await client.chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "Be kind."}, {"role": "user", "content": "old", "name": "zed"},
        {"role": "assistant", "content": "ok"}, {"role": "user", "content": "hello", "name": "alice"},
        {"role": "user", "content": "hi", "name": "bob"}])
    assert done.choices[0].message.content == "Heard: «alice: hello» «bob: hi»"
    assert done.choices[0].finish_reason == "stop" and done.usage.total_tokens > 0
    assert emu.model.seen[-1].instructions == "Be kind." and len(emu.model.seen[-1].context) == 5


async def test_chat_stream_tool_calls_then_results_with_usage(client: openai.AsyncOpenAI,
                                                             emu: OpenAIEmulator) -> None:
    emu.model.enqueue(tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC"}}])
    messages: list[dict[str, object]] = [{"role": "user", "content": "time?", "name": "alice"}]
    stream = await client.chat.completions.create(model=MODEL, messages=messages, tools=[CHAT_GET_TIME],
                                                  stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    head = chunks[1].choices[0].delta.tool_calls[0]
    args = "".join(c.choices[0].delta.tool_calls[0].function.arguments for c in chunks[1:-2])
    assert (head.index, head.function.name) == (0, "get_time") and json.loads(args) == {"tz": "UTC"}

    messages += [{"role": "assistant", "content": None, "tool_calls": [
        {"id": head.id, "type": "function", "function": {"name": "get_time", "arguments": args}}]},
        {"role": "tool", "tool_call_id": head.id, "content": "12:00"}]
    async with client.chat.completions.stream(model=MODEL, messages=messages, tools=[CHAT_GET_TIME]) as helper:
        final = await helper.get_final_completion()
    assert final.choices[0].message.content == "Tool get_time returned: 12:00"
    with pytest.raises(openai.BadRequestError) as caught:  # a tool call left unanswered
        await client.chat.completions.create(model=MODEL, messages=messages[:2] + [{"role": "user", "content": "?"}])
    assert "did not have response messages: " + head.id in caught.value.body["message"]


# -- assistants (legacy) -----------------------------------------------------------------------------
class Collect(AsyncAssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.events: list[str] = []

    async def on_event(self, event) -> None:  # type: ignore[no-untyped-def]
        self.events.append(event.event)

    async def on_text_delta(self, delta, snapshot) -> None:  # type: ignore[no-untyped-def]
        self.text += delta.value or ""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the Assistants API is deprecated (and shut down)
async def test_assistants_streamed_run_with_tool_outputs(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    assistant = await client.beta.assistants.create(model=MODEL, instructions="You help.", tools=[CHAT_GET_TIME])
    assert (await client.beta.assistants.retrieve(assistant.id)).instructions == "You help."
    thread = await client.beta.threads.create()
    await client.beta.threads.messages.create(thread.id, role="user", content="hello", metadata={"nick": "ann"})
    emu.model.enqueue(tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC"}}])
    handler = Collect()
    async with client.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id=assistant.id, additional_instructions="Address ann.",
            additional_messages=[{"role": "user", "content": "what time is it?"}], event_handler=handler) as h:
        await h.until_done()
    run = handler.current_run
    assert run.status == "requires_action" and handler.events[:3] == [
        "thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert emu.model.seen[-1].instructions == "You help.\nAddress ann."
    assert [m["content"] for m in emu.model.seen[-1].input] == ["hello", "what time is it?"]
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    with pytest.raises(openai.BadRequestError) as caught:
        await client.beta.threads.messages.create(thread.id, role="user", content="too soon")
    assert caught.value.body["message"] == f"Can't add messages to {thread.id} while a run {run.id} is active."

    second = Collect()
    async with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "12:00"}],
            event_handler=second) as h:
        await h.until_done()
    assert second.text == "Tool get_time returned: 12:00" and second.current_run.status == "completed"
    assert "thread.message.delta" in second.events and second.events[-1] == "thread.run.completed"
    listed = await client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.role for m in listed.data] == ["user", "user", "assistant"]
    assert listed.data[-1].content[0].text.value == "Tool get_time returned: 12:00"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_assistants_active_run_rule(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    assistant = await client.beta.assistants.create(model=MODEL, instructions="Base.")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    emu.model.ttft = 0.3
    run = await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, instructions="Override.")
    assert run.status == "queued"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.beta.threads.messages.create(thread.id, role="user", content="again")
    assert caught.value.body["message"] == f"Can't add messages to {thread.id} while a run {run.id} is active."
    assert caught.value.code is None and caught.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert caught.value.body["message"] == f"Thread {thread.id} already has an active run {run.id}."
    emu.model.ttft = 0
    finished = await client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=20)
    assert finished.status == "completed" and finished.usage.total_tokens > 0
    assert emu.model.seen[-1].instructions == "Override."
    await client.beta.threads.messages.create(thread.id, role="user", content="now fine")
    assert emu.max_concurrent_per_thread == 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_assistants_polled_run_with_tools_and_cancel(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    assistant = await client.beta.assistants.create(model=MODEL, instructions="i", tools=[CHAT_GET_TIME])
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "time?"}])
    emu.model.enqueue(tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC"}}])
    run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                         poll_interval_ms=20)
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    with pytest.raises(openai.BadRequestError):  # every call needs its output
        await client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread.id, tool_outputs=[])
    done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "noon"}],
        poll_interval_ms=20)
    assert done.status == "completed"
    steps = await client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc")
    assert [s.type for s in steps.data] == ["tool_calls", "message_creation"]
    assert steps.data[0].step_details.tool_calls[0].function.output == "noon"

    emu.model.ttft = 5
    slow = await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    await async_wait_until(lambda: emu.run(slow.id)["status"] == "in_progress")
    assert (await client.beta.threads.runs.cancel(slow.id, thread_id=thread.id)).status == "cancelling"
    emu.model.ttft = 0
    finished = await client.beta.threads.runs.poll(slow.id, thread_id=thread.id, poll_interval_ms=20)
    assert finished.status == "cancelled"
    await client.beta.threads.messages.create(thread.id, role="user", content="free again")


# -- faults ------------------------------------------------------------------------------------------
async def test_error_faults_map_to_sdk_exceptions(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model=MODEL, input="x")
    emu.fail_next(429, "rate_limit_exceeded", retry_after=2)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.responses.create(model=MODEL, input="x")
    assert caught.value.code == "rate_limit_exceeded" and caught.value.type == "tokens"
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.response.headers["retry-after-ms"] == "2000"
    emu.fail_next(429, "insufficient_quota", path="/v1/chat/completions")
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "insufficient_quota" and "exceeded your current quota" in caught.value.body["message"]
    emu.fail_next(404, "model_not_found")
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=MODEL, input="x")
    assert (await client.responses.create(model=MODEL, input="ok")).status == "completed"


async def test_rotated_key_is_refused(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.set_api_key("sk-rotated-key-123456")
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.models.list()
    assert caught.value.code == "invalid_api_key"
    assert caught.value.body["message"].startswith("Incorrect API key provided: sk-********. You can find")
    emu.set_api_key(emu.api_key)
    await client.models.list()


async def test_sdk_retry_honours_retry_after(emu: OpenAIEmulator) -> None:
    emu.fail_next(429, "rate_limit_exceeded", retry_after=0.4)
    async with openai.AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=1) as retrying:
        resp = await retrying.responses.create(model=MODEL, input="again")
    assert resp.status == "completed"
    first, second = emu.requests("/v1/responses")
    assert (first.status, second.status) == (429, 200)
    assert second.time_received - first.time_done >= 0.35
    assert second.headers.get("x-stainless-retry-count") == "1"


async def test_cut_stream(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.model.chunk_size = 4
    emu.model.reply_length = 200
    conv = await client.conversations.create()
    emu.cut_stream_next(after_chars=20)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        stream = await client.responses.create(model=MODEL, conversation=conv.id, input="Ida: go", stream=True)
        async for event in stream:
            received.append(event.type)
    assert "response.output_text.delta" in received and "response.completed" not in received
    assert emu.conversation_items(conv.id) == []  # nothing committed
    emu.model.reply_length = None
    after = await client.responses.create(model=MODEL, conversation=conv.id, input="Ida: again")
    assert after.status == "completed"  # and the conversation is not left locked


async def test_failed_stream_reports_response_failed(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    conv = await client.conversations.create()
    emu.fail_stream_next(after_chars=5)
    stream = await client.responses.create(model=MODEL, conversation=conv.id, input="Jo: hi", stream=True)
    events = [e async for e in stream]
    error, failed = events[-2], events[-1]
    assert error.type == "error" and error.code == "server_error"
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error.code == "server_error" and "request ID req_" in failed.response.error.message
    assert emu.conversation_items(conv.id) == []


async def test_failed_stream_through_the_stream_helper(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.fail_stream_next(after_chars=3)
    async with client.responses.stream(model=MODEL, input="x") as stream:
        types = [e.type async for e in stream]
        with pytest.raises(RuntimeError, match="response.completed"):  # what the SDK does on response.failed
            await stream.get_final_response()
    assert types[-2:] == ["error", "response.failed"]


async def test_chat_stream_faults(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.model.reply_length, emu.model.chunk_size = 100, 3
    messages = [{"role": "user", "content": "x"}]
    emu.cut_stream_next(after_chars=10)
    with pytest.raises(openai.APIConnectionError):
        async for _ in await client.chat.completions.create(model=MODEL, messages=messages, stream=True):
            pass
    emu.fail_stream_next(after_chars=10)
    with pytest.raises(openai.APIError, match="The server had an error"):  # an in-band {"error": …} chunk
        async for _ in await client.chat.completions.create(model=MODEL, messages=messages, stream=True):
            pass


async def test_chat_names_must_match_the_platform_pattern(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x",
                                                                     "name": "Alice Smith"}])
    assert caught.value.body == {
        "message": "Invalid 'messages[0].name': string does not match pattern. Expected a string that matches "
                   "the pattern '^[a-zA-Z0-9_-]+$'.",
        "type": "invalid_request_error", "param": "messages[0].name", "code": "invalid_value"}
    assert "[platform_rule]" in emu.violations[0]
    emu.clear_violations()


async def test_conversation_items_cannot_be_added_mid_response(client: openai.AsyncOpenAI,
                                                              emu: OpenAIEmulator) -> None:
    emu.model.ttft = 0.3
    conv = await client.conversations.create()
    pending = asyncio.create_task(client.responses.create(model=MODEL, conversation=conv.id, input="x"))
    await async_wait_until(lambda: len(emu.model.seen) == 1)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.conversations.items.create(conv.id, items=[user("y")])
    assert caught.value.code == "conversation_locked"
    await pending


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_assistants_stream_faults(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.model.reply_length, emu.model.chunk_size, emu.model.chunk_delay = 60, 3, 0.005
    assistant = await client.beta.assistants.create(model=MODEL, instructions="i")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    emu.cut_stream_next(after_chars=10)
    with pytest.raises((openai.APIConnectionError, httpx2.TransportError)):  # the SDK lets httpx2's error out
        async with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            await stream.until_done()
    (run,) = (await client.beta.threads.runs.list(thread.id)).data
    assert run.status in ("in_progress", "completed")  # a run is a server-side job: it goes on without us
    assert (await client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=20)).status \
        == "completed"
    emu.fail_stream_next(after_chars=10)
    async with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        await stream.until_done()
        failed = stream.current_run
    assert failed.status == "failed" and failed.last_error.code == "server_error"
    await client.beta.threads.messages.create(thread.id, role="user", content="the thread is free again")


async def test_delay_knob(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.delay_next(0.3, path="/v1/models")
    started = time.monotonic()
    await client.models.list()
    assert time.monotonic() - started >= 0.3
    recorded = emu.requests("/v1/models")[-1]
    assert recorded.time_done - recorded.time_received >= 0.3 and recorded.status == 200


# -- spec checking -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("extra_at", "flagged"), [
    (None, []),
    ("item", ["input[1].bogus"]),
    ("part", ["input[1].content[0].bogus"]),
    ("output", ["input[2].bogus"]),
    ("tool", ["tools[0].bogus"]),
])
def test_unknown_parameters_are_found_in_the_union_branch_an_item_belongs_to(extra_at: str | None,
                                                                            flagged: list[str]) -> None:
    # (the checker rules out a union's branches whose `type` or `role` enum leaves the item's value out
    # instead of validating each: what it finds must be what validating every branch finds)
    body = {"model": MODEL, "conversation": "conv_1", "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "note"}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": "data:x", "detail": "auto"}]},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"}],
        "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"},
                   "strict": False}], "stream": True}
    where = {"item": body["input"][1], "part": body["input"][1]["content"][0], "output": body["input"][2],
             "tool": body["tools"][0]}
    if extra_at is not None:
        where[extra_at]["bogus"] = 1
    checker = spec_checker()
    operation, _ = checker.operation("POST", "/v1/responses")
    assert [v.param for v in checker.check_body("POST", "/v1/responses", operation, body)] == flagged


async def test_invalid_bodies_are_refused_and_recorded(emu: OpenAIEmulator) -> None:
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(emu.base_url + "/responses", json={"input": "no model"}) as answer:
            assert answer.status == 400 and (await answer.json())["error"]["code"] == "missing_required_parameter"
            assert answer.headers["x-request-id"].startswith("req_")
        async with http.post(emu.base_url + "/responses",
                             json={"model": MODEL, "input": [{"role": "user", "content": "x", "name": "al"}]}) as a:
            assert (await a.json())["error"] == {"message": "Unknown parameter: 'input[0].name'.",
                                                 "type": "invalid_request_error", "param": "input[0].name",
                                                 "code": "unknown_parameter"}
        async with http.post(emu.base_url + "/responses", json={"model": MODEL, "input": 42}) as answer:
            assert answer.status == 400
        async with http.get(emu.base_url + "/nowhere") as answer:
            assert answer.status == 404 and "Invalid URL (GET /v1/nowhere)" in await answer.text()
    async with aiohttp.ClientSession() as anonymous, anonymous.get(emu.base_url + "/models") as answer:
        assert answer.status == 401
        assert (await answer.json())["error"]["message"].startswith("You didn't provide an API key.")
    problems = emu.violations
    assert len(problems) == 4
    assert "input/0/name" in problems[1] and "unknown_path" in problems[3]
    emu.clear_violations()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_many_valid_sdk_call_shapes_raise_no_violation(client: openai.AsyncOpenAI) -> None:
    # (the fixture asserts at teardown that none of these broke the spec: no false positives)
    conv = await client.conversations.create(items=[{"type": "message", "role": "developer", "content": "note"}])
    await client.conversations.items.create(conv.id, items=[{"role": "assistant", "content": "earlier"}],
                                            include=["message.output_text.logprobs"])
    await client.responses.create(
        model=MODEL, conversation={"id": conv.id}, input=[{"type": "message", "role": "user", "content": "hi"}],
        tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]},
               {"type": "mcp", "server_label": "wiki", "server_url": "https://example.com/mcp",
                "require_approval": "never"}],
        tool_choice={"type": "function", "name": "f"}, text={"format": {"type": "text"}},
        reasoning={"effort": "low"}, parallel_tool_calls=False, temperature=0.5, top_p=0.9, max_tool_calls=3)
    stream = await client.responses.create(model=MODEL, stream=True, stream_options={"include_obfuscation": False},
                                           input=[{"role": "system", "content": "s"}, user("u")])
    async for _ in stream:
        pass
    await client.chat.completions.create(
        model=MODEL, messages=[{"role": "developer", "content": "d"},
                               {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "al_1"}],
        max_completion_tokens=100, response_format={"type": "text"}, seed=1, store=False, metadata={"a": "b"},
        tools=[{"type": "function", "function": {"name": "g", "parameters": {"type": "object"}, "strict": True}}])
    assistant = await client.beta.assistants.create(model=MODEL, name="n", instructions="i",
                                                    tools=[{"type": "code_interpreter"}], metadata={"k": "v"})
    await client.beta.assistants.update(assistant.id, instructions="i2")
    thread = await client.beta.threads.create(metadata={"c": "1"}, messages=[
        {"role": "user", "content": [{"type": "text", "text": "hello"}], "metadata": {"nick": "ann"}}])
    await client.beta.threads.update(thread.id, metadata={"c": "2"})
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, truncation_strategy={"type": "auto"},
        max_prompt_tokens=1000, tool_choice="auto", response_format="auto", poll_interval_ms=20)
    assert run.status == "completed"
    async with client.beta.threads.create_and_run_stream(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "yo"}]}) as stream:
        await stream.until_done()
    await client.beta.threads.delete(thread.id)
    await client.beta.assistants.delete(assistant.id)


async def test_requests_are_recorded(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    raw = await client.responses.with_raw_response.create(model=MODEL, input="Kim: hi", metadata={"k": "v"})
    assert raw.headers["x-request-id"].startswith("req_")
    (recorded,) = emu.requests("/v1/responses")
    assert recorded.method == "POST" and recorded.json["metadata"] == {"k": "v"} and recorded.status == 200
    assert recorded.request_id == raw.headers["x-request-id"] and recorded.time_done >= recorded.time_received


async def test_plain_fixture_is_started_and_clean(openai_emu: OpenAIEmulator) -> None:
    assert openai_emu.base_url.startswith("http://127.0.0.1:") and openai_emu.base_url.endswith("/v1")
    async with openai.AsyncOpenAI(base_url=openai_emu.base_url, api_key="sk-test-key", max_retries=0) as c:
        assert (await c.responses.create(model=MODEL, input="ping")).output_text == "Heard: «ping»"


def test_usable_from_plain_threads_without_a_loop() -> None:
    with OpenAIEmulator() as emu:
        client = openai.OpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0)
        try:
            seen: list[ModelRequest] = []
            emu.model.reply_fn = lambda req: seen.append(req) or "sync ok"
            assert client.responses.create(model=MODEL, input="x").output_text == "sync ok"
        finally:
            client.close()
        assert emu.violations == [] and seen[0].heard == ["x"]


# --- prompt caching -------------------------------------------------------------------------------

LONG = "The team's shared notes, read again on every turn. " * 120  # ~6,000 characters: ~1,500 tokens


async def test_responses_report_the_cached_prefix_under_the_same_cache_key(client: openai.AsyncOpenAI,
                                                                           emu: OpenAIEmulator) -> None:
    conv = await client.conversations.create(items=[user(LONG)])
    first = await client.responses.create(model=MODEL, conversation=conv.id, instructions="Be brief.",
                                          input=[user("Alice: one")], prompt_cache_key="slack-C1")
    assert first.usage.input_tokens_details.cached_tokens == 0  # nothing seen before
    second = await client.responses.create(model=MODEL, conversation=conv.id, instructions="Be brief.",
                                           input=[user("Bob: two")], prompt_cache_key="slack-C1")
    cached = second.usage.input_tokens_details.cached_tokens
    assert cached >= 1024 and (cached - 1024) % 128 == 0 and cached <= second.usage.input_tokens
    assert emu.model.seen[-1].cached_tokens == cached
    # Instructions that change (they come first) re-bill everything after them.
    third = await client.responses.create(model=MODEL, conversation=conv.id, instructions="Be brief, Carol.",
                                          input=[user("Carol: three")], prompt_cache_key="slack-C1")
    assert third.usage.input_tokens_details.cached_tokens == 0
    # Another cache key has its own cache.
    other = await client.responses.create(model=MODEL, conversation=conv.id, instructions="Be brief.",
                                          input=[user("Dan: four")], prompt_cache_key="slack-C2")
    assert other.usage.input_tokens_details.cached_tokens == 0


async def test_chat_reports_cached_tokens_in_stream_usage(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    history = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": LONG},
               {"role": "assistant", "content": "Noted."}]

    async def cached(extra: list[dict[str, str]]) -> tuple[int, int]:
        stream = await client.chat.completions.create(model=MODEL, messages=history + extra, stream=True,
                                                      stream_options={"include_usage": True},
                                                      prompt_cache_key="slack-C1")
        usage = None
        async for chunk in stream:
            usage = chunk.usage or usage
        assert usage is not None
        return usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens

    assert (await cached([{"role": "user", "content": "one"}]))[0] == 0
    hit, prompt = await cached([{"role": "user", "content": "two"}])
    assert 1024 <= hit <= prompt and (hit - 1024) % 128 == 0
    emu.model.prompt_cache.clear()
    assert (await cached([{"role": "user", "content": "two"}]))[0] == 0


async def test_short_prompts_are_never_cached(client: openai.AsyncOpenAI) -> None:
    for _ in range(2):
        resp = await client.responses.create(model=MODEL, instructions="Be brief.", input=[user("hi")],
                                             prompt_cache_key="k")
    assert resp.usage.input_tokens_details.cached_tokens == 0


def test_cached_tokens_come_in_blocks_from_a_minimum() -> None:
    from tests.emulators.openai.prompt_cache import cached_tokens, common_prefix_chars

    assert cached_tokens(4000, 4000) == 0  # 1,000 tokens: under the minimum
    assert cached_tokens(8000, 4100) == 1024  # 1,025 shared tokens: the first block
    assert cached_tokens(8000, 4096 + 512 + 4) == 1152  # 1,153 shared: 1,024 + one block of 128
    assert cached_tokens(8000, 9000) == 1024 + 7 * 128  # never more than the prompt (2,000 → 1,920)
    a = [("tools:[]", ""), ("instructions", "abc"), ("message:user:", "hello")]
    assert common_prefix_chars(a, a) == 8
    assert common_prefix_chars(a, [("tools:[]", ""), ("instructions", "abc"), ("message:user:", "help")]) == 6
    assert common_prefix_chars(a, [("tools:[1]", ""), ("instructions", "abc")]) == 0  # tools first


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (the Assistants call)
async def test_a_server_without_the_conversations_api(client: openai.AsyncOpenAI, emu: OpenAIEmulator) -> None:
    emu.set_missing_apis("conversations", "assistants")
    with pytest.raises(openai.NotFoundError) as caught:
        await client.conversations.create()
    assert caught.value.response.json() == {"detail": "Not Found"}
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.create()
    done = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert done.choices[0].message.content  # Chat Completions still served
    emu.set_missing_apis()
    assert (await client.conversations.create()).id.startswith("conv_")
