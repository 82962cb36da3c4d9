"""The text is final before the stream ends: `response.output_text.done` (no tools offered) and a Chat
Completions `finish_reason` of stop say so, and the backend passes it on (TextDone) before it reads the
rest — usage, the whole response again — so the answer can go to Slack while that arrives."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bot.backends.base import Backend, TextDelta, TextDone, ToolCall, ToolOutput, TurnCompleted, TurnEvent, TurnRequest
from tests.backends.test_chat_backend_emulated import GET_TIME
from tests.emulators.openai import OpenAIEmulator

FINISH_DELAY = 1.0  # seconds the emulated service spends after the text before it ends the stream


async def timed(backend: Backend, request: TurnRequest) -> list[tuple[float, TurnEvent]]:
    return [(time.time(), event) async for event in backend.stream_turn(request)]


def request_for(conversation: str, **options: object) -> TurnRequest:
    return TurnRequest(conversation_id=conversation, channel="C1", instructions="Be brief.",
                       messages=["[Alice] tell me"], **options)  # type: ignore[arg-type]


async def test_the_text_is_final_before_the_stream_ends(backend: Backend, openai_emu: OpenAIEmulator) -> None:
    openai_emu.model.finish_delay = FINISH_DELAY
    events = await timed(backend, request_for(await backend.create_conversation("C1")))
    kinds = [type(event) for _, event in events]
    assert kinds.count(TextDone) == 1 and kinds[-1] is TurnCompleted
    assert kinds.index(TextDone) > max(i for i, kind in enumerate(kinds) if kind is TextDelta)  # after the text
    ((told, done),), (_, completed) = [(at, e) for at, e in events if isinstance(e, TextDone)], events[-1]
    assert isinstance(completed, TurnCompleted) and done.text == completed.text
    assert done.text == "".join(e.text for _, e in events if isinstance(e, TextDelta))
    record = [r for r in openai_emu.requests() if r.time_done][-1]  # (the turn's, after any creation)
    assert told < record.time_done - FINISH_DELAY / 2  # told while the service was still at the rest


class Tools:
    async def __call__(self, calls: Sequence[ToolCall]) -> list[ToolOutput]:
        return [ToolOutput(call.call_id, '{"time": "12:00"}') for call in calls]


async def test_text_before_a_tool_call_is_never_said_final(backend: Backend, openai_emu: OpenAIEmulator) -> None:
    openai_emu.model.enqueue("Let me look.", tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC"}}])
    events = [e for _, e in await timed(backend, request_for(await backend.create_conversation("C1"),
                                                             tools=[GET_TIME], run_tools=Tools()))]
    completed = events[-1]
    assert isinstance(completed, TurnCompleted) and "Let me look." in completed.text
    finals = [e for e in events if isinstance(e, TextDone)]
    # Chat says which completion called no tool (finish_reason); Responses offers the tools in every round,
    # and a text there may still be followed by a call: it waits for the response to complete.
    assert [e.text for e in finals] == ([completed.text] if backend.name == "chat" else [])
