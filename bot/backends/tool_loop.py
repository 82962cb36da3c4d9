"""The one tool loop every backend runs a turn with; a backend supplies only its API shape (`Rounds`).

A turn is a series of rounds: one model request each, streamed. When a round's model calls tools, the
loop says so (ToolsRunning), runs them through the request's `run_tools` (or answers NO_FUNCTION when
there is none) and the backend feeds the results into the next round. The text after a tool call is
set apart from the text before it by ROUND_SEPARATOR. From round `max_tool_rounds` on, no more tools
are run: what a round that still calls them means is the backend's to say (`past_limit`). The turn ends
with exactly one TurnCompleted carrying the text shown and the usage of all its rounds.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.backends.base import (
    NO_FUNCTION,
    ROUND_SEPARATOR,
    BackendError,
    FailureKind,
    TextDelta,
    TextDone,
    ToolCall,
    ToolOutput,
    ToolsRunning,
    TurnCompleted,
    TurnEvent,
    TurnRequest,
)


@dataclass
class Round:
    """What one model request of a turn produced (filled in by `Rounds.send`)."""

    text: str = ""
    calls: Sequence[ToolCall] = field(default_factory=tuple)
    response_id: str | None = None
    last_item_id: str | None = None  # the conversation's newest item after it, where the API says
    input_tokens: int | None = None
    output_tokens: int | None = None
    text_final: bool = False  # the model said its text is complete and no tool call follows (see TextDone)


class Rounds(Protocol):
    """What one API shape does in a turn's rounds."""

    def send(self, number: int, tools_allowed: bool, current: Round) -> AsyncIterator[str]:
        """Send round `number` (0 first; `tools_allowed` False from round `max_tool_rounds` on) and
        stream its text, filling `current` (an empty string after setting `current.text_final`). Raises
        BackendError."""
        ...

    async def feed(self, current: Round, outputs: Sequence[ToolOutput]) -> None:
        """Hand the round's tool calls and their outputs to the next round."""
        ...

    async def past_limit(self, current: Round, extra: int) -> Sequence[ToolOutput] | None:
        """The round `extra` rounds past `max_tool_rounds` still called tools: the outputs to answer them
        with (the turn goes on), None when the round is the answer (its calls dropped), or raise."""
        ...

    async def finish(self, current: Round, text: str) -> str | None:
        """The turn is complete with `text` (all rounds'): keep what must be kept; return the
        conversation's newest item id."""
        ...


def responses_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A function tool (name, description, parameters) as the Responses API takes it."""
    return {"type": "function", **copy.deepcopy(dict(tool)), "strict": False}


def chat_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A function tool as Chat Completions (and the legacy Assistants API) take it."""
    return {"type": "function", "function": copy.deepcopy(dict(tool))}


def kept_calling_tools(*, outcome_unknown: bool = False) -> BackendError:
    """The model would not stop calling tools."""
    return BackendError("the model kept calling tools", kind=FailureKind.REQUEST, code="tool_rounds",
                        outcome_unknown=outcome_unknown)


async def run_turn(request: TurnRequest, rounds: Rounds) -> AsyncIterator[TurnEvent]:
    """Run the turn's rounds until the model answers without calling tools."""
    shown = ""
    told_final = False
    tokens_in: int | None = None
    tokens_out: int | None = None
    number = 0
    while True:
        current, apart = Round(), bool(shown) and not shown.endswith(ROUND_SEPARATOR)
        # aclosing: when the turn is abandoned mid-round, the round's stream is closed here and now,
        # not later by the garbage collector (which may find it still running).
        async with aclosing(rounds.send(number, number < request.max_tool_rounds, current)) as deltas:
            async for delta in deltas:
                if delta:
                    if apart:  # the text after a tool call is set apart from the text before it
                        shown, apart = shown + ROUND_SEPARATOR, False
                        yield TextDelta(ROUND_SEPARATOR)
                    shown += delta
                    yield TextDelta(delta)
                if current.text_final and not told_final:
                    told_final = True
                    yield TextDone(shown)
        tokens_in, tokens_out = _add(tokens_in, current.input_tokens), _add(tokens_out, current.output_tokens)
        within = number < request.max_tool_rounds
        answers = None  # past the limit: what the backend answers the calls with (None: the round is the answer)
        if current.calls and not within:
            answers = await rounds.past_limit(current, number - request.max_tool_rounds)
        if not current.calls or (not within and answers is None):
            yield TurnCompleted(text=shown, response_id=current.response_id,
                                last_item_id=await rounds.finish(current, shown),
                                input_tokens=tokens_in, output_tokens=tokens_out)
            return
        yield ToolsRunning(tuple(call.name for call in current.calls))
        await rounds.feed(current, answers if answers is not None else await _run(request, current.calls))
        number += 1


async def _run(request: TurnRequest, calls: Sequence[ToolCall]) -> list[ToolOutput]:
    if request.run_tools is None:  # nobody to run them: the original sample's answer
        return [ToolOutput(call.call_id, NO_FUNCTION) for call in calls]
    return await request.run_tools(calls)


def _add(total: int | None, more: int | None) -> int | None:
    """Token counts summed over rounds; None while no round reported any."""
    return more if total is None else total + (more or 0)
