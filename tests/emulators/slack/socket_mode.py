"""Socket Mode: the WebSocket endpoint `apps.connections.open` hands out, envelopes, acks, re-delivery.

Protocol (docs.slack.dev/apis/events-api/using-socket-mode): on connect Slack sends `hello`; then
envelopes `{"envelope_id", "type", "payload", "accepts_response_payload", "retry_attempt",
"retry_reason"}`; the app answers `{"envelope_id", "payload"?}` within 3 seconds or the event is
sent again. Slack asks a client to reconnect with `{"type": "disconnect", "reason": ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .envelopes import AckCallback, Envelope, ViolationCallback

MAX_CONNECTIONS = 10  # Slack allows up to 10 simultaneous connections per app
REFRESH_GRACE_SECONDS = 1.0  # how long a refreshed socket stays open after `disconnect`
HOST = "applink-emulated"


@dataclass
class Connection:
    id: str
    ws: web.WebSocketResponse
    request: web.Request
    opened_at: float = field(default_factory=time.time)
    closing: bool = False


class SocketModeHub:
    """Owns the open sockets, the envelopes waiting for one, and the ack timers."""

    def __init__(self, *, app_id: str, ack_timeout: float, on_ack: AckCallback,
                 violation: ViolationCallback, refresh_grace: float = REFRESH_GRACE_SECONDS) -> None:
        self.app_id = app_id
        self.ack_timeout = ack_timeout
        self.refresh_grace = refresh_grace
        self._on_ack = on_ack
        self._violation = violation
        self._tickets: set[str] = set()
        self._connections: list[Connection] = []
        self._pending: deque[Envelope] = deque()
        self._in_flight: dict[str, Envelope] = {}
        self._known: dict[str, Envelope] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._round_robin = itertools.count()
        self._conn_ids = itertools.count(1)
        self.connections_total = 0

    # -- public, called on the emulator loop -------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/link/", self._handle_link)

    def issue_ticket(self) -> str:
        ticket = secrets.token_hex(16)
        self._tickets.add(ticket)
        return ticket

    @property
    def open_connections(self) -> list[Connection]:
        return [c for c in self._connections if not c.ws.closed and not c.closing]

    def deliver(self, envelope: Envelope) -> None:
        self._known[envelope.id] = envelope
        self._send_or_queue(envelope)

    def request_refresh(self) -> None:
        """Ask every client to reconnect, then close the old sockets after a short grace period."""
        message = {"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": HOST}}
        loop = asyncio.get_running_loop()
        for conn in list(self.open_connections):
            self._spawn(conn.ws.send_str(json.dumps(message)))
            conn.closing = True
            self._later(loop, self.refresh_grace, lambda c=conn: self._spawn(self._close(c)))

    def drop_connections(self) -> None:
        """Cut every socket without a closing handshake, as a network failure would."""
        for conn in list(self._connections):
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
            conn.closing = True

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._connections):
            await self._close(conn)

    # -- WebSocket endpoint ---------------------------------------------------------------
    async def _handle_link(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Connection(id=f"conn-{next(self._conn_ids)}", ws=ws, request=request)
        self._connections.append(conn)
        self.connections_total += 1
        try:
            if len(self.open_connections) > MAX_CONNECTIONS:
                await ws.send_json({"type": "disconnect", "reason": "too_many_websockets",
                                    "debug_info": {"host": HOST}})
                await ws.close()
                return ws
            await ws.send_json({
                "type": "hello", "num_connections": len(self.open_connections),
                "debug_info": {"host": HOST, "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            })
            self._flush_pending()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._violation(f"socket mode: {conn.id} sent a binary frame")
        finally:
            self._connections.remove(conn)
        return ws

    def _on_text(self, conn: Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            self._violation(f"socket mode: {conn.id} sent a frame that is not JSON: {data[:80]!r}")
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        envelope = self._known.get(envelope_id) if isinstance(envelope_id, str) else None
        if envelope is None:
            self._violation(f"socket mode: ack for an unknown envelope_id: {data[:120]!r}")
            return
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, dict):
            self._violation(f"socket mode: ack payload must be an object: {data[:120]!r}")
            payload = None
        if envelope.acked:
            return  # a late ack of a re-delivered envelope: Slack already has its answer
        envelope.acked_at = time.time()
        envelope.ack_payload = payload
        envelope.attempts[-1]["acked_on"] = conn.id
        self._in_flight.pop(envelope.id, None)
        self._on_ack(envelope)

    # -- sending and re-delivery ----------------------------------------------------------
    def _send_or_queue(self, envelope: Envelope) -> None:
        conns = self.open_connections
        if not conns:
            self._pending.append(envelope)
            return
        conn = conns[next(self._round_robin) % len(conns)]
        envelope.attempts.append({"attempt": envelope.retry_attempt, "at": time.time(),
                                  "connection": conn.id})
        self._in_flight[envelope.id] = envelope
        self._spawn(conn.ws.send_str(json.dumps(self._wire(envelope))))
        attempt = envelope.retry_attempt
        self._later(asyncio.get_running_loop(), self.ack_timeout,
                    lambda: self._on_ack_timeout(envelope, attempt))

    def _flush_pending(self) -> None:
        while self._pending and self.open_connections:
            self._send_or_queue(self._pending.popleft())

    def _on_ack_timeout(self, envelope: Envelope, attempt: int) -> None:
        if envelope.acked or envelope.retry_attempt != attempt:
            return
        if not envelope.retryable():
            envelope.gave_up = True
            self._in_flight.pop(envelope.id, None)
            return
        envelope.retry_attempt += 1
        envelope.retry_reason = "timeout"
        self._send_or_queue(envelope)

    def _wire(self, envelope: Envelope) -> dict[str, Any]:
        message: dict[str, Any] = {
            "envelope_id": envelope.id, "payload": envelope.payload, "type": envelope.type,
            "accepts_response_payload": envelope.type == "slash_commands",
        }
        if envelope.type == "events_api":
            message["retry_attempt"] = envelope.retry_attempt
            message["retry_reason"] = envelope.retry_reason
        return message

    # -- plumbing -----------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            # A send on a socket that just closed fails; the ack timer re-delivers the envelope.
            task.exception()

    def _later(self, loop: asyncio.AbstractEventLoop, delay: float, fn: Any) -> None:
        timer: asyncio.TimerHandle | None = None

        def run() -> None:
            self._timers.discard(timer)  # type: ignore[arg-type]
            fn()

        timer = loop.call_later(delay, run)
        self._timers.add(timer)

    async def _close(self, conn: Connection) -> None:
        with contextlib.suppress(Exception):
            await conn.ws.close()
