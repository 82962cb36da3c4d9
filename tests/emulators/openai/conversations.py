"""The Conversations API: /v1/conversations and its items."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors, items
from .app import BODY, Platform
from .state import Conversation, new_id, now


def register(app: web.Application, platform: Platform) -> None:
    endpoints = ConversationsEndpoints(platform)
    app.router.add_post("/v1/conversations", endpoints.create)
    app.router.add_get("/v1/conversations/{conversation_id}", endpoints.retrieve)
    app.router.add_post("/v1/conversations/{conversation_id}", endpoints.update)
    app.router.add_delete("/v1/conversations/{conversation_id}", endpoints.delete)
    app.router.add_post("/v1/conversations/{conversation_id}/items", endpoints.add_items)
    app.router.add_get("/v1/conversations/{conversation_id}/items", endpoints.list_items)
    app.router.add_get("/v1/conversations/{conversation_id}/items/{item_id}", endpoints.get_item)
    app.router.add_delete("/v1/conversations/{conversation_id}/items/{item_id}", endpoints.delete_item)


class ConversationsEndpoints:
    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.state = platform.state

    def _conversation(self, request: web.Request) -> Conversation:
        conv_id = request.match_info["conversation_id"]
        conversation = self.state.conversations.get(conv_id)
        if conversation is None:
            raise errors.conversation_not_found(conv_id)
        return conversation

    @staticmethod
    def _unlocked(conversation: Conversation) -> Conversation:
        if conversation.active_response is not None:
            raise errors.conversation_locked()
        return conversation

    async def create(self, request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = request[BODY] or {}
        conversation = Conversation(new_id("conv", hex_chars=48), now(), dict(body.get("metadata") or {}))
        conversation.items = items.stored_items(body.get("items") or [])
        self.state.conversations[conversation.id] = conversation
        return self.p.json(request, conversation.resource())

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
        return self.p.json(request, self._conversation(request).resource())

    async def update(self, request: web.Request) -> web.StreamResponse:
        conversation = self._conversation(request)
        conversation.metadata = dict(request[BODY].get("metadata") or {})
        return self.p.json(request, conversation.resource())

    async def delete(self, request: web.Request) -> web.StreamResponse:
        conversation = self._conversation(request)
        del self.state.conversations[conversation.id]
        return self.p.json(request, {"id": conversation.id, "object": "conversation.deleted", "deleted": True})

    async def add_items(self, request: web.Request) -> web.StreamResponse:
        conversation = self._unlocked(self._conversation(request))
        added = items.stored_items(request[BODY].get("items") or [])
        conversation.items.extend(added)
        return self.p.json(request, {"object": "list", "data": added,
                                     "first_id": added[0]["id"] if added else None,
                                     "last_id": added[-1]["id"] if added else None, "has_more": False})

    async def list_items(self, request: web.Request) -> web.StreamResponse:
        conversation = self._conversation(request)
        limit, order, after = items.list_params(request.query)
        return self.p.json(request, items.page(conversation.items, limit=limit, order=order, after=after))

    def _item(self, conversation: Conversation, item_id: str) -> dict[str, Any]:
        for item in conversation.items:
            if item.get("id") == item_id:
                return item
        raise errors.item_not_found(item_id)

    async def get_item(self, request: web.Request) -> web.StreamResponse:
        conversation = self._conversation(request)
        return self.p.json(request, self._item(conversation, request.match_info["item_id"]))

    async def delete_item(self, request: web.Request) -> web.StreamResponse:
        conversation = self._unlocked(self._conversation(request))
        item = self._item(conversation, request.match_info["item_id"])
        conversation.items.remove(item)
        return self.p.json(request, conversation.resource())
