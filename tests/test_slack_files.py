"""SlackFiles against the Slack emulator and a second host: the token goes to Slack's addresses only, a
redirect off them is not followed, the limits hold, and Slack's sign-in page is never taken for a file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import FileNote
from bot.outbound.slack_files import FileUnreadable, SlackFiles, SlackFilesDown
from tests.emulators.server import BackgroundServer
from tests.emulators.slack import SlackEmulator


@pytest.fixture
def elsewhere() -> Iterator[tuple[BackgroundServer, list[str]]]:
    """A host that is not Slack, noting the Authorization header of every request it gets."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(body=b"not from slack", content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", anything)
    server = BackgroundServer(app).start()
    yield server, seen
    server.stop()


def reader(slack: SlackEmulator) -> SlackFiles:
    return SlackFiles(AsyncWebClient(token=slack.bot_token, base_url=slack.base_url), api_url=slack.base_url)


def shared(slack: SlackEmulator, content: bytes, name: str = "a.png", mimetype: str = "image/png") -> FileNote:
    ts = slack.share_file("general", "alice", name, content, mimetype)
    file = next(m for m in slack.messages("general") if m["ts"] == ts)["files"][0]
    return FileNote(name, mimetype, len(content), id=file["id"], url=file["url_private_download"])


async def test_reads_within_the_limits(slack: SlackEmulator) -> None:
    note = shared(slack, b"x" * 1000)
    files = reader(slack)
    assert (await files.download(note, 1000)).data == b"x" * 1000
    with pytest.raises(FileUnreadable, match="larger than the limit"):
        await files.download(note, 999)
    cut = await files.download(note, 10, partial=True)
    assert (cut.data, cut.truncated) == (b"x" * 10, True)
    assert all(d.authorization == "bearer" for d in slack.file_downloads())


async def test_the_token_never_leaves_slack(slack: SlackEmulator,
                                            elsewhere: tuple[BackgroundServer, list[str]]) -> None:
    server, seen = elsewhere
    files = reader(slack)
    with pytest.raises(FileUnreadable, match="not on Slack"):
        await files.download(FileNote("a.png", "image/png", 5, url=f"{server.url}/a.png"), 100)
    assert seen == []  # not even asked

    redirecting = web.Application()  # a "Slack" whose file answer redirects to another host

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{server.url}/stolen.png")

    redirecting.router.add_get("/files-pri/{tail:.*}", redirect)
    fake = BackgroundServer(redirecting).start()
    try:
        via = SlackFiles(AsyncWebClient(token="xoxb-secret", base_url=f"{fake.url}/api/"), api_url=f"{fake.url}/api/")
        with pytest.raises(FileUnreadable, match="not on Slack"):
            await via.download(FileNote("a.png", "image/png", 5, url=f"{fake.url}/files-pri/T-F/a.png"), 100)
    finally:
        fake.stop()
    assert seen == []


async def test_refusals_and_outages(slack: SlackEmulator) -> None:
    note = shared(slack, b"png bytes")
    files = reader(slack)
    slack.set_files_readable(False)
    with pytest.raises(FileUnreadable, match="files:read"):  # Slack's sign-in page, not a file
        await files.download(note, 100)
    with pytest.raises(FileUnreadable, match="files:read"):
        await files.details(FileNote("a.png", id=note.id, access="check_file_info"))
    slack.set_files_readable(True)
    slack.fail_downloads(times=1, status=503)
    with pytest.raises(SlackFilesDown):
        await files.download(note, 100)
    assert (await files.download(note, 100)).data == b"png bytes"
    with pytest.raises(FileUnreadable, match="gone"):
        await files.details(FileNote("a.png", id="F0NOSUCH", access="check_file_info"))
    with pytest.raises(FileUnreadable, match="no longer shows"):
        await files.details(FileNote("a.png", id=note.id, access="hidden_by_limit"))
    found = await files.details(FileNote("file", id=note.id, access="check_file_info"))
    assert (found.name, found.mimetype, found.size, found.url) == ("a.png", "image/png", 9, note.url)
