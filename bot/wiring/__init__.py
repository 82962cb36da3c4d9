"""Assembly: build every client and service once and wire them together (`serving.py` runs them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import openai
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.backends.base import Backend, MakesSpares
from bot.backends.responses import ResponsesBackend
from bot.backends.vision import Vision
from bot.conversation.file_reader import FileReader
from bot.conversation.files import FileLimits
from bot.conversation.service import ConversationService
from bot.conversation.spares import SpareConversations
from bot.conversation.threads import ThreadPlaces
from bot.conversation.tools import Toolbox, ToolError
from bot.inbound.access import AccessPolicy
from bot.inbound.intake import Intake
from bot.inbound.listeners import register
from bot.inbound.slash_command import SlashCommands
from bot.outbound.channels import ChannelDirectory
from bot.outbound.groups import UserGroups
from bot.outbound.people import NameDirectory
from bot.outbound.posted import UnlessItAdds
from bot.outbound.replies import ReplyFactory
from bot.outbound.slack_auth import SlackAuthGate
from bot.outbound.slack_errors import SLACK_FAILURES, reason
from bot.outbound.slack_files import SlackFiles
from bot.outbound.thread_reader import ThreadReader
from bot.outbound.writer import SlackWriter
from bot.settings import Settings
from bot.settings.parsing import redact_url
from bot.store import OPEN_ERRORS as STORE_OPEN_ERRORS
from bot.store import Store, StoreInUse
from bot.store.installation import installation_salt
from bot.store.leases import ChannelLeases, Replicas
from bot.work.budget_gate import BudgetGate, limits_from
from bot.work.replicas import ReplicaPresence
from bot.work.retry import RetryPolicy
from bot.work.runner import TurnRunner
from bot.work.workers import ChannelWorkers

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 8.0  # seconds in-flight turns may take to finish after SIGTERM (we exit within 10 s)
SLACK_RATE_LIMIT_RETRIES = 5
SLACK_SERVER_ERROR_RETRIES = 2
OPENAI_MAX_RETRIES = 2
OPENAI_TIMEOUT = 120.0
SLACK_TIMEOUT = 30.0  # seconds for one Slack Web API call
EVENTS_PATH = "/slack/events"  # where Slack sends HTTP events and slash commands
MAX_CONCURRENT_TURNS = 64  # model requests in flight across all channels of this process
INBOX_TOPIC = "bridge_inbox"  # what replicas announce new work on (payload: the channel)



class StartupError(Exception):
    """The bridge cannot start; the message says why in one sentence. `config` → exit status 2."""

    def __init__(self, message: str, *, config: bool) -> None:
        super().__init__(message)
        self.config = config


@dataclass
class Services:
    settings: Settings
    store: Store
    slack: AsyncWebClient
    identity: AuthorizeResult
    backend: Backend
    conversations: ConversationService
    workers: ChannelWorkers
    intake: Intake
    commands: SlashCommands
    runner: TurnRunner
    auth: SlackAuthGate
    writer: SlackWriter
    stopping: bool = False  # SIGTERM came: /readyz says not ready, new events are refused (HTTP)


def build_slack_client(settings: Settings, *, session: aiohttp.ClientSession | None = None,
                       retry_rate_limits: bool = True) -> AsyncWebClient:
    """The Web API client. With a `session`, connections to Slack are kept open and reused (without
    one, slack_sdk opens a connection — a TLS handshake — per call). Replies use a client without the
    429 retry: their pacers wait for Retry-After."""
    # (a post, a stream's start or append is never resent blindly after a lost answer: see outbound/posted.py)
    handlers: list[AsyncRetryHandler] = [
        CountRateLimits(), UnlessItAdds(AsyncConnectionErrorRetryHandler()),
        UnlessItAdds(AsyncServerErrorRetryHandler(max_retry_count=SLACK_SERVER_ERROR_RETRIES))]
    if retry_rate_limits:
        handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=SLACK_RATE_LIMIT_RETRIES))
    return AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, retry_handlers=handlers,
                          session=session)


class CountRateLimits(AsyncRetryHandler):
    """Counts Slack's 429 answers by method for /metrics. It never asks for a retry itself (slack_sdk asks
    every handler about every answer, in order, until one wants to retry): the handlers after it decide."""

    async def can_retry_async(self, *, state: object, request: object, response: object = None,
                              error: object = None) -> bool:
        if getattr(response, "status_code", None) == 429:
            method = str(getattr(request, "url", "")).rsplit("/", 1)[-1] or "unknown"
            metrics.SLACK_RATE_LIMITED.labels(method).inc()
        return False


async def open_backend(settings: Settings, store: Store | None = None) -> Backend:
    """The model API the settings choose (for `auto`, the one the server offers); `chat` keeps its history
    in the store (not needed for `check`)."""
    client = openai.AsyncOpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url,
                                max_retries=OPENAI_MAX_RETRIES, timeout=OPENAI_TIMEOUT)
    name = settings.assistant_backend
    if name == "auto":
        name = await choose_backend(settings, ResponsesBackend(client, model=settings.openai_model), store)
    vision = await _vision(settings, store, name)
    if name == "chat":
        from bot.backends.chat import ChatBackend

        return ChatBackend(client, model=settings.openai_model,
                           history=store.chat if store else None,  # type: ignore[arg-type]
                           context_tokens=settings.context_tokens, vision=vision)
    if name == "assistants":
        from bot.backends.assistants import AssistantsBackend

        assert settings.openai_assistant_id is not None, "settings validation requires it"
        return AssistantsBackend(client, assistant_id=settings.openai_assistant_id,
                                 model=settings.openai_model if settings.openai_model_explicit else None,
                                 vision=vision)
    return ResponsesBackend(client, model=settings.openai_model, vision=vision)


async def _vision(settings: Settings, store: Store | None, backend: str) -> Vision:
    """BRIDGE_VISION for this backend, server and model, with what an earlier run learned about it."""
    model = settings.openai_assistant_id if backend == "assistants" else settings.openai_model
    vision = Vision(settings.vision, memory=store.model_facts if store else None,
                    key=f"{backend}:{settings.openai_base_url or 'https://api.openai.com/v1'}:{model}")
    await vision.load()
    return vision


def file_reader(settings: Settings, slack: AsyncWebClient, session: aiohttp.ClientSession | None) -> FileReader:
    """Reads shared files with the bot's token, within the settings' limits."""
    limits = FileLimits(file_bytes=settings.file_max_bytes, message_bytes=settings.message_files_max_bytes,
                        text_bytes=settings.text_file_max_bytes)
    files = SlackFiles(slack, session=session, api_url=settings.slack_api_url)
    return FileReader(files, limits=limits, slack=slack)


async def choose_backend(settings: Settings, probe: ResponsesBackend, store: Store | None) -> str:
    """ASSISTANT_BACKEND=auto: Conversations + Responses where the server has them, Chat Completions
    (which every OpenAI-compatible server has) otherwise. When the server cannot be asked now (a bad key,
    unreachable), keep the backend this store's conversations already use, so a channel never moves."""
    offered = await probe.offers_conversations()
    if offered is not None:
        name = "responses" if offered else "chat"
        log.info("ASSISTANT_BACKEND=auto: the model server %s the Conversations API; using %s",
                 "offers" if offered else "does not offer", name)
        return name
    used = [name for name in (await store.conversations.backends_in_use() if store is not None else [])
            if name in ("responses", "chat")]  # (auto never picks the legacy Assistants API)
    name = used[0] if used else ("responses" if settings.openai_base_url is None else "chat")
    log.warning("ASSISTANT_BACKEND=auto: could not ask the model server which APIs it has; using %s (%s)", name,
                "what this database's conversations use" if used else "the usual choice for this endpoint")
    return name


@contextlib.asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[Services]:
    """Every client and service, built once and wired together; closed when the block ends."""
    toolbox = load_toolbox(settings)
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SLACK_TIMEOUT)))
        slack = build_slack_client(settings, session=session)
        identity = await _who_am_i(slack, settings)
        store = await _open_store(settings)
        stack.push_async_callback(store.close)
        backend = await open_backend(settings, store)
        if settings.hosted_tools and backend.name != "responses":
            log.warning("[hosted_tools] are ignored: they need the responses backend, and %s is in use", backend.name)
        stack.push_async_callback(backend.aclose)
        auth = SlackAuthGate(slack.auth_test)  # one for the workspace: does Slack take the bot's token?
        names = NameDirectory(slack, on_refused=auth.refused, claim=store.speaker_names.claim)
        # (no 429 retry: a thread read Slack limits — one a minute for some apps — must not hold up the turn)
        reader = ThreadReader(build_slack_client(settings, session=session, retry_rate_limits=False),
                              on_refused=auth.refused)
        threads = ThreadPlaces(store=store.threads, reader=reader, names=names, bot_user_id=identity.bot_user_id)
        spares = SpareConversations(store.conversations, backend) if isinstance(backend, MakesSpares) else None
        if spares is not None:
            stack.push_async_callback(spares.close)
        channels = ChannelDirectory(slack, on_refused=auth.refused)
        channels.start_learning()  # (the names of the bot's channels, before their first messages)
        stack.push_async_callback(channels.close)
        conversations = ConversationService(conversation_map=store.conversations, backend=backend, names=names,
                                            channels=channels,
                                            instructions=settings.instructions,
                                            toolbox=toolbox, hosted_tools=settings.hosted_tools, slack=slack,
                                            max_tool_rounds=settings.max_tool_rounds,
                                            safety_salt=await installation_salt(store.db), threads=threads,
                                            files=file_reader(settings, slack, session), spares=spares)
        writer = SlackWriter.create(build_slack_client(settings, session=session, retry_rate_limits=False),
                                    team_id=identity.team_id)
        writer.cleanup_log = store.stale_messages
        replies = ReplyFactory(writer, stream_in_threads=settings.reply_in == "thread",
                               allow_broadcast_mentions=settings.allow_broadcast_mentions)
        budgets = BudgetGate(store.usage, writer, limits_from(settings))
        policy = RetryPolicy(max_attempts=settings.max_attempts, turn_timeout=settings.turn_timeout)
        runner = TurnRunner(inbox=store.inbox, journal=store.journal, conversations=conversations, replies=replies,
                            writer=writer, policy=policy,
                            reply_in_thread=settings.reply_in == "thread", max_concurrent_turns=MAX_CONCURRENT_TURNS,
                            respond_to=settings.respond_to_for, auth=auth, budgets=budgets,
                            followups=settings.thread_followups_for)
        workers, notify = await _workers(store, runner, writer, settings, stack)
        access = AccessPolicy(settings=settings, groups=UserGroups(slack, on_refused=auth.refused), people=names,
                              notes=store.access_notes, slack=slack)
        stack.push_async_callback(access.close)
        await access.warm()
        intake = Intake(inbox=store.inbox, notify=notify, names=names, channels=channels, settings=settings,
                        access=access, prepare=conversations.prepare)
        commands = SlashCommands(settings=settings, intake=intake, inbox=store.inbox, conversations=conversations,
                                 budgets=budgets)
        yield Services(settings=settings, store=store, slack=slack, identity=identity, backend=backend,
                       conversations=conversations, workers=workers, intake=intake, commands=commands,
                       runner=runner, auth=auth, writer=writer)


async def _workers(store: Store, runner: TurnRunner, writer: SlackWriter, settings: Settings,
                   stack: contextlib.AsyncExitStack) -> tuple[ChannelWorkers, Callable[[str], None]]:
    """The channel workers, and what intake calls when a channel has new work. On a database several
    replicas share: leases decide who works a channel, a heartbeat divides Slack's budgets, and new work
    is announced to every replica (LISTEN/NOTIFY) so the one holding the channel picks it up at once."""
    if not store.db.shared:
        workers = ChannelWorkers(inbox=store.inbox, runner=runner)
        return workers, workers.notify
    replica_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    control = await store.db.priority()  # (leases and heartbeats never wait behind a burst of inserts)
    presence = ReplicaPresence(Replicas(control, replica_id=replica_id), writer)
    await presence.start()
    stack.push_async_callback(presence.stop)

    async def hand_over(channel: str) -> None:
        await store.db.publish(INBOX_TOPIC, channel)

    workers = ChannelWorkers(inbox=store.inbox, runner=runner, hand_over=hand_over, post_budget=writer.posts,
                             leases=ChannelLeases(control, owner=replica_id, ttl=settings.lease_seconds))
    await store.db.subscribe(INBOX_TOPIC, workers.notify)
    announcing: set[asyncio.Task[None]] = set()

    def notify(channel: str) -> None:
        workers.notify(channel)
        task = asyncio.create_task(hand_over(channel))  # (after the inbox commit; the poll is the safety net)
        announcing.add(task)
        task.add_done_callback(announcing.discard)

    log.info("replica %s: channels are shared with the other replicas on this database", replica_id)
    return workers, notify


async def _open_store(settings: Settings) -> Store:
    """The SQLite file or the PostgreSQL database DATABASE_URL names (its password never printed)."""
    target = settings.sqlite_path or settings.database_url
    try:
        return await Store.open(target, pool_size=settings.database_pool_size, retention_days=settings.retention_days)
    except StoreInUse as exc:
        raise StartupError(f"{exc}; one process per SQLite database (DATABASE_URL).", config=True) from exc
    except STORE_OPEN_ERRORS as exc:
        raise StartupError(f"DATABASE_URL {redact_url(settings.database_url)!r} cannot be opened: "
                           f"{str(exc).rstrip('.') or type(exc).__name__}.", config=True) from exc


def load_toolbox(settings: Settings) -> Toolbox:
    """The operator's tools (BRIDGE_TOOLS_MODULE); a module that cannot be used is a settings error."""
    try:
        return Toolbox.load(settings.tools_module, call_timeout=settings.tool_timeout)
    except ToolError as exc:
        raise StartupError(str(exc), config=True) from exc


async def _who_am_i(slack: AsyncWebClient, settings: Settings) -> AuthorizeResult:
    """`auth.test` once at start-up: a bad token stops the bridge at once, with a clear sentence."""
    try:
        response = await slack.auth_test()
    except SLACK_FAILURES as exc:
        if isinstance(exc, SlackApiError) and exc.response.get("error") in ("invalid_auth", "not_authed",
                                                                             "account_inactive", "token_revoked"):
            raise StartupError(f"SLACK_BOT_TOKEN was refused by Slack ({reason(exc)}): copy the Bot User OAuth "
                               "Token again from your Slack app's OAuth & Permissions page.", config=True) from exc
        raise StartupError(f"Slack's auth.test failed at {settings.slack_api_url} ({reason(exc)}).",
                           config=False) from exc
    return AuthorizeResult.from_auth_test_response(auth_test_response=response, bot_token=settings.slack_bot_token)


def build_bolt_app(built: Services) -> AsyncApp:
    identity = built.identity

    async def authorize() -> AuthorizeResult:
        # One workspace, one token, checked at start-up: no auth.test per request. (Bolt's single-team
        # authorization would call auth.test for every event that arrives before the first answer, and
        # those calls finish in any order, shuffling the first messages.)
        return identity

    # process_before_response: Bolt acks only after the listener returned, i.e. after the inbox commit.
    app = AsyncApp(client=built.slack, authorize=authorize,
                   signing_secret=built.settings.slack_signing_secret or "socket-mode",
                   process_before_response=True, logger=logging.getLogger("slack_bolt"))
    register(app, intake=built.intake, commands=built.commands, command_name=built.settings.command)
    return app
