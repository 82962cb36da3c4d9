"""Assembly: build every client and service once, wire them together, run until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import openai
from aiohttp import web
from aiohttp.typedefs import Handler
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.backends.base import Backend
from bot.backends.responses import ResponsesBackend
from bot.conversation.service import ConversationService
from bot.conversation.tools import Toolbox, ToolError
from bot.inbound.intake import Intake
from bot.inbound.listeners import register
from bot.inbound.slash_command import SlashCommands
from bot.outbound.channels import ChannelDirectory
from bot.outbound.people import NameDirectory
from bot.outbound.replies import ReplyFactory
from bot.outbound.slack_auth import SlackAuthGate
from bot.outbound.slack_errors import SLACK_FAILURES, reason
from bot.outbound.writer import SlackWriter
from bot.settings import Settings
from bot.settings.parsing import redact_url
from bot.store import OPEN_ERRORS as STORE_OPEN_ERRORS
from bot.store import Store, StoreInUse
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


def build_slack_client(settings: Settings, *, session: aiohttp.ClientSession | None = None,
                       retry_rate_limits: bool = True) -> AsyncWebClient:
    """The Web API client. With a `session`, connections to Slack are kept open and reused (without
    one, slack_sdk opens a connection — a TLS handshake — per call). Replies use a client without the
    429 retry: their pacers wait for Retry-After."""
    handlers = [AsyncConnectionErrorRetryHandler(),
                AsyncServerErrorRetryHandler(max_retry_count=SLACK_SERVER_ERROR_RETRIES)]
    if retry_rate_limits:
        handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=SLACK_RATE_LIMIT_RETRIES))
    return AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, retry_handlers=handlers,
                          session=session)


async def open_backend(settings: Settings, store: Store | None = None) -> Backend:
    """The model API the settings choose (for `auto`, the one the server offers); `chat` keeps its history
    in the store (not needed for `check`)."""
    client = openai.AsyncOpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url,
                                max_retries=OPENAI_MAX_RETRIES, timeout=OPENAI_TIMEOUT)
    name = settings.assistant_backend
    if name == "auto":
        name = await choose_backend(settings, ResponsesBackend(client, model=settings.openai_model), store)
    if name == "chat":
        from bot.backends.chat import ChatBackend

        return ChatBackend(client, model=settings.openai_model,
                           history=store.chat if store else None,  # type: ignore[arg-type]
                           context_tokens=settings.context_tokens)
    if name == "assistants":
        from bot.backends.assistants import AssistantsBackend

        assert settings.openai_assistant_id is not None, "settings validation requires it"
        return AssistantsBackend(client, assistant_id=settings.openai_assistant_id,
                                 model=settings.openai_model if settings.openai_model_explicit else None)
    return ResponsesBackend(client, model=settings.openai_model)


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
        names = NameDirectory(slack, on_refused=auth.refused)
        conversations = ConversationService(conversation_map=store.conversations, backend=backend, names=names,
                                            channels=ChannelDirectory(slack, on_refused=auth.refused),
                                            instructions=settings.instructions,
                                            toolbox=toolbox, hosted_tools=settings.hosted_tools, slack=slack,
                                            max_tool_rounds=settings.max_tool_rounds)
        writer = SlackWriter.create(build_slack_client(settings, session=session, retry_rate_limits=False),
                                    team_id=identity.team_id)
        replies = ReplyFactory(writer, stream_in_threads=settings.reply_in == "thread")
        policy = RetryPolicy(max_attempts=settings.max_attempts, turn_timeout=settings.turn_timeout)
        runner = TurnRunner(inbox=store.inbox, journal=store.journal, conversations=conversations, replies=replies,
                            writer=writer, policy=policy,
                            reply_in_thread=settings.reply_in == "thread", max_concurrent_turns=MAX_CONCURRENT_TURNS,
                            respond_to=settings.respond_to_for, auth=auth)
        workers = ChannelWorkers(inbox=store.inbox, runner=runner, leases=store.leases)
        intake = Intake(inbox=store.inbox, notify=workers.notify, names=names, settings=settings)
        commands = SlashCommands(settings=settings, intake=intake, inbox=store.inbox, conversations=conversations)
        yield Services(settings=settings, store=store, slack=slack, identity=identity, backend=backend,
                       conversations=conversations, workers=workers, intake=intake, commands=commands)


async def _open_store(settings: Settings) -> Store:
    """The SQLite file or the PostgreSQL database DATABASE_URL names (its password never printed)."""
    target = settings.sqlite_path or settings.database_url
    try:
        return await Store.open(target, pool_size=settings.database_pool_size, lease_timeout=settings.lease_timeout)
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


async def run_socket_mode(settings: Settings) -> int:
    """`assistant-bridge run`: Socket Mode until SIGTERM/SIGINT."""
    async with services(settings) as built:
        app = build_bolt_app(built)
        handler = AsyncSocketModeHandler(app, settings.slack_app_token)
        stop = _stop_on_signals()
        resumed = await built.workers.resume()
        await handler.connect_async()
        log.info("connected over Socket Mode; backend=%s model=%s; %d channel(s) resumed",
                 built.backend.name, built.backend.model, resumed)
        await stop.wait()
        log.info("stopping: no new work; finishing turns in flight")
        await handler.close_async()
        await built.workers.stop(SHUTDOWN_GRACE)
    log.info("stopped")
    return 0


async def serve_http(settings: Settings) -> int:
    """`assistant-bridge serve`: Slack's HTTP events at POST /slack/events, health at GET /healthz."""
    async with services(settings) as built:
        app = build_bolt_app(built)
        stopping = False

        @web.middleware
        async def refuse_while_stopping(request: web.Request, handler: Handler) -> web.StreamResponse:
            if stopping and request.path == EVENTS_PATH:
                return web.Response(status=503, text="shutting down")  # Slack retries it elsewhere/later
            return await handler(request)

        async def healthz(_request: web.Request) -> web.Response:
            return web.json_response({"ok": True, "active_channels": built.workers.active_channels})

        # Bolt's own aiohttp application serves POST /slack/events; we add health and the drain rule.
        web_app = app.web_app(path=EVENTS_PATH, port=settings.port)
        web_app.middlewares.append(refuse_while_stopping)
        web_app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(web_app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", settings.port).start()
        stop = _stop_on_signals()
        resumed = await built.workers.resume()
        log.info("listening on port %d; backend=%s model=%s; %d channel(s) resumed",
                 settings.port, built.backend.name, built.backend.model, resumed)
        await stop.wait()
        stopping = True
        log.info("stopping: no new work; finishing turns in flight")
        await built.workers.stop(SHUTDOWN_GRACE)
        await runner.cleanup()
    log.info("stopped")
    return 0


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
