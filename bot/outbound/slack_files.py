"""Reading the content of files people share: `files.info` for what an event left out, then the bytes
from `url_private_download` (or `url_private`) with `Authorization: Bearer <bot token>` (`files:read`).

Only Slack's own addresses are fetched — the host of SLACK_API_URL or one below its domain (slack.com →
files.slack.com) — and a redirect is followed only while it stays there: the token never goes anywhere
else. The content is read into memory, never to disk, and never past the caller's limit. A file Slack
will not give us (its sign-in page instead of the file, which is how Slack answers a token that may not
read files; gone; hidden by a plan's limit) raises `FileUnreadable`; Slack failing to answer (5xx, 429,
a timeout, a lost connection) raises `SlackFilesDown`, which is worth trying again later.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import UNREADABLE_MODES, FileNote, file_note
from bot.outbound.slack_errors import SLACK_FAILURES

DOWNLOAD_TIMEOUT = 60.0  # seconds for one file's whole download
MAX_REDIRECTS = 3
CHUNK = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
FILE_GONE = frozenset({"file_not_found", "file_deleted", "file_is_deleted", "access_denied"})
NO_SCOPE = frozenset({"missing_scope", "no_permission", "not_allowed_token_type"})


class FileUnreadable(Exception):
    """Slack will not give us this file's content; the message says why, for its author."""


class SlackFilesDown(Exception):
    """Slack did not answer for the file (an outage or a rate limit): try the turn again later."""


@dataclass(frozen=True, slots=True)
class Download:
    """A file's content (at most the limit asked for), and whether there was more."""

    data: bytes
    truncated: bool = False


class SlackFiles:
    """Reads shared files with the bot's token (see the module docstring)."""

    def __init__(self, client: AsyncWebClient, *, session: aiohttp.ClientSession | None = None,
                 api_url: str = "https://slack.com/api/", timeout: float = DOWNLOAD_TIMEOUT) -> None:
        self._client = client
        self._session = session
        self._api = urlsplit(api_url)
        self._timeout = timeout

    async def details(self, note: FileNote) -> FileNote:
        """The file as files.info describes it, when the event left its details out (`check_file_info`)."""
        if note.access in UNREADABLE_MODES:
            raise FileUnreadable("Slack no longer shows this file (deleted, or hidden by the workspace's plan)")
        if note.url and note.access != "check_file_info":
            return note
        if not note.id:
            raise FileUnreadable("Slack did not say where the file is")
        try:
            response = await self._client.files_info(file=note.id)
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in FILE_GONE:
                raise FileUnreadable("the file is gone or not shared with the assistant") from exc
            if error in NO_SCOPE:
                raise FileUnreadable("the Slack app may not read files (add the files:read scope and reinstall "
                                     "it)") from exc
            raise SlackFilesDown(f"files.info failed ({error})") from exc
        except SLACK_FAILURES as exc:
            raise SlackFilesDown(f"files.info failed ({type(exc).__name__})") from exc
        found = file_note(response.get("file") or {})
        if found.access in UNREADABLE_MODES or not found.url:
            raise FileUnreadable("Slack no longer shows this file (deleted, or hidden by the workspace's plan)")
        return found

    async def download(self, note: FileNote, limit: int, *, partial: bool = False) -> Download:
        """The file's bytes, at most `limit`: beyond it `FileUnreadable`, or with `partial` the first
        `limit` bytes, marked truncated."""
        session = self._session
        own = session is None
        if own:
            session = aiohttp.ClientSession()
        assert session is not None
        try:
            async with asyncio.timeout(self._timeout):
                return await self._fetch(session, note, limit, partial)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackFilesDown(f"the download failed ({type(exc).__name__})") from exc
        finally:
            if own:
                await session.close()

    async def _fetch(self, session: aiohttp.ClientSession, note: FileNote, limit: int, partial: bool) -> Download:
        url = note.url
        headers = {"Authorization": f"Bearer {self._client.token}"}
        for _ in range(MAX_REDIRECTS + 1):
            if not self.is_slack(url):
                raise FileUnreadable("the file is not on Slack (the assistant reads only Slack's own addresses)")
            async with session.get(url, headers=headers, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=self._timeout)) as response:
                if response.status in REDIRECTS:
                    target = urljoin(url, response.headers.get("Location", ""))
                    if "redir=" in urlsplit(target).query:  # Slack's sign-in page: the token may not read it
                        raise FileUnreadable("Slack would not let the app read the file (it needs the files:read "
                                             "scope)")
                    url = target
                    continue
                if response.status == 429 or response.status >= 500:
                    raise SlackFilesDown(f"Slack answered {response.status} for the file")
                if response.status != 200:
                    raise FileUnreadable(f"Slack answered {response.status} for the file")
                if response.content_type == "text/html" and not note.mimetype.startswith("text/html"):
                    raise FileUnreadable("Slack sent a web page instead of the file (the app needs files:read)")
                return await _read(response, limit, partial)
        raise FileUnreadable("Slack redirected the download too often")

    def is_slack(self, url: str) -> bool:
        """Is `url` one of Slack's own (the API's host, or one under its domain), by the API's scheme?"""
        parts = urlsplit(url)
        if parts.scheme != self._api.scheme or not parts.hostname:
            return False
        api_host = self._api.hostname or ""
        if parts.hostname == api_host:
            return parts.port == self._api.port
        return api_host.count(".") >= 1 and not _is_ip(api_host) and parts.hostname.endswith("." + api_host)


async def _read(response: aiohttp.ClientResponse, limit: int, partial: bool) -> Download:
    if response.content_length is not None and response.content_length > limit and not partial:
        raise FileUnreadable("the file is larger than the limit")
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > limit:
            if not partial:
                raise FileUnreadable("the file is larger than the limit")
            return Download(bytes(data[:limit]), truncated=True)
    return Download(bytes(data))


def _is_ip(host: str) -> bool:
    return host.replace(".", "").isdigit() or ":" in host
