"""The emulated Slack side, living on the emulator's loop: workspace, records, event emission.

`SlackEmulator` (emulator.py) is the thread-safe face tests use; it calls into this object only
on the loop. Web API handlers (methods_*.py) receive it as their first argument.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import events as ev
from .envelopes import Delivery, Envelope
from .files import FileStore, SharedFile, file_object, partial_file_object
from .http_events import RETRY_DELAYS_SECONDS, HttpEventSender
from .methods_chat import post_bot_message
from .rate_limits import (
    DISTRIBUTIONS,
    NON_MARKETPLACE_CALLS_PER_MINUTE,
    NON_MARKETPLACE_READS,
    RateLimiter,
    RateLimitPolicy,
)
from .socket_mode import REFRESH_GRACE_SECONDS, SocketModeHub
from .spec_check import event_types
from .state import BOT_NAME, Channel, IdFactory, Message, TsClock, User, UserGroup, Workspace, ts_key
from .web_api import Call, Fault

STREAM_EXPIRY_SECONDS = 300.0
RESPONSE_URL_MAX_USES = 5
# Message subtypes that are new messages (stored) rather than changes to existing ones.
STORED_SUBTYPES = frozenset({None, "bot_message", "channel_join", "channel_leave", "channel_topic",
                             "channel_purpose", "channel_name", "file_share", "thread_broadcast",
                             "me_message"})


@dataclass(frozen=True)
class EmulatorOptions:
    bot_token: str = "xoxb-test-bot"
    app_token: str = "xapp-test-app"
    signing_secret: str = "test-signing-secret"
    team_id: str = "T0TEAM001"
    ack_timeout: float = 3.0
    events_url: str | None = None
    echo_bot_events: bool = True
    stream_expiry: float = STREAM_EXPIRY_SECONDS
    refresh_grace: float = REFRESH_GRACE_SECONDS
    http_retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS
    distribution: str = "internal"  # or "non_marketplace": see DISTRIBUTIONS


class SlackCore:
    def __init__(self, options: EmulatorOptions, policy: RateLimitPolicy) -> None:
        self.options = options
        ids = IdFactory()
        self.ws = Workspace(team_id=options.team_id, ids=ids, clock=TsClock(), app_id=ids.next("A"),
                            bot_id=ids.next("B"), bot_user_id=ids.next("U"))
        self.ws.users[self.ws.bot_user_id] = User(
            id=self.ws.bot_user_id, name=BOT_NAME, display_name="Assistant", real_name="Assistant",
            is_bot=True, bot_id=self.ws.bot_id)
        self.limiter = RateLimiter(policy)
        if options.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, not {options.distribution!r}")
        # Applies whatever `policy` says (tests usually turn the tiers off; this limit is the app's own).
        self.read_limiter = RateLimiter(RateLimitPolicy(
            tiers={}, channel_buckets={},
            method_limits={m: (NON_MARKETPLACE_CALLS_PER_MINUTE, 60.0) for m in NON_MARKETPLACE_READS},
        )) if options.distribution == "non_marketplace" else None
        self.server_url = ""  # set once the server listens
        self.revoked_tokens: set[str] = set()  # tokens Slack now answers `token_revoked` (the app uninstalled…)
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.envelopes: list[Envelope] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.response_posts: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.files = FileStore()
        self.command_responses: dict[str, list[dict[str, Any]]] = {}
        self._response_urls: dict[str, dict[str, Any]] = {}
        self.hub = SocketModeHub(app_id=self.ws.app_id, ack_timeout=options.ack_timeout, on_ack=self.on_ack,
                                 violation=self.violation, refresh_grace=options.refresh_grace)
        self.delivery: Delivery = self.hub
        if options.events_url:
            self.use_http(options.events_url)

    def use_http(self, events_url: str, *more_urls: str) -> None:
        """Deliver from now on by signed HTTP POSTs to `events_url` (Socket Mode stays reachable); with
        `more_urls`, spread over them all, round robin, like a load balancer in front of replicas."""
        self.options = dataclasses.replace(self.options, events_url=events_url)
        if not isinstance(self.delivery, HttpEventSender):
            self.delivery = HttpEventSender(
                events_url=events_url, signing_secret=self.options.signing_secret, ack_timeout=self.options.ack_timeout,
                on_ack=self.on_ack, retry_delays=self.options.http_retry_delays)
        self.delivery.events_urls = [events_url, *more_urls]

    def violation(self, text: str) -> None:
        self.violations.append(text)

    @property
    def transport(self) -> str:
        return "http" if self.options.events_url else "socket"

    # -- directory ------------------------------------------------------------------------
    def add_user(self, *, name: str, display_name: str, real_name: str, is_bot: bool,
                 user_id: str | None, **roles: bool) -> str:
        uid = user_id or self.ws.ids.next("U")
        self.ws.users[uid] = User(id=uid, name=name, display_name=display_name, real_name=real_name,
                                  is_bot=is_bot, bot_id=self.ws.ids.next("B") if is_bot else None, **roles)
        return uid

    def add_usergroup(self, handle: str, members: Sequence[str]) -> str:
        group = UserGroup(id=self.ws.ids.next("S"), handle=handle, users=[self._user(m).id for m in members])
        self.ws.usergroups[group.id] = group
        return group.id

    def set_usergroup_members(self, group_id: str, members: Sequence[str]) -> None:
        """Like usergroups.users.update by an admin: the new list, and `subteam_members_changed` (a delta)."""
        group = self.ws.usergroups[group_id]
        new = [self._user(m).id for m in members]
        added, removed = [u for u in new if u not in group.users], [u for u in group.users if u not in new]
        previous, group.users, group.date_update = group.date_update, new, int(time.time())
        self.emit(ev.subteam_members_changed_event(self.ws, group, previous, added, removed, self.ws.clock.next()))

    def update_user(self, user_id: str, fields: dict[str, Any]) -> None:
        user = self._user(user_id)
        for key, value in fields.items():
            if not hasattr(user, key) or key == "id":
                raise ValueError(f"unknown user field {key!r}")
            setattr(user, key, value)
        self.emit(ev.user_change_event(self.ws, user_id, self.ws.clock.next()))

    def add_channel(self, *, name: str, is_private: bool, is_im: bool, members: Sequence[str],
                    bot_is_member: bool) -> str:
        prefix = "D" if is_im else "G" if is_private else "C"
        member_list = [self._user(m).id for m in members]
        if bot_is_member and self.ws.bot_user_id not in member_list:
            member_list.append(self.ws.bot_user_id)
        channel = Channel(id=self.ws.ids.next(prefix), name=name, is_private=is_private, is_im=is_im,
                          members=member_list)
        self.ws.channels[channel.id] = channel
        return channel.id

    def join_channel(self, channel_id: str, user_id: str) -> str:
        channel = self.channel(channel_id)
        if user_id not in channel.members:
            channel.members.append(user_id)
        ts = self.ws.clock.next()
        joined, join_message = ev.member_joined_events(self.ws, channel, user_id, ts)
        self.emit(joined, channel=channel)
        channel.messages[ts] = Message(data=join_message)
        self.emit(ev.message_event(channel, join_message), channel=channel)
        return ts

    def rename_channel(self, channel_id: str, name: str, user_id: str) -> str:
        channel = self.channel(channel_id)
        old_name, channel.name = channel.name, name
        ts = self.ws.clock.next()
        renamed, message = ev.rename_events(channel, user_id, old_name, ts)
        # (Slack tells every app of the workspace of a public channel's rename, only members of a private one's)
        self.emit(renamed, channel=channel if channel.is_private else None)
        channel.messages[ts] = Message(data=message)
        self.emit(ev.message_event(channel, message), channel=channel)
        return ts

    def channel(self, channel_id: str) -> Channel:
        channel = self.ws.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"no channel {channel_id!r} in the emulator")
        return channel

    def _user(self, user_id: str) -> User:
        if user_id not in self.ws.users:
            raise ValueError(f"no user {user_id!r} in the emulator")
        return self.ws.users[user_id]

    # -- people doing things ------------------------------------------------------------------
    def share_files(self, channel_id: str, user_id: str, files: Sequence[tuple[str, bytes, str]], *, text: str,
                    thread_ts: str | None, partial: bool, filetype: str) -> str:
        """A person uploads files (name, content, mimetype) into the channel, with or without a comment:
        one `file_share` message."""
        described = []
        for name, content, mimetype in files:
            shared = SharedFile(id=self.ws.ids.next("F"), name=name, mimetype=mimetype, content=content,
                                user=user_id, channels=[channel_id], filetype=filetype)
            self.files.files[shared.id] = shared
            described.append(partial_file_object(shared) if partial else file_object(self, shared))
        return self.user_says(channel_id, user_id, text, thread_ts, described, subtype="file_share")

    def user_says(self, channel_id: str, user_id: str, text: str, thread_ts: str | None,
                  files: list[dict[str, Any]] | None, subtype: str | None = None) -> str:
        channel = self.channel(channel_id)
        self._user(user_id)
        if user_id not in channel.members:
            raise ValueError(f"{user_id} is not a member of {channel_id}; add them to the channel first")
        parent = self.thread_parent(channel, thread_ts) if thread_ts else None
        ts = self.ws.clock.next()
        data = ev.user_message(self.ws, channel, user_id, text, ts, parent.ts if parent else None,
                               parent.data.get("user") if parent else None, files)
        if subtype == "file_share":  # what Slack's clients send for an upload (with the comment as text)
            data.update({"subtype": "file_share", "upload": True})
        message = Message(data=data)
        self.store(channel, message, parent)
        self.emit(ev.message_event(channel, data), channel=channel)
        if f"<@{self.ws.bot_user_id}>" in text:
            self.emit(ev.app_mention_event(channel, data), channel=channel)
        return ts

    def edit_message(self, channel_id: str, ts: str, text: str) -> None:
        channel = self.channel(channel_id)
        message = self._message(channel, ts)
        previous = message.to_slack()
        message.history.append(previous)
        edit_ts = self.ws.clock.next()
        message.data.update({"text": text, "blocks": ev.rich_text_blocks(text),
                             "edited": {"user": message.data.get("user"), "ts": edit_ts}})
        self.emit(ev.message_changed_event(channel, message, previous, edit_ts), channel=channel)

    def delete_message(self, channel_id: str, ts: str) -> None:
        channel = self.channel(channel_id)
        previous = self._message(channel, ts).to_slack()
        del channel.messages[ts]
        self.emit(ev.message_deleted_event(channel, previous, self.ws.clock.next()), channel=channel)

    def _message(self, channel: Channel, ts: str) -> Message:
        message = channel.messages.get(ts)
        if message is None:
            raise ValueError(f"no message {ts} in {channel.id}")
        return message

    def thread_parent(self, channel: Channel, thread_ts: str) -> Message | None:
        """The parent of a thread; a reply's ts means its parent, as in Slack."""
        message = channel.messages.get(thread_ts)
        if message is None:
            return None
        parent_ts = message.data.get("thread_ts")
        if parent_ts and parent_ts != message.ts:
            return channel.messages.get(parent_ts)
        return message

    def store(self, channel: Channel, message: Message, parent: Message | None) -> None:
        channel.messages[message.ts] = message
        if parent is None:
            return
        replies = parent.data.setdefault("reply_users", [])
        user = message.data.get("user")
        if user and user not in replies:
            replies.append(user)
        parent.data.update({
            "thread_ts": parent.ts, "reply_count": parent.data.get("reply_count", 0) + 1,
            "reply_users_count": len(replies), "latest_reply": message.ts,
        })

    # -- delivery -------------------------------------------------------------------------------
    def emit(self, event: dict[str, Any], *, channel: Channel | None = None,
             event_id: str | None = None) -> Envelope | None:
        """Deliver one event to the app, if the app would receive it (it is in the channel)."""
        if event.get("type") not in event_types():
            self.violation(f"event type {event.get('type')!r} is not in slack-events.json")
        if channel is not None and self.ws.bot_user_id not in channel.members:
            return None
        return self.enqueue("events_api", ev.event_callback(self.ws, event, event_id))

    def enqueue(self, kind: str, payload: dict[str, Any]) -> Envelope:
        envelope = Envelope(type=kind, payload=payload, transport=self.transport)
        self.envelopes.append(envelope)
        self.delivery.deliver(envelope)
        return envelope

    def deliver_raw_event(self, event: dict[str, Any]) -> str:
        event = copy.deepcopy(event)
        channel = self.ws.channels.get(event.get("channel", ""))
        if event.get("type") == "message" and channel is not None:
            event.setdefault("ts", self.ws.clock.next())
            event.setdefault("channel_type", channel.channel_type)
            if event.get("subtype") in STORED_SUBTYPES and event["ts"] not in channel.messages:
                stored = {k: v for k, v in event.items() if k not in ("channel", "event_ts", "channel_type")}
                parent = self.thread_parent(channel, event["thread_ts"]) if event.get("thread_ts") else None
                self.store(channel, Message(data=stored), parent)
        event.setdefault("event_ts", event.get("ts") or self.ws.clock.next())
        envelope = self.emit(event)
        assert envelope is not None
        return envelope.payload["event_id"]

    def slash_command(self, channel_id: str, user_id: str, command: str, text: str) -> Envelope:
        channel = self.channel(channel_id)
        key = secrets.token_hex(12)
        response_url = f"{self.server_url}/response_url/{key}"
        trigger_id = f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        fields = ev.slash_command_fields(self.ws, channel, user_id, command, text, response_url, trigger_id)
        envelope = self.enqueue("slash_commands", fields)
        self._response_urls[key] = {"envelope": envelope.id, "channel": channel.id, "uses": 0,
                                    "user": user_id}
        return envelope

    def on_ack(self, envelope: Envelope) -> None:
        """A command answered in its ack (Socket Mode payload, or HTTP body) is its first response."""
        if envelope.type == "slash_commands" and envelope.ack_payload:
            self.record_command_response(envelope.id, envelope.payload["channel_id"],
                                         envelope.ack_payload, via="ack")

    def response_url_post(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        entry = self._response_urls.get(key)
        if entry is None:
            return 404, {"ok": False, "error": "no_service"}
        entry["uses"] += 1
        self.response_posts.append({"url_id": key, "envelope_id": entry["envelope"], "body": body,
                                    "time": time.time()})
        if entry["uses"] > RESPONSE_URL_MAX_USES:
            return 404, {"ok": False, "error": "used_url"}
        self.record_command_response(entry["envelope"], entry["channel"], body, via="response_url")
        return 200, {"ok": True}

    def record_command_response(self, envelope_id: str, channel_id: str, body: dict[str, Any],
                                via: str) -> None:
        self.command_responses.setdefault(envelope_id, []).append({"via": via, **copy.deepcopy(body)})
        if body.get("response_type") == "in_channel":
            post_bot_message(self, self.channel(channel_id), text=body.get("text") or "",
                             blocks=body.get("blocks"), thread_ts=body.get("thread_ts"))

    # -- observation ----------------------------------------------------------------------------
    def messages(self, channel_id: str, thread_ts: str | None) -> list[dict[str, Any]]:
        channel = self.channel(channel_id)
        out = []
        for message in channel.sorted_messages():
            parent = message.data.get("thread_ts")
            if thread_ts is None:
                keep = parent in (None, message.ts) or message.data.get("subtype") == "thread_broadcast"
            elif thread_ts == "all":
                keep = True
            else:
                keep = message.ts == thread_ts or parent == thread_ts
            if keep:
                out.append(message.to_record())
        return sorted(out, key=lambda m: ts_key(m["ts"]))
