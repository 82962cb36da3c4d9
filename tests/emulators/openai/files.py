"""POST /v1/files (multipart: `file`, `purpose`) and GET /v1/files/{file_id}: uploads kept in memory,
with their bytes, so tests can see what an image sent by file id contained."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors
from .app import BODY, Platform
from .state import new_id, now


def register(app: web.Application, platform: Platform) -> None:
    async def create(request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = request[BODY]
        upload = body.get("file")
        if not isinstance(upload, dict):
            raise errors.missing_parameter("file")
        file_id = new_id("file", alnum_chars=22, sep="-")
        record = {"id": file_id, "object": "file", "bytes": len(upload["content"]), "created_at": now(),
                  "expires_at": None, "filename": upload["filename"], "purpose": body.get("purpose"),
                  "status": "processed", "status_details": None}
        platform.state.files[file_id] = {**record, "content": upload["content"],
                                         "content_type": upload["content_type"]}
        return platform.json(request, record)

    async def retrieve(request: web.Request) -> web.StreamResponse:
        stored = platform.state.files.get(request.match_info["file_id"])
        if stored is None:
            raise errors.ApiError(404, f"No such File object: {request.match_info['file_id']}", param="id")
        return platform.json(request, {k: v for k, v in stored.items() if k not in ("content", "content_type")})

    app.router.add_post("/v1/files", create)
    app.router.add_get("/v1/files/{file_id}", retrieve)
