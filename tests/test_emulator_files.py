"""Fidelity of the emulators' files: Slack's file_share messages, files.info and authenticated downloads
(driven by slack_sdk and aiohttp), and OpenAI's text-only refusals and Files API (driven by `openai`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import aiohttp
import openai
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

PNG = b"\x89PNG\r\n\x1a\nfake"


async def fetch(url: str, token: str | None) -> tuple[int, str, bytes, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers, allow_redirects=False) as got:
        return got.status, got.content_type, await got.read(), got.headers.get("Location", "")


def test_a_shared_file_is_a_file_share_message_with_the_file(slack: SlackEmulator) -> None:
    ts = slack.share_file("general", "alice", "shot.png", PNG, "image/png")
    (event,) = [e for e in slack.events("message") if e["ts"] == ts]
    assert (event["subtype"], event["text"], event["upload"]) == ("file_share", "", True)
    (file,) = event["files"]
    assert {"id", "name", "mimetype", "filetype", "size", "url_private", "url_private_download", "mode"} <= set(file)
    assert (file["filetype"], file["size"], file["mode"]) == ("png", len(PNG), "hosted")
    partial_ts = slack.share_file("general", "alice", "b.png", PNG, "image/png", partial=True)
    (later,) = [e for e in slack.events("message") if e["ts"] == partial_ts]
    assert later["files"][0]["file_access"] == "check_file_info" and "url_private" not in later["files"][0]


async def test_downloads_need_the_bot_token(slack: SlackEmulator) -> None:
    ts = slack.share_file("general", "alice", "shot.png", PNG, "image/png")
    file = slack.messages("general")[0]["files"][0]
    assert slack.messages("general")[0]["ts"] == ts
    assert (await fetch(file["url_private_download"], slack.bot_token))[:3] == (200, "image/png", PNG)
    assert (await fetch(file["url_private"], slack.bot_token))[2] == PNG
    for token in (None, "xoxb-wrong"):  # like Slack: not a 401, a redirect to the sign-in page …
        status, _, _, location = await fetch(file["url_private"], token)
        assert status == 302 and "/?redir=%2Ffiles-pri%2F" in location
    status, content_type, body, _ = await fetch(location, None)  # … which is a web page answered 200
    assert (status, content_type) == (200, "text/html") and b"Sign in" in body
    assert [d.authorization for d in slack.file_downloads()] == ["bearer", "bearer", "missing", "wrong"]
    slack.revoke_bot_token()
    assert (await fetch(file["url_private"], slack.bot_token))[0] == 302
    slack.restore_bot_token()
    slack.set_files_readable(False)
    assert (await fetch(file["url_private"], slack.bot_token))[0] == 302
    slack.set_files_readable(True)
    slack.fail_downloads(times=1, status=503)
    assert (await fetch(file["url_private"], slack.bot_token))[0] == 503
    assert (await fetch(file["url_private"], slack.bot_token))[0] == 200


async def test_files_info(slack: SlackEmulator) -> None:
    ts = slack.share_file("general", "alice", "notes.md", b"# hi", "text/markdown", partial=True)
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
    info = await client.files_info(file=slack.file_id("general", ts))
    assert (info["file"]["name"], info["file"]["filetype"], info["file"]["size"]) == ("notes.md", "markdown", 4)
    with pytest.raises(SlackApiError) as missing:
        await client.files_info(file="F0NOSUCH")
    assert missing.value.response["error"] == "file_not_found"
    slack.set_files_readable(False)
    with pytest.raises(SlackApiError) as no_scope:
        await client.files_info(file=slack.file_id("general", ts))
    assert no_scope.value.response["error"] == "missing_scope"


IMAGE_URL = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture
def text_only(openai_factory: Callable[..., OpenAIEmulator]) -> OpenAIEmulator:
    emu = openai_factory(models=("gpt-4.1-mini", "gpt-3.5-turbo"), self_check=True)
    emu.set_text_only("gpt-3.5-turbo")
    return emu


async def test_a_text_only_model_refuses_images_on_chat_and_responses(text_only: OpenAIEmulator) -> None:
    client = openai.AsyncOpenAI(base_url=text_only.base_url, api_key=text_only.api_key, max_retries=0)
    content = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": IMAGE_URL}}]
    with pytest.raises(openai.BadRequestError) as chat:
        await client.chat.completions.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": content}])
    assert chat.value.body["message"] == "Invalid content type. image_url is only supported by certain models."
    assert chat.value.param == "messages.[0].content.[1].type" and chat.value.code is None
    seeing = await client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": content}])
    assert seeing.choices[0].message.content
    parts = [{"type": "input_text", "text": "what?"}, {"type": "input_image", "image_url": IMAGE_URL, "detail": "auto"}]
    with pytest.raises(openai.BadRequestError) as responses:
        await client.responses.create(model="gpt-3.5-turbo", input=[{"role": "user", "content": parts}])
    assert responses.value.body["message"] == "Invalid content type. input_image is only supported by certain models."
    assert len(text_only.model.seen) == 1  # only the model that sees was asked
    await client.close()


async def test_the_files_api_keeps_uploads(openai_factory: Callable[..., OpenAIEmulator]) -> None:
    emu = openai_factory(self_check=True)
    client = openai.AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0)
    uploaded = await client.files.create(file=("a.png", PNG, "image/png"), purpose="vision")
    assert (uploaded.filename, uploaded.bytes, uploaded.purpose) == ("a.png", len(PNG), "vision")
    assert (await client.files.retrieve(uploaded.id)).id == uploaded.id
    stored = emu.uploaded_files()[uploaded.id]
    assert (stored["content"], stored["content_type"]) == (PNG, "image/png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        emu.set_text_only("gpt-4.1-mini")  # (a thread message names no model: refused while any is text-only)
        thread = await client.beta.threads.create()
        with pytest.raises(openai.BadRequestError) as refused:
            await client.beta.threads.messages.create(thread.id, role="user", content=[
                {"type": "text", "text": "see"}, {"type": "image_file", "image_file": {"file_id": uploaded.id}}])
    assert refused.value.body["message"] == "Invalid content type. image_file is only supported by certain models."
    await client.close()
