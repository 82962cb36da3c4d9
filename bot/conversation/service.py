"""The conversation service: channel → conversation, and what one turn sends to the model."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from slack_sdk.web.async_client import AsyncWebClient

from bot.backends.base import MAX_TOOL_ROUNDS, Backend, FoundReply, ToolCall, ToolOutput, TurnEvent, TurnRequest
from bot.conversation.file_reader import FileReader, ReadFiles
from bot.conversation.prompt import build_instructions, speaker_text, turn_note
from bot.conversation.spares import SpareConversations
from bot.conversation.threads import TOP_LEVEL, Place, ThreadPlaces
from bot.conversation.tools import Toolbox, ToolContext
from bot.messages import InboxItem
from bot.outbound.channels import ChannelDirectory
from bot.outbound.markup import mentioned_users, to_readable
from bot.outbound.people import NameDirectory

log = logging.getLogger(__name__)

MAX_KNOWN_CONVERSATIONS = 20_000  # conversation ids kept in memory (the store has them all)
MAX_PREPARING = 1_000  # conversations being created ahead at once (a flood of new channels waits for its turns)
MAX_SAFETY_IDENTIFIERS = 50_000  # speakers whose safety_identifier is remembered (as the names: MAX_CACHED_NAMES)


class ConversationMap(Protocol):
    """Where each channel's conversation id is kept (the store's `ConversationMap`, handed in by the wiring)."""

    async def conversation(self, channel: str, backend: str) -> str | None: ...

    async def claim_conversation(self, channel: str, backend: str, conversation_id: str) -> str: ...

    async def forget_conversation(self, channel: str, backend: str) -> None: ...

    async def last_item(self, channel: str, backend: str) -> str | None: ...


class ConversationService:
    """Owns each channel's conversation id (created lazily, persisted) and builds every turn."""

    def __init__(self, *, conversation_map: ConversationMap, backend: Backend, names: NameDirectory,
                 channels: ChannelDirectory, instructions: str, toolbox: Toolbox | None = None,
                 hosted_tools: Sequence[Mapping[str, Any]] = (), slack: AsyncWebClient | None = None,
                 max_tool_rounds: int = MAX_TOOL_ROUNDS, today: Callable[[], dt.date] = dt.date.today,
                 safety_salt: str = "", threads: ThreadPlaces | None = None,
                 files: FileReader | None = None, spares: SpareConversations | None = None) -> None:
        self._map = conversation_map
        self.backend = backend
        self._names = names
        self._channels = channels
        self._instructions = instructions
        self._toolbox = toolbox or Toolbox()
        self._tools = [spec.as_tool() for spec in self._toolbox.specs]
        self._hosted_tools = tuple(hosted_tools)
        self._slack = slack
        self._max_tool_rounds = max_tool_rounds
        self._today = today
        self._safety_salt = safety_salt  # this installation's (store/installation.py)
        self._threads = threads  # where each message was written (None: every message is top level)
        self._files = files  # reads shared files (None: they are only described)
        self._spares = spares  # conversations made ahead (None: each is created when a channel needs it)
        self._known: dict[str, str] = {}  # channel → conversation id (the store has them all)
        self._preparing: dict[str, asyncio.Task[None]] = {}  # channel → its conversation being created ahead
        self._prepared: set[str] = set()  # channels the store was seen to have one for (no need to look again)

    def prepare(self, channel: str, user: str | None = None) -> bool:
        """A message came: look up its channel and `user` if they are not known, and give a channel this
        process knows no conversation of one now (a spare, or one created) — in the background, so its
        turn waits for none of those round trips (the intake calls this while the message reaches the
        disk). The lookups are asked first, so that their round trips overlap the rest. It only ever adds
        a conversation where the store has none, and never caches one, so a reset or another replica's
        turn meanwhile stays right. True if a lookup was started (the turn will wait for it)."""
        looking = self._channels.look_up_ahead(channel)
        if user:
            looking = self._names.look_up_ahead(user) or looking
        if channel in self._known or channel in self._prepared or channel in self._preparing \
                or len(self._preparing) >= MAX_PREPARING:
            return looking
        task = asyncio.create_task(self._prepare(channel), name=f"prepare-{channel}")
        self._preparing[channel] = task
        task.add_done_callback(lambda _task: self._preparing.pop(channel, None))
        return looking

    async def _prepare(self, channel: str) -> None:
        try:
            if await self._map.conversation(channel, self.backend.name) is None:
                await self._new_conversation(channel)
            if len(self._prepared) >= MAX_KNOWN_CONVERSATIONS:
                self._prepared.clear()
            self._prepared.add(channel)
        except Exception as exc:  # noqa: BLE001 - the channel's turn creates it then, and reports what fails
            log.debug("channel %s: no conversation created ahead (%s)", channel, exc)

    async def conversation_id(self, channel: str) -> str:
        preparing = self._preparing.get(channel)
        if preparing is not None:
            await asyncio.wait({preparing})  # (its outcome is in the store, or the turn creates one below)
        existing = await self.current(channel)
        if existing:
            return existing
        conversation_id = await self._new_conversation(channel)
        self._known[channel] = conversation_id
        return conversation_id

    async def _new_conversation(self, channel: str) -> str:
        """A conversation for a channel that had none: a spare made ahead, else one created now — unless
        another process gave it one meanwhile: that one."""
        if self._spares is not None:
            taken = await self._spares.take(channel)
            if taken is not None:
                return taken
        created = await self.backend.create_conversation(channel)
        return await self._map.claim_conversation(channel, self.backend.name, created)

    def top_up(self) -> None:
        """A quiet moment (the start, a turn just delivered): spare conversations are made in the background."""
        if self._spares is not None:
            self._spares.top_up()

    async def current(self, channel: str) -> str | None:
        known = self._known.get(channel)
        if known is None:
            known = await self._map.conversation(channel, self.backend.name)
            if known is not None:
                if len(self._known) >= MAX_KNOWN_CONVERSATIONS:
                    self._known.pop(next(iter(self._known)))
                self._known[channel] = known
        return known

    def forget_cached(self, channel: str) -> None:
        """Read the channel's conversation from the store next time (another replica may have changed it)."""
        self._known.pop(channel, None)

    async def reset(self, channel: str, *, lost: bool = False) -> None:
        """Forget the channel's conversation; the next message starts a new one. `lost`: the service no
        longer has it — nor, perhaps, the spares made beside it: they are dropped (new ones are made)."""
        self._known.pop(channel, None)
        self._prepared.discard(channel)
        await self._map.forget_conversation(channel, self.backend.name)
        if lost and self._spares is not None:
            await self._spares.discard()

    async def build_turn(self, channel: str, items: Sequence[InboxItem], *, with_past: bool = True,
                         attach: bool = True, read_files: bool = True) -> TurnRequest:
        """The model request for these messages: speaker-marked texts (each saying where it was written;
        text files inlined), the files the model can look at (unless not `attach`: context added without
        a turn keeps descriptions), the channel's instructions and this turn's note. `with_past`: the turn
        is answered, so a thread the conversation lacks the start of brings its earlier messages (see
        `ThreadPlaces`). Without `read_files`, files are only described."""
        user_ids = [item.user for item in items]
        for item in items:
            user_ids.extend(mentioned_users(item.text))
        names, info, conversation_id = self._names.known(user_ids), self._channels.known(channel), \
            self._known.get(channel)
        if names is None or info is None or conversation_id is None:
            # A channel's first message waits for three round trips (the speakers, the channel, a new
            # conversation): one at a time they would make it twice as slow as the next message. (Known,
            # they are taken as they are: tasks to gather them would hand the loop to other work first.)
            names, info, conversation_id = await asyncio.gather(
                self._names.names(user_ids), self._channels.info(channel), self.conversation_id(channel))
        places = await self._places(channel, items, with_past=with_past)
        earlier = [text for place in places.values() for text in place.earlier]
        files = [await self._read_files(channel, item, attach) if read_files else ReadFiles(notes=item.files)
                 for item in items]
        messages = earlier + [speaker_text(names[item.user], to_readable(item.text, names), read.notes,
                                           places[item.thread_ts].note, read.inline)
                              for item, read in zip(items, files, strict=True)]
        speakers = [names[item.user] for item in items]
        instructions = build_instructions(self._instructions, channel_name=info.name, is_direct=info.is_direct)
        speaker_ids = tuple(item.user for item in items)
        context = ToolContext(channel=channel, user_ids=tuple(dict.fromkeys(speaker_ids)), slack=self._slack)

        async def run_tools(calls: Sequence[ToolCall]) -> list[ToolOutput]:
            return await self._run_tools(context, calls)

        earlier_names = [name for place in places.values() for name in place.earlier_names]
        return TurnRequest(conversation_id=conversation_id, channel=channel,
                           instructions=instructions, note=turn_note(speakers, self._today()),
                           messages=messages, speaker_ids=speaker_ids,
                           speaker_names=tuple(earlier_names + speakers), tools=self._tools,
                           hosted_tools=self._hosted_tools, run_tools=run_tools, max_tool_rounds=self._max_tool_rounds,
                           safety_identifier=safety_identifier(self._safety_salt, speaker_ids[-1]) if items else None,
                           # (per message, as `messages`: the earlier ones of a thread carry none)
                           attachments=((),) * len(earlier) + tuple(read.attachments for read in files) if any(
                               read.attachments for read in files) else ())

    async def _places(self, channel: str, items: Sequence[InboxItem], *, with_past: bool) -> dict[str | None, Place]:
        """Each thread of the batch (a batch is one place, so usually one) → its Place."""
        places: dict[str | None, Place] = {}
        for item in items:
            if item.thread_ts not in places:
                places[item.thread_ts] = TOP_LEVEL if self._threads is None else await self._threads.place(
                    channel, item.thread_ts, before_ts=item.ts, with_past=with_past)
        return places

    async def entered(self, channel: str, items: Sequence[InboxItem]) -> None:
        """The turn's messages are in the conversation (answered, or added as context)."""
        if self._threads is not None:
            for thread_ts in dict.fromkeys(item.thread_ts for item in items):
                await self._threads.entered(channel, thread_ts)
        self.top_up()

    async def delivered(self, channel: str, thread_ts: str | None, posted: Sequence[str], text: str) -> None:
        """The assistant's reply (`posted`: its messages) is in Slack, in `thread_ts` or at the top level."""
        if self._threads is not None:
            await self._threads.delivered(channel, thread_ts, posted, text)
        self.top_up()

    async def answered_threads(self, channel: str, threads: Sequence[str]) -> frozenset[str]:
        """Which of these threads the assistant has answered in (follow-ups there need no mention)."""
        return await self._threads.answered(channel, threads) if self._threads is not None and threads else frozenset()

    async def _read_files(self, channel: str, item: InboxItem, attach: bool) -> ReadFiles:
        """What the model gets of the message's files (only their descriptions without a reader); the
        author hears of any it could not look at."""
        if not item.files or self._files is None:
            return ReadFiles(notes=item.files)
        vision = getattr(self.backend, "vision", None)
        allowed = attach and (vision is None or vision.allowed)
        accepts = getattr(self.backend, "accepts", frozenset()) if allowed else ()
        read = await self._files.read(item, accepts)
        await self._files.tell(channel, item, read.problems)
        return read

    async def build_continuation(self, channel: str, items: Sequence[InboxItem],
                                 calls: Sequence[ToolCall]) -> TurnRequest:
        """A turn interrupted while its tool calls were unanswered: run them, and send their results
        (the messages are already in the conversation)."""
        request = await self.build_turn(channel, items, with_past=False, read_files=False)
        assert request.run_tools is not None
        outputs = await request.run_tools(calls)
        return dataclasses.replace(request, messages=(), tool_outputs=tuple(outputs))

    def stream(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        return self.backend.stream_turn(request)

    async def add_context(self, request: TurnRequest) -> str | None:
        """The messages join the conversation without an answer (a mention-only channel); returns the
        conversation's newest item."""
        return await self.backend.add_context(request.conversation_id, request.messages)

    async def find_reply(self, channel: str, conversation_id: str | None,
                         messages: Sequence[str]) -> FoundReply | None:
        """The answer to a turn whose outcome is unknown, if the conversation has it."""
        if not conversation_id or not messages:
            return None
        after = await self._map.last_item(channel, self.backend.name)
        return await self.backend.find_reply(conversation_id, messages, after)

    async def _run_tools(self, context: ToolContext, calls: Sequence[ToolCall]) -> list[ToolOutput]:
        log.info("tools channel=%s calls=%s", context.channel, ",".join(call.name for call in calls))
        results = await asyncio.gather(*(self._toolbox.call(call.name, call.arguments, context) for call in calls))
        return [ToolOutput(call.call_id, result) for call, result in zip(calls, results, strict=True)]


@functools.lru_cache(maxsize=MAX_SAFETY_IDENTIFIERS)
def safety_identifier(salt: str, user_id: str) -> str:
    """OpenAI's safety_identifier for a Slack user: stable for this installation, and — salted with its
    random secret — not reversible by hashing every possible user id. (Remembered: a hash made afresh
    for every turn cost ~30 µs of the turn's way to the model, OpenSSL's set-up more than the hash.)"""
    return hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()[:32]
