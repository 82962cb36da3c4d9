"""auth, apps.connections, users, conversations, reactions and assistant.threads methods."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .methods_common import conversation, page, truthy
from .rate_limits import NON_MARKETPLACE_MAX_OBJECTS
from .state import BOT_NAME, TEAM_NAME, is_ts, ts_key
from .web_api import ApiError

if TYPE_CHECKING:
    from .core import SlackCore


def auth_test(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    ws = core.ws
    return {"url": ws.url, "team": TEAM_NAME, "user": BOT_NAME, "team_id": ws.team_id,
            "user_id": ws.bot_user_id, "bot_id": ws.bot_id, "is_enterprise_install": False}


def apps_connections_open(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    host = urlsplit(core.server_url).netloc
    ticket = core.hub.issue_ticket()
    return {"url": f"ws://{host}/link/?ticket={ticket}&app_id={core.ws.app_id}"}


def users_info(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    user = core.ws.users.get(args.get("user", ""))
    if user is None:
        raise ApiError("user_not_found")
    return {"user": user.to_slack(core.ws.team_id)}


def users_list(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    members = [u.to_slack(core.ws.team_id) for u in core.ws.users.values()]
    chunk, cursor = page(members, args)
    return {"members": chunk, "cache_ts": int(time.time()), "response_metadata": {"next_cursor": cursor}}


def usergroups_users_list(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    group = core.ws.usergroups.get(str(args.get("usergroup") or ""))
    if group is None or (group.disabled and not truthy(args.get("include_disabled"))):
        raise ApiError("no_such_subteam")
    return {"users": list(group.users)}


def conversations_info(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args, member=False)
    return {"channel": channel.to_slack(core.ws.bot_user_id)}


def conversations_members(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args, member=False)
    chunk, cursor = page(list(channel.members), args)
    return {"members": chunk, "response_metadata": {"next_cursor": cursor}}


def conversations_list(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    types = set((args.get("types") or "public_channel").split(","))
    keep_archived = not truthy(args.get("exclude_archived"))
    found = []
    for channel in core.ws.channels.values():
        kind = "im" if channel.is_im else "private_channel" if channel.is_private else "public_channel"
        if kind in types and core.ws.visible_to_bot(channel) and (keep_archived or not channel.is_archived):
            found.append(channel.to_slack(core.ws.bot_user_id))
    chunk, cursor = page(found, args)
    return {"channels": chunk, "response_metadata": {"next_cursor": cursor}}


def users_conversations(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    """The conversations a user (the caller: the bot) is a member of; private ones only where the bot is
    too. Types as conversations.list."""
    member = str(args.get("user") or core.ws.bot_user_id)
    if member not in core.ws.users and member != core.ws.bot_user_id:
        raise ApiError("user_not_found")
    types = set((args.get("types") or "public_channel").split(","))
    keep_archived = not truthy(args.get("exclude_archived"))
    found = []
    for channel in core.ws.channels.values():
        kind = "im" if channel.is_im else "private_channel" if channel.is_private else "public_channel"
        if kind in types and member in channel.members and core.ws.visible_to_bot(channel) \
                and (keep_archived or not channel.is_archived):
            found.append(channel.to_slack(core.ws.bot_user_id))
    chunk, cursor = page(found, args)
    return {"channels": chunk, "response_metadata": {"next_cursor": cursor}}


def conversations_open(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    if args.get("channel"):
        channel = conversation(core, args, member=False)
    else:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if not users:
            raise ApiError("users_list_not_supplied")
        if len(users) > 1:
            raise ApiError("not_implemented_by_emulator")  # multi-person DMs are not emulated
        if users[0] not in core.ws.users:
            raise ApiError("user_not_found")
        channel = core.ws.im_with(users[0])
    return {"channel": channel.to_slack(core.ws.bot_user_id) if truthy(args.get("return_im"))
            else {"id": channel.id}}


def _bounds(args: dict[str, Any]) -> tuple[tuple[int, int] | None, tuple[int, int] | None, bool]:
    latest, oldest = args.get("latest") or None, args.get("oldest") or None
    if latest is not None and not is_ts(latest) and not str(latest).isdigit():
        raise ApiError("invalid_ts_latest")
    if oldest is not None and not is_ts(oldest) and not str(oldest).isdigit():
        raise ApiError("invalid_ts_oldest")
    return (ts_key(latest) if latest else None, ts_key(oldest) if oldest else None,
            truthy(args.get("inclusive")))


def _within(ts: str, latest: tuple[int, int] | None, oldest: tuple[int, int] | None, inclusive: bool) -> bool:
    key = ts_key(ts)
    if latest is not None and (key > latest or (key == latest and not inclusive)):
        return False
    return not (oldest is not None and (key < oldest or (key == oldest and not inclusive)))


HISTORY_LIMIT = (100, 999)  # conversations.history `limit`: default and maximum (its spec)
REPLIES_LIMIT = (1000, 1000)  # conversations.replies `limit`: default and maximum (its spec)


def _read_page(core: SlackCore, *, default: int, maximum: int) -> dict[str, int]:
    """The `limit` default and cap of a history read: the method's own, or 15 for an app distributed
    outside the Marketplace."""
    if core.options.distribution == "non_marketplace":
        return {"default": NON_MARKETPLACE_MAX_OBJECTS, "maximum": NON_MARKETPLACE_MAX_OBJECTS}
    return {"default": default, "maximum": maximum}


def conversations_history(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args)
    latest, oldest, inclusive = _bounds(args)
    top_level = [m.to_slack() for m in reversed(channel.sorted_messages())
                 if m.data.get("thread_ts") in (None, m.ts) or m.data.get("subtype") == "thread_broadcast"]
    selected = [m for m in top_level if _within(m["ts"], latest, oldest, inclusive)]
    chunk, cursor = page(_metadata_if_asked(selected, args), args,
                         **_read_page(core, default=HISTORY_LIMIT[0], maximum=HISTORY_LIMIT[1]))
    return {"messages": chunk, "has_more": bool(cursor), "pin_count": 0, "channel_actions_ts": None,
            "channel_actions_count": 0, "response_metadata": {"next_cursor": cursor}}


def conversations_replies(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args)
    parent = core.ws.find_message(channel, args.get("ts"))
    if parent is None:
        raise ApiError("thread_not_found")
    thread_ts = parent.data.get("thread_ts") or parent.ts
    latest, oldest, inclusive = _bounds(args)
    thread = [m.to_slack() for m in channel.sorted_messages()
              if m.ts == thread_ts or m.data.get("thread_ts") == thread_ts]
    selected = [m for m in thread if m["ts"] == thread_ts or _within(m["ts"], latest, oldest, inclusive)]
    chunk, cursor = page(_metadata_if_asked(selected, args), args,
                         **_read_page(core, default=REPLIES_LIMIT[0], maximum=REPLIES_LIMIT[1]))
    return {"messages": chunk, "has_more": bool(cursor), "response_metadata": {"next_cursor": cursor}}


def _metadata_if_asked(messages: list[dict[str, Any]], args: dict[str, Any]) -> list[dict[str, Any]]:
    """Message metadata is returned only with `include_all_metadata` (it defaults to false)."""
    if truthy(args.get("include_all_metadata")):
        return messages
    return [{key: value for key, value in message.items() if key != "metadata"} for message in messages]


def _reaction_target(core: SlackCore, args: dict[str, Any]) -> tuple[Any, str]:
    name = str(args.get("name") or "").strip(":")
    if not name or " " in name:
        raise ApiError("invalid_name")
    if not args.get("channel") or not args.get("timestamp"):
        raise ApiError("no_item_specified")
    channel = conversation(core, args, member=False)
    message = core.ws.find_message(channel, args.get("timestamp"))
    if message is None:
        raise ApiError("message_not_found")
    return message, name


def reactions_add(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    message, name = _reaction_target(core, args)
    users = message.reactions.setdefault(name, [])
    if core.ws.bot_user_id in users:
        raise ApiError("already_reacted")
    users.append(core.ws.bot_user_id)
    return {}


def reactions_remove(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    message, name = _reaction_target(core, args)
    users = message.reactions.get(name, [])
    if core.ws.bot_user_id not in users:
        raise ApiError("no_reaction")
    users.remove(core.ws.bot_user_id)
    if not users:
        del message.reactions[name]
    return {}


def assistant_threads_set_status(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    channel = conversation(core, args, "channel_id", member=False)
    thread_ts = args.get("thread_ts")
    if not is_ts(thread_ts) or core.ws.find_message(channel, thread_ts) is None:
        raise ApiError("invalid_thread_ts")
    core.statuses.append({"channel_id": channel.id, "thread_ts": thread_ts, "status": args.get("status", ""),
                          "loading_messages": args.get("loading_messages"), "time": time.time()})
    return {}


HANDLERS = {
    "auth.test": auth_test,
    "apps.connections.open": apps_connections_open,
    "users.info": users_info,
    "users.list": users_list,
    "users.conversations": users_conversations,
    "usergroups.users.list": usergroups_users_list,
    "conversations.info": conversations_info,
    "conversations.members": conversations_members,
    "conversations.list": conversations_list,
    "conversations.open": conversations_open,
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
    "reactions.add": reactions_add,
    "reactions.remove": reactions_remove,
    "assistant.threads.setStatus": assistant_threads_set_status,
}
