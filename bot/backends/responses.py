"""The default backend: OpenAI Conversations + Responses (one channel ↔ one Conversation).

Each turn is a streamed `responses.create(conversation=…)` with the turn's messages as input; when the
model calls functions, their outputs go back as `function_call_output` items in another request on
the same conversation, until it answers (at most `max_tool_rounds` rounds).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import openai

from bot.backends.base import (
    IMAGE,
    PDF,
    Attachment,
    BackendError,
    FailureKind,
    FoundReply,
    ToolCall,
    ToolOutput,
    TurnEvent,
    TurnRequest,
)
from bot.backends.errors import (
    API_MISSING,
    classify,
    conversation_gone,
    missing_api,
    stopped_early,
    stream_cut,
    stream_failure,
)
from bot.backends.lookup import Entry, content_text, locate
from bot.backends.tool_loop import Round, kept_calling_tools, responses_tool, run_turn
from bot.backends.vision import Vision, refuses_files
from bot.backends.writes import classify_write, once, send

log = logging.getLogger(__name__)

RECOVERY_PAGE = 100  # conversation items per request when looking for an unfinished turn's messages
RECOVERY_ITEMS = 2000  # how far back to look at most
RESPONSES_PATH = "/responses"  # POST: create a response (relative to the client's base URL)
# Ids no conversation or response has: looked up only to learn whether the endpoints exist.
PROBE_CONVERSATION, PROBE_RESPONSE = "conv_assistantbridgeprobe0000000000", "resp_assistantbridgeprobe0000000000"
INTERRUPTED = '{"status": "error", "message": "The tool call was interrupted; its result is unknown."}'
_DANGLING = re.compile(r"\bcall_[A-Za-z0-9_-]+")


class _DanglingCalls(Exception):
    """The conversation has tool calls without results (from a turn that was given up)."""

    def __init__(self, error: openai.BadRequestError, call_ids: list[str]) -> None:
        super().__init__(str(error))
        self.error = error
        self.call_ids = call_ids


class _AttachmentsRefused(Exception):
    """The model takes no images or files (a text-only model)."""

    def __init__(self, error: openai.APIStatusError) -> None:
        super().__init__(str(error))
        self.error = error


SPARE = "(spare)"  # a conversation's slack_channel until a channel takes it


class ResponsesBackend:
    """OpenAI (or Azure) Conversations + Responses. Images go as `input_image`, PDFs as `input_file`,
    both inline as data URLs (see `_part`)."""

    name = "responses"
    accepts = frozenset({IMAGE, PDF})

    def __init__(self, client: openai.AsyncOpenAI, *, model: str, vision: Vision | None = None) -> None:
        self._client = client  # reads, and the conversation's creation (an orphan harms nothing: writes.py)
        self._writes = once(client)  # what adds to a conversation: never resent blindly
        self.model = model
        self.vision = vision or Vision()
        # The SDK imports an API's module on first use (~10 ms for Conversations): at start, not in the
        # first turn of the process.
        _ = self._client.conversations, self._writes.conversations
        # Spares made ahead belong to the server and account they were made in (a new key or URL on
        # the same database must not take conversations the service no longer has for it).
        where = f"{client.base_url}|{client.organization}|{client.project}|{client.api_key}"
        self.spare_pool = f"responses:{hashlib.sha256(where.encode()).hexdigest()[:16]}"

    async def create_conversation(self, channel: str) -> str:
        return await self._create(metadata={"slack_channel": channel})

    async def create_spare(self) -> str:
        """An empty conversation for a channel still to come (labelled once one takes it), marked as one."""
        return await self._create(metadata={"slack_channel": SPARE})

    async def label_conversation(self, conversation_id: str, channel: str) -> None:
        """Say which channel a spare conversation went to, as `create_conversation` does (its metadata)."""
        try:
            await self._client.conversations.update(conversation_id, metadata={"slack_channel": channel})
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            raise classify(exc) from exc

    async def _create(self, **params: Any) -> str:
        try:
            conversation = await self._client.conversations.create(**params)
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            raise classify(exc) from exc
        return conversation.id

    def stream_turn(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        return run_turn(request, _Rounds(self, request))

    async def _respond(self, params: dict[str, Any], current: Round) -> AsyncIterator[str]:
        """One streamed response; fills `current` with its text, tool calls, usage and final object.

        Sent with the SDK's lower-level `post` and its events read as the JSON the server sent
        (`cast_to=object`): the same client, retries, errors and SSE decoding, without validating each
        event into a model object and transforming the request against its typed schema — measured as
        about a fifth of a turn's CPU (bench/README.md, "Profiling"), for fields these params and the
        few events read here do not need."""
        streaming = False
        try:
            stream = await send(lambda: self._writes.post(RESPONSES_PATH, body=params, cast_to=object, stream=True,
                                                          stream_cls=openai.AsyncStream[object]))
            ended: BackendError | None = None
            async with stream:
                async for event in stream:
                    streaming = True
                    if ended is not None or not isinstance(event, dict):
                        continue  # read to its end: the SDK's stream, left early, would be left to the GC
                    kind = event.get("type")
                    if kind == "response.output_text.delta":
                        current.text += event.get("delta") or ""
                        yield event.get("delta") or ""
                    elif kind == "response.output_text.done" and "tools" not in params:
                        # With no tool to call, nothing can follow the text: it is final now, before the
                        # rest of the stream (the whole response again, in response.completed) is read.
                        current.text_final = True
                        yield ""
                    elif kind == "response.completed":
                        _completed(event.get("response") or {}, current)
                    elif kind in ("response.failed", "response.incomplete", "error"):
                        ended = failure(event)
            if ended is not None:
                raise ended
        except BackendError:
            raise
        except openai.BadRequestError as exc:
            call_ids = _DANGLING.findall(str(exc.message)) if "No tool output found" in str(exc.message) else []
            if call_ids:
                raise _DanglingCalls(exc, call_ids) from exc
            if _has_attachments(params) and refuses_files(exc):
                raise _AttachmentsRefused(exc) from exc
            raise classify(exc) from exc
        except openai.NotFoundError as exc:
            if "conversation" in str(exc.message).lower():
                raise conversation_gone() from exc
            raise classify(exc) from exc
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
            # (a 5xx or a lost connection: the response may have run, adding the turn to the conversation)
            raise classify_write(exc, streaming=streaming) from exc
        if current.response_id is None:
            raise stream_cut()

    def params(self, request: TurnRequest, items: list[dict[str, Any]], tools_allowed: bool) -> dict[str, Any]:
        """One request of the turn: its input `items`, the function tools only while `tools_allowed`."""
        params: dict[str, Any] = {
            "model": self.model,
            "conversation": request.conversation_id,
            "instructions": request.instructions,
            "input": items,
            "stream": True,
            "truncation": "auto",
            "prompt_cache_key": f"slack-{request.channel}",
        }
        tools = [dict(tool) for tool in request.hosted_tools]
        if tools_allowed:
            tools += [responses_tool(tool) for tool in request.tools]
        if tools:
            params["tools"] = tools
        if request.safety_identifier:
            params["safety_identifier"] = request.safety_identifier
        return params

    async def close_calls(self, conversation_id: str, call_ids: Sequence[str]) -> None:
        """A turn that was given up left tool calls without results, and the API refuses every request
        on the conversation until they have one: give them an error result."""
        log.warning("conversation %s: closing %d tool call(s) an earlier turn left open", conversation_id,
                    len(call_ids))
        try:  # (if its answer is lost, the next request tells whether the calls are still open)
            await send(lambda: self._writes.conversations.items.create(conversation_id, items=[
                _function_output(ToolOutput(call_id, INTERRUPTED)) for call_id in call_ids]))
        except Exception as exc:  # noqa: BLE001
            raise classify_write(exc) from exc

    async def add_context(self, conversation_id: str, messages: Sequence[str]) -> str | None:
        try:  # a lost answer leaves the turn to the journal's lookup (find_reply), never a blind resend
            created = await send(lambda: self._writes.conversations.items.create(
                conversation_id, items=[_user_message(text) for text in messages]))
        except Exception as exc:  # noqa: BLE001
            raise classify_write(exc) from exc
        return created.data[-1].id if created.data else None

    async def find_reply(self, conversation_id: str, messages: Sequence[str],
                         after_item: str | None = None) -> FoundReply | None:
        if not messages:
            return None
        newest_first: list[dict[str, Any]] = []
        try:  # page back to the previous turn's last item (a turn can hold many items)
            async for item in self._client.conversations.items.list(conversation_id, order="desc",
                                                                    limit=RECOVERY_PAGE):
                newest_first.append(item.model_dump())
                if newest_first[-1].get("id") == after_item or len(newest_first) >= RECOVERY_ITEMS:
                    break
        except openai.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from exc
        return answer_after(list(reversed(newest_first)), messages, after_item)

    async def check(self) -> str:
        """The model, and the two APIs this backend needs (many OpenAI-compatible servers lack them)."""
        try:
            model = await self._client.models.retrieve(self.model)
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from exc
        offered = await self.offers_conversations()
        if offered is False:
            raise BackendError("the model server has no Conversations API (most self-hosted servers serve Chat "
                               "Completions only): set ASSISTANT_BACKEND=chat, or ASSISTANT_BACKEND=auto",
                               kind=FailureKind.ACCOUNT, status=404, code=API_MISSING)
        return f"model {model.id} is available, with the Conversations and Responses APIs"

    async def offers_conversations(self) -> bool | None:
        """Does the server have the Conversations and Responses APIs? Asked without writing anything: a
        made-up id is "not found" where they exist, an unknown endpoint where they do not. None: cannot
        tell (the server failed otherwise, e.g. a bad key or unreachable)."""
        probes = ((self._client.conversations.retrieve, PROBE_CONVERSATION),
                  (self._client.responses.retrieve, PROBE_RESPONSE))
        for lookup, made_up in probes:
            try:
                found = await lookup(made_up)
            except openai.NotFoundError as exc:
                if missing_api(exc):
                    return False
                continue  # "no such conversation (response)": the API is there
            except openai.APIError:
                return None
            if getattr(found, "id", None) != made_up:  # an answer for an id nobody has: not the real API
                return False  # (LM Studio answers every unknown endpoint 200 with an error text)
        return True

    async def aclose(self) -> None:
        await self._client.close()


class _Rounds:
    """A Responses turn's rounds: the messages (or a continued turn's tool outputs) first, then each
    round's tool outputs, all on the channel's conversation."""

    def __init__(self, backend: ResponsesBackend, request: TurnRequest) -> None:
        self._backend = backend
        self._request = request
        # The turn's note before its messages: after the history, where it leaves the prompt's prefix alone.
        note = [_developer_message(request.note)] if request.note and request.messages else []
        self._items = note + [_user_message(text, request.attached(i)) for i, text in enumerate(request.messages)]
        self._items += [_function_output(output) for output in request.tool_outputs]

    async def send(self, number: int, tools_allowed: bool, current: Round) -> AsyncIterator[str]:
        # Once a round has completed (or when continuing an interrupted turn), the turn's messages are in
        # the conversation with tool calls awaiting their results: a failure from then on must not lead
        # to the messages being sent again — the caller looks in the conversation and carries on.
        committed = number > 0 or bool(self._request.tool_outputs)
        params = self._backend.params(self._request, self._items, tools_allowed)
        try:
            closed = described = False  # each fix-up once: open tool calls closed, files described
            while True:
                try:
                    async with aclosing(self._backend._respond(params, current)) as deltas:
                        async for delta in deltas:
                            yield delta
                    return
                except _DanglingCalls as dangling:
                    if closed:
                        raise classify(dangling.error) from dangling.error
                    closed = True
                    await self._backend.close_calls(self._request.conversation_id, dangling.call_ids)
                except _AttachmentsRefused as refused:
                    if described or not await self._backend.vision.fall_back(refused.error):
                        raise classify(refused.error) from refused.error
                    # A text-only model (or an unreadable image): the same messages again, their files
                    # described in words only (the texts are unchanged: the journal knows the turn by them).
                    described = True
                    self._items = [item for item in self._items if item.get("role") != "user"] + [
                        _user_message(text) for text in self._request.messages]
                    params = self._backend.params(self._request, self._items, tools_allowed)
        except BackendError as error:
            error.outcome_unknown = error.outcome_unknown or committed
            raise

    async def feed(self, current: Round, outputs: Sequence[ToolOutput]) -> None:
        self._items = [_function_output(output) for output in outputs]

    async def past_limit(self, current: Round, extra: int) -> Sequence[ToolOutput] | None:
        raise kept_calling_tools()  # the last request had no function tools, yet the model called one

    async def finish(self, current: Round, text: str) -> str | None:
        return current.last_item_id


def _completed(response: dict[str, Any], current: Round) -> None:
    usage, output = response.get("usage") or {}, response.get("output") or []
    current.response_id = response.get("id")
    current.last_item_id = output[-1].get("id") if output else None
    current.calls = [ToolCall(item.get("call_id", ""), item.get("name", ""), item.get("arguments") or "{}")
                     for item in output if item.get("type") == "function_call"]
    current.input_tokens = usage.get("input_tokens")
    current.output_tokens = usage.get("output_tokens")


def failure(event: dict[str, Any]) -> BackendError:
    """A failure the stream reported: an `error` event, `response.failed` or `response.incomplete`."""
    if event.get("type") == "error":
        return stream_failure(event.get("code"), "the model reported an error")
    response = event.get("response") or {}
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details") or {}
        return stopped_early(details.get("reason"), request_id=response.get("id"))
    error = response.get("error") or {}
    return stream_failure(error.get("code"), request_id=response.get("id"))


def _developer_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]}


def _user_message(text: str, attachments: Sequence[Attachment] = ()) -> dict[str, Any]:
    content = [{"type": "input_text", "text": text}, *(_part(attachment) for attachment in attachments)]
    return {"type": "message", "role": "user", "content": content}


def _part(attachment: Attachment) -> dict[str, Any]:
    """An image or PDF as an input part, inline as a data URL rather than uploaded to the Files API first:
    the conversation stores the item, so the content is kept by OpenAI either way; inline, it is sent
    in the one request that adds it — nothing is stored unless the response completes (an upload first
    would be a second write, repeated by every retry and left behind by every failed turn, with no
    idempotency key), there is no upload's round trip before the first token, and no file to delete
    later. Later turns read it from the conversation, billed like any other input."""
    if attachment.kind == IMAGE:
        return {"type": "input_image", "image_url": attachment.data_url(), "detail": "auto"}
    return {"type": "input_file", "filename": attachment.name, "file_data": attachment.data_url()}


def _has_attachments(params: dict[str, Any]) -> bool:
    return any(part.get("type") in ("input_image", "input_file") for item in params.get("input") or ()
               for part in item.get("content") or () if isinstance(item.get("content"), list))


def _function_output(output: ToolOutput) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": output.call_id, "output": output.output}


def answer_after(items: Sequence[dict[str, Any]], messages: Sequence[str],
                 after_item: str | None) -> FoundReply | None:
    """Did a turn with input `messages` complete? `items` are the conversation's newest items, oldest
    first; `after_item` is the last item of the turn before (None for a conversation's first turn).

    A completed turn is the conversation's newest: its messages are the last user messages, after
    `after_item`, followed only by the answer (assistant messages, tool calls and their outputs).
    Return the answer (text possibly empty; tool calls still waiting for their output) if so, else None.
    """
    found = locate([_entry(item) for item in items], messages, after_item)
    if found is None:
        return None
    after = items[found.answer_from:]
    answered = {item.get("call_id") for item in after if item.get("type") == "function_call_output"}
    pending = tuple(ToolCall(item["call_id"], item.get("name", ""), item.get("arguments", ""))
                    for item in after if item.get("type") == "function_call" and item.get("call_id") not in answered)
    return FoundReply(found.answer, found.newest_id, pending)


def _entry(item: dict[str, Any]) -> Entry:
    role = item.get("role", "") if item.get("type") == "message" else ""
    return Entry(item.get("id"), role, content_text(item.get("content")))

