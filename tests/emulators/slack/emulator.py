"""`SlackEmulator`: Slack's Web API, Socket Mode and signed HTTP events on a loopback port.

Construct it in the test, `start()` it (or use it as a context manager), point real clients at
`base_url`, drive people with `user_says()` / `slash_command()`, and read what the app did with
`messages()`, `calls()`, `envelopes()`. Every public method may be called from any thread: work is
marshalled onto the emulator's own loop, which alone touches the state.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from ..server import BackgroundServer, async_wait_until, wait_until
from . import files, methods_chat, methods_read
from .core import STREAM_EXPIRY_SECONDS, EmulatorOptions, SlackCore
from .envelopes import Envelope
from .http_events import RETRY_DELAYS_SECONDS
from .rate_limits import RateLimiter, RateLimitPolicy
from .socket_mode import REFRESH_GRACE_SECONDS
from .web_api import Call, Fault, WebApi

T = TypeVar("T")


@dataclass(frozen=True)
class CommandHandle:
    """A slash command in flight: its envelope, response_url and the responses it got."""

    emulator: SlackEmulator
    envelope_id: str
    response_url: str
    trigger_id: str
    payload: dict[str, str]

    def envelope(self) -> Envelope:
        return next(e for e in self.emulator.envelopes() if e.id == self.envelope_id)

    def responses(self) -> list[dict[str, Any]]:
        """Answers in order: the ack payload (`via: "ack"`) and posts to the response_url."""
        return self.emulator._on_loop(lambda c: copy.deepcopy(c.command_responses.get(self.envelope_id, [])))


class SlackEmulator:
    """One emulated workspace with one installed app (see module docstring)."""

    def __init__(self, *, bot_token: str = "xoxb-test-bot", app_token: str = "xapp-test-app",
                 signing_secret: str = "test-signing-secret", team_id: str = "T0TEAM001",
                 rate_limits: str | RateLimitPolicy = "off", ack_timeout: float = 3.0,
                 events_url: str | None = None, echo_bot_events: bool = True,
                 stream_expiry: float = STREAM_EXPIRY_SECONDS, refresh_grace: float = REFRESH_GRACE_SECONDS,
                 http_retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS, distribution: str = "internal") -> None:
        self.options = EmulatorOptions(
            bot_token=bot_token, app_token=app_token, signing_secret=signing_secret, team_id=team_id,
            ack_timeout=ack_timeout, events_url=events_url, echo_bot_events=echo_bot_events,
            stream_expiry=stream_expiry, refresh_grace=refresh_grace, http_retry_delays=tuple(http_retry_delays),
            distribution=distribution)
        self._core = SlackCore(self.options, RateLimitPolicy.parse(rate_limits))
        app = web.Application()
        WebApi(self._core, {**methods_chat.HANDLERS, **methods_read.HANDLERS, **files.HANDLERS}).add_routes(app)
        files.add_routes(app, self._core)
        self._core.hub.add_routes(app)
        app.router.add_post("/response_url/{key}", self._handle_response_url)
        app.on_shutdown.append(self._on_shutdown)
        self._server = BackgroundServer(app)
        self.users: dict[str, str] = {}  # name -> user id, for users added by add_user
        self.channels: dict[str, str] = {}  # name -> conversation id, for add_channel
        ws = self._core.ws
        self.team_id, self.app_id, self.bot_id, self.bot_user_id = ws.team_id, ws.app_id, ws.bot_id, ws.bot_user_id
        self.bot_token, self.app_token, self.signing_secret = bot_token, app_token, signing_secret

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> SlackEmulator:
        self._server.start()
        url = self._server.url
        self._on_loop(lambda c: setattr(c, "server_url", url))
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        """What slack_sdk takes as `base_url` (and the bot as SLACK_API_URL)."""
        return f"{self._server.url}/api/"

    # -- directory --------------------------------------------------------------------------------
    def add_user(self, name: str, display_name: str = "", real_name: str = "", is_bot: bool = False,
                 user_id: str | None = None, *, is_admin: bool = False, is_owner: bool = False,
                 is_primary_owner: bool = False) -> str:
        """A person (or bot user); the role flags are what users.info reports (workspace admin, owners)."""
        roles = {"is_admin": is_admin, "is_owner": is_owner, "is_primary_owner": is_primary_owner}
        uid = self._on_loop(lambda c: c.add_user(name=name, display_name=display_name, real_name=real_name,
                                                 is_bot=is_bot, user_id=user_id, **roles))
        self.users[name] = uid
        return uid

    def add_usergroup(self, handle: str, members: Sequence[str] = ()) -> str:
        """A user group (`S…`) with these members (names or ids); returns its id."""
        ids = [self._uid(m) for m in members]
        return self._on_loop(lambda c: c.add_usergroup(handle, ids))

    def set_usergroup_members(self, group_id: str, members: Sequence[str]) -> None:
        """Replace a group's members (as an admin would); the app gets `subteam_members_changed`."""
        ids = [self._uid(m) for m in members]
        self._on_loop(lambda c: c.set_usergroup_members(group_id, ids))

    # -- the bot's token ------------------------------------------------------------------------------
    def revoke_bot_token(self) -> None:
        """Slack answers every call with the bot token `token_revoked` (an admin removed the app, or the
        token was revoked) until `restore_bot_token()` or `rotate_bot_token()`."""
        token = self.options.bot_token
        self._on_loop(lambda c: c.revoked_tokens.add(token))

    def restore_bot_token(self) -> None:
        token = self.options.bot_token
        self._on_loop(lambda c: c.revoked_tokens.discard(token))

    def rotate_bot_token(self, new_token: str) -> None:
        """The app was reinstalled: `new_token` works, the old one is `invalid_auth` from now on."""
        self.options = dataclasses.replace(self.options, bot_token=new_token)

        def apply(core: SlackCore) -> None:
            core.revoked_tokens.discard(core.options.bot_token)
            core.options = self.options
        self._on_loop(apply)
        self.bot_token = new_token

    def update_user(self, user_id: str, **fields: Any) -> None:
        """Change a user's fields (display_name, real_name, name, deleted...) and send `user_change`."""
        uid = self._uid(user_id)
        self._on_loop(lambda c: c.update_user(uid, fields))

    def add_channel(self, name: str = "general", is_private: bool = False, is_im: bool = False,
                    members: Sequence[str] = (), bot_is_member: bool = True) -> str:
        ids = [self._uid(m) for m in members]
        cid = self._on_loop(lambda c: c.add_channel(name=name, is_private=is_private, is_im=is_im,
                                                    members=ids, bot_is_member=bot_is_member))
        self.channels[name] = cid
        return cid

    def join_channel(self, channel: str, user: str) -> str:
        """Add a member; delivers `member_joined_channel` and the `channel_join` message."""
        cid, uid = self._cid(channel), self._uid(user)
        return self._on_loop(lambda c: c.join_channel(cid, uid))

    def rename_channel(self, channel: str, name: str, by: str) -> str:
        """A member renames the channel; delivers `channel_rename` (`group_rename` if it is private) and
        the `channel_name` message. Returns the message's ts."""
        cid, uid = self._cid(channel), self._uid(by)
        ts = self._on_loop(lambda c: c.rename_channel(cid, name, uid))
        self.channels = {(name if cid_ == cid else key): cid_ for key, cid_ in self.channels.items()}
        return ts

    # -- driving --------------------------------------------------------------------------------
    def user_says(self, channel: str, user: str, text: str, thread_ts: str | None = None,
                  files: list[dict[str, Any]] | None = None) -> str:
        """A person posts; the app gets `message` (and `app_mention` if the bot is mentioned). Returns ts."""
        cid, uid = self._cid(channel), self._uid(user)
        return self._on_loop(lambda c: c.user_says(cid, uid, text, thread_ts, files))

    def share_file(self, channel: str, user: str, name: str, content: bytes, mimetype: str, text: str = "",
                   thread_ts: str | None = None, partial: bool = False, filetype: str = "",
                   more: Sequence[tuple[str, bytes, str]] = ()) -> str:
        """A person uploads a file (and `more`: name, content, mimetype), optionally with a comment: a
        `message` event, subtype `file_share`, whose `files` hold the file objects (with `partial`, only
        `file_access: check_file_info`, as Slack sends for files the app must look up with files.info).
        Returns the message's ts."""
        cid, uid = self._cid(channel), self._uid(user)
        files = [(name, content, mimetype), *more]
        return self._on_loop(lambda c: c.share_files(cid, uid, files, text=text, thread_ts=thread_ts,
                                                     partial=partial, filetype=filetype))

    def file_id(self, channel: str, ts: str) -> str:
        """The id of the (first) file of a message."""
        return next(m for m in self.messages(channel, "all") if m["ts"] == ts)["files"][0]["id"]

    def file_downloads(self) -> list[files.Download]:
        """Every request for a file's content, in order."""
        return self._on_loop(lambda c: copy.deepcopy(c.files.downloads))

    def fail_downloads(self, times: int = 1, status: int = 503) -> None:
        """Answer the next `times` authenticated downloads with `status` (a files.slack.com outage)."""
        self._on_loop(lambda c: c.files.failures.extend([status] * times))

    def set_files_readable(self, readable: bool) -> None:
        """False: the app was installed without files:read (files.info `missing_scope`, downloads go to
        the sign-in page)."""
        self._on_loop(lambda c: setattr(c.files, "readable", readable))

    def edit_message(self, channel: str, ts: str, new_text: str) -> None:
        cid = self._cid(channel)
        self._on_loop(lambda c: c.edit_message(cid, ts, new_text))

    def delete_message(self, channel: str, ts: str) -> None:
        cid = self._cid(channel)
        self._on_loop(lambda c: c.delete_message(cid, ts))

    def deliver_event(self, event: dict[str, Any]) -> str:
        """Deliver any raw event (wrapped in event_callback); new messages are stored. Returns event_id."""
        return self._on_loop(lambda c: c.deliver_raw_event(event))

    def slash_command(self, channel: str, user: str, command: str = "/assistant", text: str = "") -> CommandHandle:
        cid, uid = self._cid(channel), self._uid(user)
        envelope = self._on_loop(lambda c: c.slash_command(cid, uid, command, text))
        return CommandHandle(emulator=self, envelope_id=envelope.id, response_url=envelope.payload["response_url"],
                             trigger_id=envelope.payload["trigger_id"], payload=dict(envelope.payload))

    def deliver_interactive(self, payload: dict[str, Any]) -> str:
        """Deliver an `interactive` payload (block_actions, view_submission...) as given. Returns its id."""
        return self._on_loop(lambda c: c.enqueue("interactive", copy.deepcopy(payload)).id)

    def verify_url(self, challenge: str = "emulated-challenge") -> str:
        """HTTP mode: send Slack's `url_verification` request. Returns its envelope id."""
        if self._on_loop(lambda c: c.transport) != "http":
            raise RuntimeError("url_verification only exists for HTTP event delivery")
        body = {"token": "emulated-verification-token", "challenge": challenge, "type": "url_verification"}
        return self._on_loop(lambda c: c.enqueue("url_verification", body).id)

    def set_events_url(self, events_url: str, *more_urls: str) -> None:
        """Switch to signed HTTP delivery to `events_url` (for an app whose port is known only later);
        with `more_urls`, requests are spread over all of them in turn (replicas behind a load balancer)."""
        self._on_loop(lambda c: c.use_http(events_url, *more_urls))

    def request_refresh(self) -> None:
        """Send `disconnect` (reason refresh_requested) on every socket, then close them shortly after."""
        self._on_loop(lambda c: c.hub.request_refresh())

    def drop_connections(self) -> None:
        """Abort every Socket Mode connection without a closing handshake."""
        self._on_loop(lambda c: c.hub.drop_connections())

    def fail_next(self, method: str, error: str = "internal_error", status: int = 200,
                  retry_after: int | None = None, times: int = 1, channel: str | None = None) -> None:
        """Answer the next `times` calls of `method` (optionally in one channel) with this failure."""
        fault = Fault(method=method, error=error, status=status, retry_after=retry_after, times=times,
                      channel=self._cid(channel) if channel else None)
        self._on_loop(lambda c: c.faults.append(fault))

    def lose_answer_next(self, method: str, *, how: str = "status", status: int = 503, times: int = 1,
                         channel: str | None = None) -> None:
        """The next `times` calls of `method` (optionally in one channel) take effect — a message is
        posted, a stream started — and then their answer is lost: `how="status"` answers `status`
        (`internal_error`), `how="drop"` closes the connection without an answer. Slack has no
        idempotency key: a client that sends the call again makes it twice."""
        if how not in ("status", "drop"):
            raise ValueError(f"how must be 'status' or 'drop', not {how!r}")
        fault = Fault(method=method, status=status, times=times, channel=self._cid(channel) if channel else None,
                      lose=how)
        self._on_loop(lambda c: c.faults.append(fault))

    def set_rate_limits(self, rate_limits: str | RateLimitPolicy) -> None:
        """Replace the rate limit policy (and forget the calls counted so far)."""
        limiter = RateLimiter(RateLimitPolicy.parse(rate_limits))
        self._on_loop(lambda c: setattr(c, "limiter", limiter))

    # -- observation ------------------------------------------------------------------------------
    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Messages ordered by ts: top level (None), one thread (its ts) or everything ("all")."""
        cid = self._cid(channel)
        return self._on_loop(lambda c: c.messages(cid, thread_ts))

    def calls(self, method: str | None = None) -> list[Call]:
        return self._on_loop(lambda c: copy.deepcopy([x for x in c.calls if method in (None, x.method)]))

    def calls_from(self, start: int) -> list[Call]:
        """The calls answered after the first `start`, as recorded (not copies: read them, do not change
        them) — without a hop onto the emulator's loop, so a benchmark can poll it often without taking the
        emulator's time from the app it measures. (The log is only ever appended to, whole calls at once.)"""
        return self._core.calls[start:]

    def envelopes(self, type: str | None = None) -> list[Envelope]:
        return self._on_loop(lambda c: copy.deepcopy([e for e in c.envelopes if type in (None, e.type)]))

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        """The inner events delivered so far (one per envelope, re-deliveries not repeated)."""
        return [e.event for e in self.envelopes("events_api") if e.event and type in (None, e.event["type"])]

    def ephemeral(self, channel: str | None = None) -> list[dict[str, Any]]:
        cid = self._cid(channel) if channel else None
        return self._on_loop(lambda c: copy.deepcopy([e for e in c.ephemerals if cid in (None, e["channel"])]))

    def response_url_posts(self) -> list[dict[str, Any]]:
        return self._on_loop(lambda c: copy.deepcopy(c.response_posts))

    def statuses(self, channel: str | None = None) -> list[dict[str, Any]]:
        """assistant.threads.setStatus calls that succeeded, in order."""
        cid = self._cid(channel) if channel else None
        return self._on_loop(lambda c: copy.deepcopy([s for s in c.statuses if cid in (None, s["channel_id"])]))

    @property
    def violations(self) -> list[str]:
        return self._on_loop(lambda c: list(c.violations))

    def clear_violations(self) -> None:
        self._on_loop(lambda c: c.violations.clear())

    @property
    def connections_open_count(self) -> int:
        return self._on_loop(lambda c: len(c.hub.open_connections))

    @property
    def connected_sockets(self) -> list[str]:
        return self._on_loop(lambda c: [conn.id for conn in c.hub.open_connections])

    @property
    def connections_total(self) -> int:
        """How many Socket Mode connections were ever accepted."""
        return self._on_loop(lambda c: c.hub.connections_total)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, message: str = "condition") -> T:
        """Poll `predicate` until truthy (sync tests; async tests use `async_wait_for`)."""
        if _running_loop() is not None:
            raise RuntimeError("wait_for would block this event loop; use `await emu.async_wait_for(...)`")
        return wait_until(predicate, timeout=timeout, message=message)

    async def async_wait_for(self, predicate: Callable[[], T], timeout: float = 10.0,  # noqa: ASYNC109
                             message: str = "condition") -> T:
        return await async_wait_until(predicate, timeout=timeout, message=message)

    # -- plumbing ---------------------------------------------------------------------------------
    def _on_loop(self, fn: Callable[[SlackCore], T]) -> T:
        return self._server.call(fn, self._core)

    def _uid(self, user: str) -> str:
        return self.users.get(user, user)

    def _cid(self, channel: str) -> str:
        return self.channels.get(channel, channel)

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._core.violation("response_url: body must be a JSON object")
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        status, answer = self._core.response_url_post(request.match_info["key"], body)
        return web.json_response(answer, status=status)

    async def _on_shutdown(self, app: web.Application) -> None:
        await self._core.hub.close()
        if self._core.delivery is not self._core.hub:  # the HTTP sender
            await self._core.delivery.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
