"""Files: what people share, `files.info`, and the authenticated `url_private` downloads.

A file's content is served at `/files-pri/{team}-{file id}/{name}` (url_private) and
`/files-pri/{team}-{file id}/download/{name}` (url_private_download), as Slack serves it from
files.slack.com: only to a request with `Authorization: Bearer <token>` whose token may read files
(`files:read`). Anything else is not refused with a 401: like Slack, the emulator answers
`302 Found` to the workspace's sign-in page (`/?redir=…`), which is an HTML page answered 200 —
which is why a client that does not check what it got ends up with a login page for a "file".
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from .web_api import ApiError

if TYPE_CHECKING:
    from .core import SlackCore

SIGN_IN_PAGE = ("<!DOCTYPE html><html lang=\"en-US\"><head><title>Sign in | Slack</title></head>"
                "<body><h1>Sign in to your workspace</h1></body></html>")
# Slack's `filetype` and `pretty_type` for the mimetypes tests share.
FILETYPES = {"image/png": ("png", "PNG"), "image/jpeg": ("jpg", "JPEG"), "image/gif": ("gif", "GIF"),
             "image/webp": ("webp", "WebP"), "application/pdf": ("pdf", "PDF"), "text/plain": ("text", "Plain Text"),
             "text/markdown": ("markdown", "Markdown (raw)"), "text/csv": ("csv", "CSV"),
             "application/json": ("json", "JSON"), "text/x-python": ("python", "Python"),
             "application/zip": ("zip", "Zip")}


@dataclass
class SharedFile:
    """A file somebody uploaded, with its bytes."""

    id: str
    name: str
    mimetype: str
    content: bytes
    user: str
    created: int = field(default_factory=lambda: int(time.time()))
    channels: list[str] = field(default_factory=list)
    filetype: str = ""


@dataclass
class Download:
    """One request for a file's content, as the emulator answered it."""

    file_id: str
    path: str
    status: int
    authorized: bool
    authorization: str  # "bearer" (a valid token), "wrong", "missing"
    time: float


@dataclass
class FileStore:
    """Every shared file, the downloads asked for, and injected download failures."""

    files: dict[str, SharedFile] = field(default_factory=dict)
    downloads: list[Download] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # statuses to answer the next downloads with
    readable: bool = True  # False: the app lacks files:read (downloads go to the sign-in page)


def file_object(core: SlackCore, shared: SharedFile) -> dict[str, Any]:
    """The file object Slack puts in message events and files.info answers."""
    filetype, pretty = FILETYPES.get(shared.mimetype, (shared.filetype or "binary", "Binary"))
    base = f"{core.server_url}/files-pri/{core.ws.team_id}-{shared.id}"
    name = quote(shared.name)
    data: dict[str, Any] = {
        "id": shared.id, "created": shared.created, "timestamp": shared.created, "name": shared.name,
        "title": shared.name, "mimetype": shared.mimetype, "filetype": shared.filetype or filetype,
        "pretty_type": pretty, "user": shared.user, "user_team": core.ws.team_id, "editable": False,
        "size": len(shared.content), "mode": "hosted", "is_external": False, "external_type": "",
        "is_public": True, "public_url_shared": False, "display_as_bot": False, "username": "",
        "url_private": f"{base}/{name}", "url_private_download": f"{base}/download/{name}",
        "permalink": f"{core.ws.url}files/{shared.user}/{shared.id}/{name}",
        "permalink_public": f"https://slack-files.com/{core.ws.team_id}-{shared.id}-{secrets.token_hex(5)}",
        "is_starred": False, "has_rich_preview": False, "file_access": "visible",
    }
    if shared.mimetype.startswith("image/"):
        data |= {"thumb_64": f"{base}/{name}?t=thumb_64", "original_w": 800, "original_h": 600}
    return data


def partial_file_object(shared: SharedFile) -> dict[str, Any]:
    """What an event carries for a file Slack wants the app to look up (`file_access: check_file_info`)."""
    return {"id": shared.id, "mode": "file_access", "file_access": "check_file_info", "created": shared.created,
            "timestamp": shared.created, "user": shared.user}


def files_info(core: SlackCore, args: dict[str, Any]) -> dict[str, Any]:
    shared = core.files.files.get(str(args.get("file") or ""))
    if shared is None or not any(core.ws.visible_to_bot(core.ws.channels.get(c)) for c in shared.channels):
        raise ApiError("file_not_found")
    if not core.files.readable:
        raise ApiError("missing_scope", needed="files:read", provided="chat:write,channels:history")
    return {"file": file_object(core, shared), "comments": [], "response_metadata": {"next_cursor": ""}}


def add_routes(app: web.Application, core: SlackCore) -> None:
    async def download(request: web.Request) -> web.StreamResponse:
        return serve_download(core, request)

    async def sign_in(request: web.Request) -> web.StreamResponse:
        return web.Response(text=SIGN_IN_PAGE, content_type="text/html", charset="utf-8")

    app.router.add_get("/files-pri/{team_file}/download/{name}", download)
    app.router.add_get("/files-pri/{team_file}/{name}", download)
    app.router.add_get("/", sign_in)


def serve_download(core: SlackCore, request: web.Request) -> web.StreamResponse:
    team, _, file_id = request.match_info["team_file"].partition("-")
    shared = core.files.files.get(file_id) if team == core.ws.team_id else None
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    valid = bool(token) and token == core.options.bot_token and token not in core.revoked_tokens
    authorization = "bearer" if valid else ("wrong" if token else "missing")
    if core.files.failures and valid:
        status = core.files.failures.pop(0)
        return _recorded(core, file_id, request, status, valid, authorization,
                         web.Response(status=status, text="Service Unavailable"))
    if not valid or not core.files.readable:
        where = f"{core.server_url}/?redir={quote(request.path_qs, safe='')}"
        return _recorded(core, file_id, request, 302, False, authorization,
                         web.Response(status=302, headers={"Location": where}, text="Found"))
    if shared is None:
        return _recorded(core, file_id, request, 404, True, authorization,
                         web.Response(status=404, text="Not Found"))
    disposition = "attachment" if "/download/" in request.path else "inline"
    return _recorded(core, file_id, request, 200, True, authorization, web.Response(
        body=shared.content, content_type=shared.mimetype or "application/octet-stream",
        headers={"Content-Disposition": f'{disposition}; filename="{quote(shared.name)}"'}))


def _recorded(core: SlackCore, file_id: str, request: web.Request, status: int, authorized: bool,
              authorization: str, response: web.Response) -> web.Response:
    core.files.downloads.append(Download(file_id=file_id, path=request.path, status=status, authorized=authorized,
                                         authorization=authorization, time=time.time()))
    return response


HANDLERS = {"files.info": files_info}
