"""Serving: Socket Mode or HTTP until told to stop, and the operations endpoints of either."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

from bot import metrics
from bot.settings import Settings
from bot.wiring import EVENTS_PATH, SHUTDOWN_GRACE, Services, StartupError, build_bolt_app, services

log = logging.getLogger(__name__)

READY_TIMEOUT = 2.0  # seconds /readyz waits for the database before it says not ready
CLEANUP_GRACE = 1.5  # seconds the replaced messages still to delete get after the turns (we exit within 10 s)


async def run_socket_mode(settings: Settings) -> int:
    """`assistant-bridge run`: Socket Mode until SIGTERM/SIGINT."""
    async with services(settings) as built:
        app = build_bolt_app(built)
        handler = AsyncSocketModeHandler(app, settings.slack_app_token)
        operations = await _operations_server(built, handler) if settings.metrics_port else None
        stop = _stop_on_signals()
        resumed = await built.workers.resume()
        await _resume_background(built)
        await handler.connect_async()
        log.info("connected over Socket Mode; backend=%s model=%s; %d channel(s) resumed",
                 built.backend.name, built.backend.model, resumed)
        await stop.wait()
        built.stopping = True
        log.info("stopping: no new work; finishing turns in flight")
        await handler.close_async()
        await built.workers.stop(SHUTDOWN_GRACE)
        await _settle(built)
        if operations is not None:
            await operations.cleanup()
    log.info("stopped")
    return 0


async def _operations_server(built: Services, handler: AsyncSocketModeHandler) -> web.AppRunner:
    """Socket Mode has no HTTP server of its own: /healthz, /readyz and /metrics on METRICS_PORT."""
    async def connected() -> bool:
        return await handler.client.is_connected()

    web_app = web.Application()
    add_operations(web_app, built, connected=connected)
    runner = web.AppRunner(web_app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "0.0.0.0", built.settings.metrics_port).start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"METRICS_PORT {built.settings.metrics_port} cannot be used ({exc.strerror}).",
                           config=True) from exc
    log.info("operations endpoints on port %d: /healthz /readyz /metrics", built.settings.metrics_port)
    return runner


def add_operations(web_app: web.Application, built: Services, *,
                   connected: Callable[[], Awaitable[bool]] | None = None) -> None:
    """/healthz, /readyz and /metrics for this process (`connected`: is the Socket Mode link up?)."""
    async def readiness() -> metrics.Readiness:
        checks: dict[str, bool] = {}
        reasons: dict[str, str] = {}
        try:
            await asyncio.wait_for(built.store.ping(), READY_TIMEOUT)
            checks["database"] = True
        except Exception as exc:  # (any failure of the database means: not ready)
            checks["database"] = False
            reasons["database"] = f"the database does not answer ({type(exc).__name__})"
        checks["slack"] = built.auth.open
        if not built.auth.open:
            reasons["slack"] = f"Slack refuses the bot's token ({built.auth.refusal})"
        if connected is not None:
            checks["socket_mode"] = await connected()
            if not checks["socket_mode"]:
                reasons["socket_mode"] = "not connected to Slack over Socket Mode"
        checks["model"] = built.runner.model_refusal is None
        if not checks["model"]:
            reasons["model"] = f"the model service refuses every request ({built.runner.model_refusal})"
        checks["accepting"] = not built.stopping
        if built.stopping:
            reasons["accepting"] = "shutting down"
        return metrics.Readiness(checks, reasons)

    async def refresh() -> None:
        metrics.CHANNELS_ACTIVE.set(built.workers.active_channels)
        metrics.LEASES_HELD.set(built.workers.leases_held)
        metrics.QUEUE_DEPTH.set(await built.store.inbox.waiting())

    metrics.operations_routes(web_app, health=lambda: {"active_channels": built.workers.active_channels},
                              readiness=readiness, refresh=refresh)


async def serve_http(settings: Settings) -> int:
    """`assistant-bridge serve`: Slack's HTTP events at POST /slack/events; /healthz, /readyz, /metrics."""
    async with services(settings) as built:
        app = build_bolt_app(built)

        @web.middleware
        async def refuse_while_stopping(request: web.Request, handler: Handler) -> web.StreamResponse:
            if built.stopping and request.path == EVENTS_PATH:
                return web.Response(status=503, text="shutting down")  # Slack retries it elsewhere/later
            return await handler(request)

        # Bolt's own aiohttp application serves POST /slack/events; we add the operations endpoints and the
        # drain rule.
        web_app = app.web_app(path=EVENTS_PATH, port=settings.port)
        web_app.middlewares.append(refuse_while_stopping)
        add_operations(web_app, built)
        runner = web.AppRunner(web_app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", settings.port).start()
        stop = _stop_on_signals()
        resumed = await built.workers.resume()
        await _resume_background(built)
        log.info("listening on port %d; backend=%s model=%s; %d channel(s) resumed",
                 settings.port, built.backend.name, built.backend.model, resumed)
        await stop.wait()
        built.stopping = True
        log.info("stopping: no new work; finishing turns in flight")
        await built.workers.stop(SHUTDOWN_GRACE)
        await _settle(built)
        await runner.cleanup()
    log.info("stopped")
    return 0


async def _resume_background(built: Services) -> None:
    """What an earlier run left to do in the background: replaced messages to delete, spare
    conversations to make."""
    built.conversations.top_up()
    left = await built.writer.resume_cleanup()
    if left:
        log.info("deleting %d replaced reply message(s) an earlier run left", left)


async def _settle(built: Services) -> None:
    """Replaced reply messages still to delete get a moment; any left stay in Slack (and are logged)."""
    left = await built.writer.settle(CLEANUP_GRACE)
    if left:
        log.warning("stopping with %d replaced reply message(s) not deleted yet; the next start deletes them", left)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
