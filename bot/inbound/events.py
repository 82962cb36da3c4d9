"""Which Slack events reach the model, and their normalised form."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bot.messages import FileNote, IncomingMessage, file_note
from bot.outbound.markup import mentions_user

# Message subtypes that are a person saying something; every other subtype (edits, deletions, joins,
# topic changes, bot messages …) is acked and ignored.
HUMAN_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})
# What the model reads after a message cut at BRIDGE_MAX_MESSAGE_CHARS (on the same line: a marker at the
# start of a line would be escaped as a forged speaker marker).
CUT_NOTE = " [… message cut at {limit:,} characters]"


def human_message(event: Mapping[str, Any], *, bot_user_id: str | None) -> IncomingMessage | None:
    """The message a person wrote, from a `message` or `app_mention` event; None for anything else."""
    if event.get("type") not in ("message", "app_mention"):
        return None
    if event.get("subtype") not in HUMAN_SUBTYPES:
        return None
    user = event.get("user")
    channel = event.get("channel")
    ts = event.get("ts")
    if event.get("bot_id") or event.get("bot_profile") or not user or not channel or not ts:
        return None
    if bot_user_id is not None and user == bot_user_id:
        return None
    text = valid_text(event.get("text") or "")
    files = tuple(_with_valid_name(file_note(f)) for f in event.get("files") or () if isinstance(f, Mapping))
    if not text.strip() and not files:
        return None
    thread_ts = event.get("thread_ts")
    return IncomingMessage(
        channel=channel, ts=ts, user=user, text=text,
        thread_ts=thread_ts if thread_ts and thread_ts != ts else None,
        files=files,
        mentions_bot=event.get("type") == "app_mention"
        or (bot_user_id is not None and mentions_user(text, bot_user_id)),
        channel_type=event.get("channel_type") or _channel_type(channel),
    )


def _with_valid_name(note: FileNote) -> FileNote:
    return dataclasses.replace(note, name=valid_text(note.name))


def valid_text(text: object) -> str:
    """Text that can be stored and sent on: JSON can carry lone UTF-16 surrogates ("\\ud800"), which no
    UTF-8 encoder takes; each becomes U+FFFD (a pair split in two is joined again)."""
    if not isinstance(text, str):
        return ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _channel_type(channel: str) -> str:
    return {"D": "im", "G": "group"}.get(channel[:1], "channel")


def cut_message(message: IncomingMessage, limit: int) -> tuple[IncomingMessage, int | None]:
    """The message with its text cut at `limit` characters and marked so; and its original length, or
    None if it was not longer."""
    if len(message.text) <= limit:
        return message, None
    return dataclasses.replace(message, text=message.text[:limit].rstrip() + CUT_NOTE.format(limit=limit)), \
        len(message.text)
