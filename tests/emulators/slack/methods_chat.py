"""chat.* methods: posting, updating, deleting, ephemeral messages and native streaming."""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from . import events as ev
from .methods_common import MARKDOWN_LIMIT, conversation, message_content, truthy
from .state import Channel, Message, StreamState
from .web_api import ApiError

if TYPE_CHECKING:
    from .core import SlackCore


def post_bot_message(core: SlackCore, channel: Channel, *, text: str | None, markdown_text: str | None = None,
                     blocks: list[Any] | None = None, attachments: list[Any] | None = None,
                     thread_ts: str | None = None, reply_broadcast: bool = False,
                     metadata: Any = None, stream: StreamState | None = None) -> Message:
    """Store a message from the app's bot user and echo it to the app like Slack does."""
    ws = core.ws
    parent = core.thread_parent(channel, thread_ts) if thread_ts else None
    data: dict[str, Any] = {
        "user": ws.bot_user_id, "type": "message", "ts": ws.clock.next(), "bot_id": ws.bot_id,
        "app_id": ws.app_id, "text": markdown_text if markdown_text is not None else (text or ""),
        "team": ws.team_id, "bot_profile": ws.bot_profile(),
    }
    if blocks:
        data["blocks"] = copy.deepcopy(blocks)
    if attachments:
        data["attachments"] = copy.deepcopy(attachments)
    if thread_ts:
        data["thread_ts"] = parent.ts if parent else thread_ts
        if parent is not None and parent.data.get("user"):
            data["parent_user_id"] = parent.data["user"]
        if reply_broadcast:
            data["subtype"] = "thread_broadcast"
    if metadata:
        data["metadata"] = copy.deepcopy(metadata)
    message = Message(data=data, markdown_text=markdown_text, stream=stream)
    core.store(channel, message, parent)
    if core.options.echo_bot_events:
        core.emit(ev.message_event(channel, data), channel=channel)
    return message


def _own_message(core: SlackCore, channel: Channel, ts: Any, *, not_owned: str) -> Message:
    message = core.ws.find_message(channel, ts)
    if message is None:
        raise ApiError("message_not_found")
    if message.data.get("bot_id") != core.ws.bot_id:
        raise ApiError(not_owned)
    return message


def _streaming(message: Message) -> bool:
    return message.stream is not None and message.stream.active(time.monotonic())


def chat_post_message(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args)
    if channel.is_archived:
        raise ApiError("is_archived")
    content = message_content(args)
    message = post_bot_message(
        core, channel, text=content["text"], markdown_text=content["markdown_text"], blocks=content["blocks"],
        attachments=content["attachments"], thread_ts=args.get("thread_ts") or None,
        reply_broadcast=truthy(args.get("reply_broadcast")), metadata=args.get("metadata"))
    return {"channel": channel.id, "ts": message.ts, "message": message.to_slack()}


def chat_update(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args, member=False)
    message = _own_message(core, channel, args.get("ts"), not_owned="cant_update_message")
    if _streaming(message):
        raise ApiError("streaming_state_conflict")
    content = message_content(args)
    previous = message.to_slack()
    message.history.append(previous)
    data = message.data
    data["text"] = content["markdown_text"] if content["markdown_text"] is not None else (content["text"] or "")
    message.markdown_text = content["markdown_text"]
    for key in ("blocks", "attachments"):
        if content[key] is not None:
            data[key] = copy.deepcopy(content[key])
        else:
            data.pop(key, None)
    edit_ts = core.ws.clock.next()
    data["edited"] = {"user": core.ws.bot_user_id, "ts": edit_ts}
    if core.options.echo_bot_events:
        core.emit(ev.message_changed_event(channel, message, previous, edit_ts), channel=channel)
    return {"channel": channel.id, "ts": message.ts, "text": data["text"], "message": message.to_slack()}


def chat_delete(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args, member=False)
    message = _own_message(core, channel, args.get("ts"), not_owned="cant_delete_message")
    previous = message.to_slack()
    del channel.messages[message.ts]
    if core.options.echo_bot_events:
        core.emit(ev.message_deleted_event(channel, previous, core.ws.clock.next()), channel=channel)
    return {"channel": channel.id, "ts": message.ts}


def chat_post_ephemeral(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args)
    user = args.get("user")
    if user not in core.ws.users or user not in channel.members:
        raise ApiError("user_not_in_channel")
    content = message_content(args)
    ts = core.ws.clock.next()
    core.ephemerals.append({"channel": channel.id, "user": user, "message_ts": ts,
                            "thread_ts": args.get("thread_ts"), **copy.deepcopy(content)})
    return {"message_ts": ts}


def chat_get_permalink(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args, member=False)
    message = core.ws.find_message(channel, args.get("message_ts"))
    if message is None:
        raise ApiError("message_not_found")
    link = f"{core.ws.url}archives/{channel.id}/p{message.ts.replace('.', '')}"
    if message.data.get("thread_ts") and message.data["thread_ts"] != message.ts:
        link += f"?thread_ts={message.data['thread_ts']}&cid={channel.id}"
    return {"channel": channel.id, "permalink": link}


def _stream_text(args: dict[str, Any]) -> str:
    """The markdown one stream call adds: `markdown_text` plus any `markdown_text` chunks."""
    parts = []
    markdown = args.get("markdown_text")
    if isinstance(markdown, str):
        parts.append(markdown)
    chunks = args.get("chunks")
    if chunks is not None:
        if not isinstance(chunks, list) or not all(isinstance(c, dict) and c.get("type") for c in chunks):
            raise ApiError("invalid_chunks")
        parts.extend(c.get("text", "") for c in chunks if c["type"] == "markdown_text")
    text = "".join(parts)
    if len(text) > MARKDOWN_LIMIT:
        raise ApiError("msg_too_long")
    return text


def chat_start_stream(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args)
    if channel.is_archived:
        raise ApiError("is_archived")
    if not args.get("thread_ts"):
        raise ApiError("invalid_arguments", response_metadata={
            "messages": ["[ERROR] missing required field: thread_ts (streamed messages are thread replies)"]})
    recipient = args.get("recipient_user_id")
    if not channel.is_im:
        if not recipient:
            raise ApiError("missing_recipient_user_id")
        if not args.get("recipient_team_id"):
            raise ApiError("missing_recipient_team_id")
    if recipient and recipient not in core.ws.users:
        raise ApiError("user_not_found")
    text = _stream_text(args)
    now = time.monotonic()
    stream = StreamState(started_at=now, expires_at=now + core.options.stream_expiry, recipient_user_id=recipient)
    message = post_bot_message(core, channel, text=None, markdown_text=text, thread_ts=args["thread_ts"],
                               stream=stream)
    return {"channel": channel.id, "ts": message.ts}


def _streaming_message(core: SlackCore, args: dict[str, Any]) -> tuple[Channel, Message]:
    channel = conversation(core, args)
    message = _own_message(core, channel, args.get("ts"), not_owned="message_not_owned_by_app")
    if not _streaming(message):
        raise ApiError("message_not_in_streaming_state")
    return channel, message


def _append(message: Message, text: str) -> None:
    message.markdown_text = (message.markdown_text or "") + text
    message.data["text"] = message.markdown_text


def chat_append_stream(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel, message = _streaming_message(core, args)
    text = _stream_text(args)
    if not text:
        raise ApiError("no_text")
    _append(message, text)
    return {"channel": channel.id, "ts": message.ts}


def chat_stop_stream(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel, message = _streaming_message(core, args)
    _append(message, _stream_text(args))
    assert message.stream is not None
    message.stream.stopped = True
    content = message_content({"blocks": args.get("blocks")}, require=False)
    if content["blocks"]:
        message.data["blocks"] = content["blocks"]
    return {"channel": channel.id, "ts": message.ts, "message": message.to_slack()}


HANDLERS = {
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.getPermalink": chat_get_permalink,
    "chat.startStream": chat_start_stream,
    "chat.appendStream": chat_append_stream,
    "chat.stopStream": chat_stop_stream,
}
