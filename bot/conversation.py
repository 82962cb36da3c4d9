"""The conversation service: channel → conversation, and what one turn sends to the model."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Sequence

from bot.backends.base import Backend, FoundReply, TurnEvent, TurnRequest
from bot.items import InboxItem
from bot.names import NameDirectory
from bot.prompt import build_instructions, speaker_text
from bot.slack.channels import ChannelDirectory
from bot.slack.markup import mentioned_users, to_readable
from bot.store import Store


class ConversationService:
    """Owns each channel's conversation id (created lazily, persisted) and builds every turn."""

    def __init__(self, *, store: Store, backend: Backend, names: NameDirectory, channels: ChannelDirectory,
                 instructions: str, today: Callable[[], dt.date] = dt.date.today) -> None:
        self._store = store
        self.backend = backend
        self._names = names
        self._channels = channels
        self._instructions = instructions
        self._today = today

    async def conversation_id(self, channel: str) -> str:
        existing = await self._store.conversation(channel, self.backend.name)
        if existing:
            return existing
        conversation_id = await self.backend.create_conversation(channel)
        await self._store.set_conversation(channel, self.backend.name, conversation_id)
        return conversation_id

    async def current(self, channel: str) -> str | None:
        return await self._store.conversation(channel, self.backend.name)

    async def reset(self, channel: str) -> None:
        """Forget the channel's conversation; the next message starts a new one."""
        await self._store.forget_conversation(channel, self.backend.name)

    async def build_turn(self, channel: str, items: Sequence[InboxItem]) -> TurnRequest:
        """The model request for these messages: speaker-marked texts and this turn's instructions."""
        user_ids = [item.user for item in items]
        for item in items:
            user_ids.extend(mentioned_users(item.text))
        names = await self._names.names(user_ids)
        info = await self._channels.info(channel)
        messages = [speaker_text(names[item.user], to_readable(item.text, names), item.files) for item in items]
        speakers = [names[item.user] for item in items]
        instructions = build_instructions(self._instructions, channel_name=info.name, is_direct=info.is_direct,
                                          speakers=speakers, today=self._today())
        return TurnRequest(conversation_id=await self.conversation_id(channel), channel=channel,
                           instructions=instructions, messages=messages, speaker_ids=tuple(user_ids[:len(items)]))

    def stream(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        return self.backend.stream_turn(request)

    async def find_reply(self, channel: str, conversation_id: str | None,
                         messages: Sequence[str]) -> FoundReply | None:
        """The answer to a turn whose outcome is unknown, if the conversation has it."""
        if not conversation_id or not messages:
            return None
        after = await self._store.last_item(channel, self.backend.name)
        return await self.backend.find_reply(conversation_id, messages, after)
