"""Server-sent events the way OpenAI writes them: `event: <type>\\ndata: <json>\\n\\n`.

`SSEWriter` also carries the stream faults: `cut` drops the TCP connection mid-body (the client sees
an incomplete chunked body), and it tells handlers when the client went away (`ClientGone`). On a
request whose answer is to be lost (`DISCARD`) it writes nothing: the stream runs to its end on the
server, and the client gets whatever the fault answers instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

DISCARD = web.RequestKey("discard_answer", bool)  # the request is carried out, its answer thrown away


class ClientGone(Exception):
    """The client closed the connection (or we cut it) before the stream ended."""


class SSEWriter:
    def __init__(self, request: web.Request, *, request_id: str,
                 check: Callable[[str | None, Any], None] | None = None) -> None:
        self.request = request
        self.request_id = request_id
        self._check = check
        self._response: web.StreamResponse | None = None
        self.closed = False
        self._discard = bool(request.get(DISCARD))

    async def open(self) -> None:
        if self._discard:
            self._response = web.StreamResponse(status=200)  # never sent
            return
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "x-request-id": self.request_id,
            "openai-version": "2020-10-01",
            "openai-processing-ms": "1",
        })
        await response.prepare(self.request)
        self._response = response

    async def event(self, name: str | None, data: Any, *, check: bool = True) -> None:
        """One event; `name=None` writes a bare `data:` line (Chat Completions style)."""
        if check and self._check is not None and not isinstance(data, str):
            self._check(name, data)
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        head = f"event: {name}\n" if name else ""
        await self._write(f"{head}data: {payload}\n\n".encode())

    async def _write(self, raw: bytes) -> None:
        if self._discard and self._response is not None:
            return
        if self.closed or self._response is None:
            raise ClientGone()
        try:
            await self._response.write(raw)
        except (ConnectionError, RuntimeError) as exc:  # aiohttp's ClientConnectionResetError is both
            self.closed = True
            raise ClientGone() from exc

    async def finish(self) -> web.StreamResponse:
        assert self._response is not None
        if not self.closed and not self._discard:
            try:
                await self._response.write_eof()
            except (ConnectionError, RuntimeError):
                self.closed = True
        return self._response

    def cut(self) -> None:
        """Drop the connection without ending the chunked body."""
        self.closed = True
        transport = self.request.transport
        if transport is not None and not self._discard:
            transport.abort()

    @property
    def response(self) -> web.StreamResponse:
        assert self._response is not None
        return self._response


class CharBudget:
    """Counts streamed characters so a stream fault fires after `after_chars`."""

    def __init__(self, after_chars: int | None) -> None:
        self.left = after_chars

    def spend(self, text: str) -> bool:
        """True when the fault should fire now (after this piece has been sent)."""
        if self.left is None:
            return False
        self.left -= len(text)
        return self.left <= 0
