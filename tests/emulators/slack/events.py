"""Build Events API payloads in Slack's shape (event_callback wrappers and the events inside)."""

from __future__ import annotations

import copy
import secrets
import time
import uuid
from typing import Any

from .state import Channel, Message, UserGroup, Workspace

VERIFICATION_TOKEN = "emulated-verification-token"


def new_event_id() -> str:
    return "Ev" + secrets.token_hex(5).upper()


def event_callback(ws: Workspace, event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """Wrap an event the way Slack delivers it to an app installed in one workspace."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "context_team_id": ws.team_id,
        "context_enterprise_id": None,
        "api_app_id": ws.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": int(time.time()),
        "authorizations": [{
            "enterprise_id": None, "team_id": ws.team_id, "user_id": ws.bot_user_id,
            "is_bot": True, "is_enterprise_install": False,
        }],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_urlsafe(24),
    }


def rich_text_blocks(text: str) -> list[dict[str, Any]]:
    """The rich_text block Slack's clients attach to what a person types."""
    return [{
        "type": "rich_text", "block_id": secrets.token_hex(3),
        "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
    }]


def user_message(ws: Workspace, channel: Channel, user: str, text: str, ts: str,
                 thread_ts: str | None, parent_user_id: str | None,
                 files: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A message as a person's Slack client stores it (also the body of the `message` event)."""
    data: dict[str, Any] = {
        "user": user, "type": "message", "ts": ts, "client_msg_id": str(uuid.uuid4()),
        "text": text, "team": ws.team_id, "blocks": rich_text_blocks(text),
    }
    if thread_ts:
        data["thread_ts"] = thread_ts
        if parent_user_id:
            data["parent_user_id"] = parent_user_id
    if files:
        data["files"] = copy.deepcopy(files)
        data["upload"] = False
        data["display_as_bot"] = False
    return data


def message_event(channel: Channel, data: dict[str, Any]) -> dict[str, Any]:
    """The `message` event for a stored message (Slack adds channel, event_ts and channel_type)."""
    event = copy.deepcopy(data)
    event.pop("reactions", None)
    event.update({"channel": channel.id, "event_ts": data["ts"], "channel_type": channel.channel_type})
    return event


def app_mention_event(channel: Channel, data: dict[str, Any]) -> dict[str, Any]:
    event = {k: copy.deepcopy(v) for k, v in data.items()
             if k in ("user", "text", "ts", "client_msg_id", "team", "blocks", "thread_ts", "files")}
    event.update({"type": "app_mention", "channel": channel.id, "event_ts": data["ts"]})
    return event


def message_changed_event(channel: Channel, message: Message, previous: dict[str, Any],
                          event_ts: str) -> dict[str, Any]:
    new = message.to_slack()
    new.pop("reactions", None)
    return {
        "type": "message", "subtype": "message_changed", "message": new,
        "previous_message": copy.deepcopy(previous), "channel": channel.id, "hidden": True,
        "ts": event_ts, "event_ts": event_ts, "channel_type": channel.channel_type,
    }


def message_deleted_event(channel: Channel, previous: dict[str, Any], event_ts: str) -> dict[str, Any]:
    return {
        "type": "message", "subtype": "message_deleted", "previous_message": copy.deepcopy(previous),
        "channel": channel.id, "hidden": True, "deleted_ts": previous["ts"], "ts": event_ts,
        "event_ts": event_ts, "channel_type": channel.channel_type,
    }


def user_change_event(ws: Workspace, user_id: str, event_ts: str) -> dict[str, Any]:
    return {"type": "user_change", "user": ws.users[user_id].to_slack(ws.team_id),
            "cache_ts": int(time.time()), "event_ts": event_ts}


def subteam_members_changed_event(ws: Workspace, group: UserGroup, previous_update: int, added: list[str],
                                  removed: list[str], event_ts: str) -> dict[str, Any]:
    """A user group's membership changed: only the delta, as Slack sends it (its counts are strings)."""
    return {"type": "subteam_members_changed", "subteam_id": group.id, "team_id": ws.team_id,
            "date_previous_update": previous_update, "date_update": group.date_update,
            "added_users": list(added), "added_users_count": str(len(added)),
            "removed_users": list(removed), "removed_users_count": str(len(removed)), "event_ts": event_ts}


def member_joined_events(ws: Workspace, channel: Channel, user_id: str,
                         ts: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`member_joined_channel` and the `channel_join` message Slack posts alongside it."""
    joined = {"type": "member_joined_channel", "user": user_id, "channel": channel.id,
              "channel_type": "G" if channel.is_private else "C", "team": ws.team_id,
              "event_ts": ts}
    join_message = {"subtype": "channel_join", "user": user_id, "text": f"<@{user_id}> has joined the channel",
                    "type": "message", "ts": ts}
    return joined, join_message


def rename_events(channel: Channel, user_id: str, old_name: str,
                  ts: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`channel_rename` (`group_rename` for a private channel) and the `channel_name` message Slack posts
    alongside it."""
    renamed = {"type": "group_rename" if channel.is_private else "channel_rename",
               "channel": {"id": channel.id, "name": channel.name, "created": channel.created}, "event_ts": ts}
    message = {"subtype": "channel_name", "user": user_id, "old_name": old_name, "name": channel.name,
               "text": f"<@{user_id}> renamed the channel from \u201c{old_name}\u201d to \u201c{channel.name}\u201d",
               "type": "message", "ts": ts}
    return renamed, message


def slash_command_fields(ws: Workspace, channel: Channel, user_id: str, command: str, text: str,
                         response_url: str, trigger_id: str) -> dict[str, str]:
    """The form fields of a slash command request (Socket Mode sends the same as a JSON object)."""
    user = ws.users.get(user_id)
    return {
        "token": VERIFICATION_TOKEN, "team_id": ws.team_id, "team_domain": "emulated",
        "channel_id": channel.id, "channel_name": "directmessage" if channel.is_im else channel.name,
        "user_id": user_id, "user_name": user.name if user else user_id, "command": command,
        "text": text, "api_app_id": ws.app_id, "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": trigger_id,
    }
