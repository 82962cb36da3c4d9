"""Argument helpers shared by the Web API method handlers."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from .state import Channel
from .web_api import ApiError

if TYPE_CHECKING:
    from .core import SlackCore

TEXT_LIMIT = 40_000  # characters in `text`
MARKDOWN_LIMIT = 12_000  # characters in `markdown_text` (per call for chat.appendStream)
MAX_BLOCKS = 50
DEFAULT_PAGE = 100
MAX_PAGE = 999


def truthy(value: Any) -> bool:
    """Form values are strings: Slack reads "true" and "1" as true."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def conversation(core: SlackCore, args: dict[str, Any], key: str = "channel", *,
                 member: bool = True) -> Channel:
    """The conversation an argument names, as the bot may see it; errors like Slack's."""
    ref = args.get(key)
    channel = core.ws.channel_by_ref(ref)
    if channel is None and isinstance(ref, str) and ref in core.ws.users and key == "channel":
        channel = core.ws.im_with(ref)  # posting to a user id means the DM with them
    if channel is None or not core.ws.visible_to_bot(channel):
        raise ApiError("channel_not_found")
    if member and core.ws.bot_user_id not in channel.members:
        raise ApiError("not_in_channel")
    return channel


def json_list(args: dict[str, Any], key: str, error: str) -> list[Any] | None:
    """A JSON-valued argument (a string in forms, a structure in JSON bodies) that must be a list."""
    value = args.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ApiError(error) from None
    if not isinstance(value, list):
        raise ApiError(error)
    return value


def message_content(args: dict[str, Any], *, require: bool = True) -> dict[str, Any]:
    """Validate text / markdown_text / blocks / attachments the way chat.postMessage does."""
    text = args.get("text") or None
    markdown = args.get("markdown_text") or None
    blocks = json_list(args, "blocks", "invalid_blocks_format")
    attachments = json_list(args, "attachments", "invalid_attachments")
    if markdown is not None and (text is not None or blocks):
        raise ApiError("markdown_text_conflict")
    if markdown is not None and len(markdown) > MARKDOWN_LIMIT:
        raise ApiError("msg_too_long")
    if text is not None and len(text) > TEXT_LIMIT:
        raise ApiError("msg_too_long")
    if blocks is not None:
        if len(blocks) > MAX_BLOCKS or not all(isinstance(b, dict) and b.get("type") for b in blocks):
            raise ApiError("invalid_blocks")
    if require and text is None and markdown is None and not blocks and not attachments:
        raise ApiError("no_text")
    return {"text": text, "markdown_text": markdown, "blocks": blocks, "attachments": attachments}


def page(items: list[Any], args: dict[str, Any], *, default: int = DEFAULT_PAGE,
         maximum: int = MAX_PAGE) -> tuple[list[Any], str]:
    """Cursor pagination: returns (this page, next_cursor or ""); `limit` defaults to `default` and is
    capped at `maximum` (each method's own, from its spec)."""
    try:
        limit = int(args.get("limit") or default)
    except ValueError:
        raise ApiError("invalid_limit") from None
    limit = max(1, min(limit, maximum))
    start = 0
    cursor = args.get("cursor")
    if cursor:
        try:
            start = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
        except ValueError:
            raise ApiError("invalid_cursor") from None
    chunk = items[start:start + limit]
    more = start + limit < len(items)
    next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
    return chunk, next_cursor
