"""The legacy backend: OpenAI Assistants (one channel ↔ one thread), shut down by OpenAI on 2026-08-26.

Each turn is one streamed run on the channel's thread: the turn's messages as `additional_messages`,
our instructions as `additional_instructions` (the assistant keeps its own); tool outputs are
submitted on the same run. A run writes its messages into the thread as soon as it is created,
whatever becomes of it, so every later failure is `outcome_unknown` and `find_reply` sorts it out:
an answered turn is found; a busy run makes the caller wait; a run waiting for tool outputs is
continued (`pending_calls`); after a run that ended unanswered, the resent turn adds only the
messages the thread lacks. Each message enters the thread once.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

from bot.backends.assistants_images import AttachmentsRefused, ImageUploads
from bot.backends.assistants_thread import locate_turn, thread_message
from bot.backends.base import (
    IMAGE,
    ROUND_SEPARATOR,
    BackendError,
    FailureKind,
    FoundReply,
    ToolCall,
    ToolOutput,
    TurnEvent,
    TurnRequest,
)
from bot.backends.errors import (
    classify,
    conversation_gone,
    conversation_locked,
    missing_api,
    stopped_early,
    stream_cut,
    stream_failure,
)
from bot.backends.tool_loop import Round, chat_tool, kept_calling_tools, run_turn
from bot.backends.vision import Vision, refuses_files
from bot.backends.writes import answer_lost, once, send

Opener = Callable[[], Awaitable[Any]]  # starts one streamed request (a run, or its tool outputs)

SHUTDOWN_WARNING = ("warning: OpenAI shut the Assistants API down on 2026-08-26; this works only with servers "
                    "that still implement it")
UNKNOWN_MODEL = "the assistant's model"  # `model` until the assistant has been fetched
RECOVERY_MESSAGES = 100  # (the API maximum) how far back find_reply looks for an unfinished turn's messages
EXTRA_TOOL_ROUNDS = 2  # rounds answered "limit reached" before a run that keeps calling tools is cancelled
TOOL_LIMIT = json.dumps({"status": "error", "message": "Tool call limit reached; answer without tools."})
BUSY = frozenset({"queued", "in_progress", "cancelling"})
UNANSWERED = frozenset({"failed", "cancelled", "expired"})  # ended without an answer; its messages stay
RUN_FAILURES = {"thread.run.failed": "the model failed to answer", "thread.run.cancelled": "the run was cancelled",
                "thread.run.expired": "the run expired", "thread.run.incomplete": "the model stopped before finishing"}
ACTIVE_RUN = re.compile(r"already has an active run|while a run \S+ is active")  # OpenAI's two texts


def _quiet(method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call an SDK Assistants method without its DeprecationWarning (users chose this backend knowingly;
    it would clutter their logs and fail our warnings-as-errors tests). The SDK warns on the call, so
    only the call is wrapped, never an await: warnings filters are process-wide."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return method(*args, **kwargs)


@dataclass
class _Progress:
    """A turn so far: its text, the thread's newest message, and how its latest request ended."""

    text: str = ""
    writing: str | None = None  # the message the last delta belonged to
    newest: str | None = None
    run: Any = None  # completed, or waiting for the outputs of `calls`
    calls: tuple[ToolCall, ...] = ()

    def add(self, message_id: str, delta: str) -> str:
        """Record a delta; return what to show (with a separator when a new message begins)."""
        if not delta:
            return ""
        if message_id != self.writing and self.text and not self.text.endswith(ROUND_SEPARATOR):
            delta = ROUND_SEPARATOR + delta
        self.writing = self.newest = message_id
        self.text += delta
        return delta


class AssistantsBackend:
    """OpenAI Assistants (threads and runs), legacy: for servers that still implement it. Images are
    uploaded (Files API, purpose `vision`) and sent as `image_file` parts — a thread message takes no
    inline image; PDFs are described (reading one needs file_search and a vector store)."""

    name = "assistants"
    accepts = frozenset({IMAGE})

    def __init__(self, client: openai.AsyncOpenAI, *, assistant_id: str, model: str | None = None,
                 vision: Vision | None = None) -> None:
        self._client = client  # reads, and creating a thread (an orphan harms nothing: see writes.py)
        self._writes = once(client)  # messages, runs, tool outputs: never resent blindly
        self.vision = vision or Vision()
        self._uploads = ImageUploads(client)  # (an upload whose answer is lost leaves an unused file: harmless)
        self._assistant_id = assistant_id
        self._model_override = model
        self.model = model or UNKNOWN_MODEL
        self._assistant: Any = None
        # thread → messages of an unanswered turn already in it (see find_reply); the resent turn skips them
        self._present: dict[str, tuple[str, ...]] = {}

    async def create_conversation(self, channel: str) -> str:
        try:
            thread = await _quiet(self._client.beta.threads.create, metadata={"slack_channel": channel})
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            raise classify(exc) from exc
        return thread.id

    async def stream_turn(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """One streamed run (continued through its tool calls): text deltas, then TurnCompleted."""
        tools = await self._tools(request)
        opener, in_thread, described = await self._first_request(request, tools)
        rounds = _Rounds(self, request.conversation_id, opener, in_thread, described)
        async with contextlib.aclosing(run_turn(request, rounds)) as events:
            async for event in events:
                yield event

    async def _first_request(self, request: TurnRequest,
                             tools: list[dict[str, Any]] | None) -> tuple[Opener, bool, Opener | None]:
        """The turn's first request, and whether its messages are in the thread already: tool outputs
        for the run that waits for them (if it still does), else a run with the messages the thread lacks
        — and, when they carry images, the same run with the images left out (for a text-only model)."""
        thread, outputs = request.conversation_id, request.tool_outputs
        if outputs:
            try:
                run = await self._newest_run(thread)
            except Exception as exc:  # noqa: BLE001
                raise _sdk_error(exc, in_thread=True) from exc
            if run is not None and {call.call_id for call in _calls(run)} == {out.call_id for out in outputs}:
                return self._submitter(thread, run.id, outputs), True, None
        unsent = self._unsent(thread, request.messages)
        skip = len(request.messages) - len(unsent)
        attached = [request.attached(skip + i) if self.vision.allowed else () for i in range(len(unsent))]
        try:
            contents = [await self._uploads.content(text, files) for text, files in zip(unsent, attached, strict=True)]
        except AttachmentsRefused as refused:  # the server takes no uploaded images
            if not self.vision.learns:
                raise classify(refused.error) from refused.error
            await self.vision.learn_refusal(refused.error)  # (whatever the answer: no Files API, no images)
            contents, attached = list(unsent), []
        instructions = f"{request.instructions}\n{request.note}" if request.note else request.instructions

        def run_with(messages: Sequence[str | list[dict[str, Any]]]) -> Opener:
            optional = {"additional_instructions": instructions, "model": self._model_override, "tools": tools,
                        "additional_messages": [{"role": "user", "content": content} for content in messages]}
            params = {"assistant_id": self._assistant_id, "stream": True, **{k: v for k, v in optional.items() if v}}
            return lambda: send(lambda: _quiet(self._writes.beta.threads.runs.create, thread, **params))

        described = run_with(unsent) if any(attached) else None
        return run_with(contents), not unsent or len(unsent) < len(request.messages), described

    def _submitter(self, thread: str, run_id: str, outputs: Sequence[ToolOutput]) -> Opener:
        tool_outputs = [{"tool_call_id": output.call_id, "output": output.output} for output in outputs]
        return lambda: send(lambda: _quiet(self._writes.beta.threads.runs.submit_tool_outputs, run_id,
                                           thread_id=thread, tool_outputs=tool_outputs, stream=True))

    async def _consume(self, opener: Opener, current: _Progress, in_thread: bool) -> AsyncIterator[str]:
        """One streamed request; fills `current`. `in_thread`: the turn's messages are in the thread
        already (so any failure leaves the outcome unknown); else they are once the run exists."""
        try:
            stream = await opener()
            in_thread = True
            ended: BackendError | None = None
            async with stream:
                async for event in stream:
                    if ended is not None:
                        continue  # read to its end: the SDK's stream, left early, would be left to the GC
                    try:
                        text = _apply(event, current)
                    except BackendError as error:  # the run failed: its stream ends right after
                        ended = error
                        continue
                    if text:
                        yield text
            if ended is not None:
                raise ended
        except openai.BadRequestError as exc:
            if not in_thread and refuses_files(exc):
                raise AttachmentsRefused(exc) from exc
            raise _sdk_error(exc, in_thread=in_thread) from exc
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            raise _sdk_error(exc, in_thread=in_thread) from exc
        if current.run is None:  # the stream ended without saying how the run did
            raise stream_cut()

    async def _tools(self, request: TurnRequest) -> list[dict[str, Any]] | None:
        """The run's tools: None keeps the assistant's, else theirs and ours (`tools` replaces them). The
        assistant is fetched on the first turn anyway, so that `model` names the real model."""
        assistant = await self._fetch_assistant()
        if not request.tools:
            return None
        ours = {tool["name"] for tool in request.tools}
        own = [tool.model_dump(mode="json", exclude_none=True) for tool in assistant.tools
               if not (tool.type == "function" and tool.function.name in ours)]
        return own + [chat_tool(tool) for tool in request.tools]

    async def _fetch_assistant(self) -> Any:
        if self._assistant is None:
            try:
                self._assistant = await _quiet(self._client.beta.assistants.retrieve, self._assistant_id)
            except openai.NotFoundError as exc:
                if missing_api(exc):  # not the assistant: the server has no Assistants API at all
                    raise classify(exc) from exc
                raise BackendError(f"the assistant {self._assistant_id} does not exist at the model service",
                                   kind=FailureKind.ACCOUNT, status=404, code="assistant_not_found",
                                   request_id=exc.request_id) from exc
            except Exception as exc:  # noqa: BLE001
                raise classify(exc) from exc
            self.model = self._model_override or self._assistant.model
        return self._assistant

    def _unsent(self, thread: str, messages: Sequence[str]) -> tuple[str, ...]:
        """The messages the thread lacks: those find_reply did not find there already."""
        present = self._present.pop(thread, ())
        pairs = zip(present, messages, strict=False)
        skip = next((i for i, (had, wants) in enumerate(pairs) if had != wants), min(len(present), len(messages)))
        if skip and skip == len(messages) < len(present):  # a shorter turn: the rest are still there
            self._present[thread] = present[skip:]
        return tuple(messages[skip:])

    async def add_context(self, conversation_id: str, messages: Sequence[str]) -> str | None:
        """Add the messages the thread lacks, one by one; return the thread's newest message id."""
        unsent = self._unsent(conversation_id, messages)
        in_thread, last = len(unsent) < len(messages), None
        for text in unsent:
            try:
                created = await send(lambda text=text: _quiet(self._writes.beta.threads.messages.create,
                                                              conversation_id, role="user", content=text))
            except Exception as exc:  # noqa: BLE001
                raise _sdk_error(exc, in_thread=in_thread) from exc
            in_thread, last = True, created.id
        return last or await self._newest_message_id(conversation_id)

    async def find_reply(self, conversation_id: str, messages: Sequence[str],
                         after_item: str | None = None) -> FoundReply | None:
        """The turn's answer if it is in the thread; raise conversation_locked while a run is busy. A
        run of this turn waiting for tool outputs is continued (`pending_calls`), anyone else's cancelled."""
        if not messages:
            return None
        try:  # the run first: once it has ended, the messages listed after it are final
            run = await self._newest_run(conversation_id)
            if run is not None and run.status in BUSY:
                raise conversation_locked()
            page = await _quiet(self._client.beta.threads.messages.list, conversation_id, order="desc",
                                limit=RECOVERY_MESSAGES)
        except openai.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise _sdk_error(exc, in_thread=False) from exc
        found = locate_turn([thread_message(m) for m in reversed(page.data)], messages, after_item,
                            whole_thread=page.has_more is False)
        status = run.status if run is not None else None
        if status == "requires_action":
            if found is not None and found.complete:  # ours, interrupted between tool call and result
                return FoundReply(found.answer, found.newest_id, _calls(run))
            await self._cancel(conversation_id, run.id)  # an orphan holding the thread: free it
            status = "cancelled"
        if found is None:
            return None
        if not found.complete or status in UNANSWERED:
            self._present[conversation_id] = found.present  # resend only what is missing
            return None
        return FoundReply(found.answer, found.newest_id)

    async def _newest_run(self, thread: str) -> Any:
        runs = await _quiet(self._client.beta.threads.runs.list, thread, order="desc", limit=1)
        return runs.data[0] if runs.data else None

    async def _cancel(self, thread: str, run_id: str) -> None:
        with contextlib.suppress(openai.APIError):  # failing, it has ended or will expire: the thread frees up
            await _quiet(self._client.beta.threads.runs.cancel, run_id, thread_id=thread)

    async def _newest_message_id(self, thread: str) -> str | None:
        try:
            page = await _quiet(self._client.beta.threads.messages.list, thread, order="desc", limit=1)
        except openai.APIError:
            return None  # only a hint for recovery: without it, find_reply looks further back
        return page.data[0].id if page.data else None

    async def check(self) -> str:
        self._assistant = None
        assistant = await self._fetch_assistant()
        return f"assistant {assistant.id} (model {self.model}) is available — {SHUTDOWN_WARNING}"

    async def aclose(self) -> None:
        await self._client.close()


class _Rounds:
    """A turn's requests on one run: the run itself, then each round's tool outputs submitted to it."""

    def __init__(self, backend: AssistantsBackend, thread: str, opener: Opener, in_thread: bool,
                 described: Opener | None = None) -> None:
        self._backend, self._thread = backend, thread
        self._opener, self._in_thread = opener, in_thread
        self._described = described  # the first run without its images, for a text-only model
        self._newest: str | None = None  # the thread's newest message, as the streams told

    async def send(self, number: int, tools_allowed: bool, current: Round) -> AsyncIterator[str]:
        # `tools_allowed` cannot be honoured: a run keeps its tools (past the limit, see past_limit).
        progress = _Progress(newest=self._newest)
        try:
            async with contextlib.aclosing(self._backend._consume(self._opener, progress, self._in_thread)) as texts:
                async for text in texts:
                    yield text
        except AttachmentsRefused as refused:  # (before the run existed: nothing is in the thread)
            if self._described is None or not await self._backend.vision.fall_back(refused.error):
                raise classify(refused.error) from refused.error
            self._opener, self._described = self._described, None
            async with contextlib.aclosing(self._backend._consume(self._opener, progress, self._in_thread)) as texts:
                async for text in texts:
                    yield text
        self._in_thread, self._newest = True, progress.newest
        current.text, current.calls, current.response_id = progress.text, progress.calls, progress.run.id
        usage = None if progress.calls else getattr(progress.run, "usage", None)  # the whole run's, at its end
        current.input_tokens = usage.prompt_tokens if usage else None
        current.output_tokens = usage.completion_tokens if usage else None

    async def feed(self, current: Round, outputs: Sequence[ToolOutput]) -> None:
        assert current.response_id is not None, "a round that called tools has its run"
        self._opener = self._backend._submitter(self._thread, current.response_id, outputs)

    async def past_limit(self, current: Round, extra: int) -> Sequence[ToolOutput] | None:
        if extra < EXTRA_TOOL_ROUNDS:  # the run cannot drop its tools: tell the model to answer without
            return [ToolOutput(call.call_id, TOOL_LIMIT) for call in current.calls]
        assert current.response_id is not None, "a round that called tools has its run"
        await self._backend._cancel(self._thread, current.response_id)  # free the thread for the next turn
        raise kept_calling_tools(outcome_unknown=True)

    async def finish(self, current: Round, text: str) -> str | None:
        return self._newest or await self._backend._newest_message_id(self._thread)


def _apply(event: Any, current: _Progress) -> str:
    """Take one stream event into the turn; return the text to show. A failed run raises."""
    kind, data = event.event, event.data
    if kind == "thread.message.delta":
        parts = getattr(data.delta, "content", None) or ()
        return current.add(data.id, "".join(part.text.value or "" for part in parts
                                            if part.type == "text" and part.text is not None))
    if kind in ("thread.message.created", "thread.message.completed"):
        current.newest = data.id
    elif kind == "thread.run.requires_action":
        current.run, current.calls = data, _calls(data)
    elif kind == "thread.run.completed":
        current.run = data
    elif kind in RUN_FAILURES:
        raise run_failure(data, RUN_FAILURES[kind])
    elif kind == "error":
        raise stream_failure(getattr(data, "code", None), "the model reported an error", outcome_unknown=True)
    return ""


def _calls(run: Any) -> tuple[ToolCall, ...]:
    action = getattr(run, "required_action", None)
    outputs = getattr(action, "submit_tool_outputs", None)
    return tuple(ToolCall(call.id, call.function.name, call.function.arguments)
                 for call in getattr(outputs, "tool_calls", None) or ())


def run_failure(run: Any, what: str) -> BackendError:
    """A run that ended without completing (its messages are in the thread: outcome unknown)."""
    error = getattr(run, "last_error", None)
    code, status, run_id = getattr(error, "code", None), getattr(run, "status", None), getattr(run, "id", None)
    if code is None and status == "incomplete":
        reason = getattr(getattr(run, "incomplete_details", None), "reason", None)
        return stopped_early(reason, what, request_id=run_id, outcome_unknown=True)
    return stream_failure(code, what, request_id=run_id, outcome_unknown=True, shown=code or status)


def _sdk_error(exc: BaseException, *, in_thread: bool) -> BackendError:
    """Classify an SDK failure; `in_thread`: the turn's messages may be in the thread already."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, openai.BadRequestError) and ACTIVE_RUN.search(str(exc.message)):
        return conversation_locked(status=400, request_id=exc.request_id)
    if isinstance(exc, openai.NotFoundError) and "thread" in str(exc.message).lower():
        return conversation_gone()
    if isinstance(exc, httpx2.TransportError):  # the SDK lets a connection lost mid-stream out as it is
        return stream_cut()
    error = classify(exc, streaming=in_thread)  # an `error` event the SDK raised included
    # A write whose answer was lost (5xx, timeout, dropped connection) may have stored its messages or run.
    error.outcome_unknown = error.outcome_unknown or in_thread or answer_lost(exc)
    return error
