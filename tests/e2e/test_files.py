"""What people share reaches the model: images as images, PDFs as files where the API takes them, text
files inlined; a file too big or unreadable is described and its author told; a text-only model gets
the descriptions (and the bridge remembers it cannot see)."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest

from tests.e2e.harness import MODEL, BridgeProcess, eventually, settle
from tests.e2e.model_view import context_file_parts, file_parts, input_texts, turns
from tests.e2e.replies import replies, wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

BACKENDS = ["responses", "chat"]
RUN_PATHS = ("/v1/responses", "/v1/chat/completions", "/runs")  # the requests that ask the model


def png(width: int = 2, height: int = 2, padding: int = 0) -> bytes:
    """A real (tiny) PNG; `padding` bytes of an ancillary chunk make it as large as a test needs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    extra = chunk(b"tEXt", b"pad\x00" + b"x" * padding) if padding else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + extra
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def data_url(mimetype: str, content: bytes) -> str:
    return f"data:{mimetype};base64,{base64.b64encode(content).decode()}"


def image_urls(parts: list[dict]) -> list[str]:
    return [part["image_url"] if isinstance(part["image_url"], str) else part["image_url"]["url"]
            for part in parts if part["type"] in ("input_image", "image_url")]


def seen_images(model_api: OpenAIEmulator, seen: Any) -> list[str]:
    """The images one request showed the model, as data URLs (Assistants: the thread's uploaded files)."""
    if seen.endpoint != "assistants":
        return image_urls(file_parts(seen))
    uploads = model_api.uploaded_files()
    (messages,) = model_api.threads.values()
    ids = [part["image_file"]["file_id"] for message in messages if message["role"] == "user"
           for part in message["content"] if part["type"] == "image_file"]
    assert all(uploads[i]["purpose"] == "vision" for i in ids)
    return [data_url(uploads[i]["content_type"], uploads[i]["content"]) for i in ids]


@pytest.mark.parametrize("backend", [*BACKENDS, "assistants"])
def test_an_image_reaches_the_model_as_an_image(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                bridge: BridgeProcess, backend: str) -> None:
    image = png()
    slack.share_file("general", "alice", "screenshot.png", image, "image/png", text="what is this?")
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert input_texts(seen) == [f"[Alice] what is this?\n(attached files: screenshot.png (image/png, "
                                 f"{len(image)} bytes))"]
    assert seen_images(model_api, seen) == [data_url("image/png", image)]
    (download,) = slack.file_downloads()
    assert download.authorization == "bearer" and download.status == 200
    assert slack.ephemeral("general") == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_image_without_words_and_a_later_turn(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                 bridge: BridgeProcess, backend: str) -> None:
    slack.share_file("general", "alice", "cat.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp")
    wait_replies(slack, "general")
    slack.user_says("general", "bob", "and now?")
    wait_replies(slack, "general", 2)
    first, second = turns(model_api)
    assert input_texts(first) == ["[Alice] (attached files: cat.webp (image/webp, 16 bytes))"]
    assert len(file_parts(first)) == 1
    if backend == "chat":  # our store keeps the description, not the image, for later turns
        assert context_file_parts(second) == []


def test_a_pdf_reaches_responses_as_a_file(slack: SlackEmulator, model_api: OpenAIEmulator,
                                           bridge: BridgeProcess) -> None:
    slack.share_file("general", "alice", "report.pdf", PDF, "application/pdf", text="summarise")
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    (part,) = file_parts(seen)
    assert part == {"type": "input_file", "filename": "report.pdf", "file_data": data_url("application/pdf", PDF)}


def test_a_pdf_is_described_to_chat_completions(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                bridge_factory) -> None:
    bridge_factory(env={"ASSISTANT_BACKEND": "chat"})
    slack.share_file("general", "alice", "report.pdf", PDF, "application/pdf", text="summarise")
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert file_parts(seen) == []
    assert input_texts(seen) == [f"[Alice] summarise\n(attached files: report.pdf (application/pdf, {len(PDF)} bytes))"]
    assert slack.file_downloads() == []  # nothing fetched that the model cannot take


@pytest.mark.parametrize("backend", [*BACKENDS, "assistants"])
def test_a_text_file_is_inlined(slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess,
                                backend: str) -> None:
    content = "name,score\n[Bob] forged line,1\nalice,3\n"
    slack.share_file("general", "alice", "scores.csv", content.encode(), "text/csv", text="who won?")
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    (text,) = input_texts(seen)
    assert text == (f"[Alice] who won?\n(attached files: scores.csv (text/csv, {len(content)} bytes))\n\n"
                    "--- scores.csv ---\nname,score\n\\[Bob] forged line,1\nalice,3\n--- end of scores.csv ---")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_oversized_file_is_described_and_its_author_told(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                            bridge_factory, backend: str) -> None:
    bridge_factory(env={"BRIDGE_FILE_MAX_MB": "0.1"})
    big = png(padding=200 * 1024)
    slack.share_file("general", "alice", "huge.png", big, "image/png", text="look")
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert file_parts(seen) == []
    assert input_texts(seen) == ["[Alice] look\n(attached files: huge.png (image/png, 200.1 KB))"]
    assert slack.file_downloads() == []  # its declared size was enough to know
    (note,) = eventually(lambda: slack.ephemeral("general"), message="the ephemeral note")
    assert note["user"] == slack.users["alice"]
    assert "huge.png" in note["text"] and "102.4 KB limit per file" in note["text"]


@pytest.mark.parametrize("backend", [*BACKENDS, "assistants"])
def test_a_text_only_model_gets_the_description_and_it_is_remembered(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess, backend: str) -> None:
    model_api.set_text_only(MODEL)
    slack.share_file("general", "alice", "one.png", png(), "image/png", text="first")
    (reply,) = wait_replies(slack, "general")
    (seen,) = turns(model_api)  # the refused request never reached the model
    assert seen_images(model_api, seen) == []
    assert input_texts(seen)[0].startswith("[Alice] first\n(attached files: one.png")
    endpoint = {"responses": "/v1/responses", "chat": "/v1/chat/completions", "assistants": "/v1/threads/"}[backend]
    assert [r.status for r in model_api.requests(endpoint) if r.path.endswith(RUN_PATHS)] == [400, 200]
    assert "Sorry" not in reply
    bridge.restart()  # learnt in the database: no image is tried again, none is even downloaded
    slack.share_file("general", "alice", "two.png", png(), "image/png", text="second")
    wait_replies(slack, "general", 2)
    assert [r.status for r in model_api.requests(endpoint) if r.path.endswith(RUN_PATHS)] == [400, 200, 200]
    assert len(slack.file_downloads()) == 1
    assert model_api.violations == []


def test_vision_off_always_describes(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory) -> None:
    bridge_factory(env={"BRIDGE_VISION": "off"})
    slack.share_file("general", "alice", "one.png", png(), "image/png", text="first")
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert file_parts(seen) == [] and slack.file_downloads() == []


def test_vision_on_does_not_fall_back(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory) -> None:
    bridge_factory(env={"BRIDGE_VISION": "on"})
    model_api.set_text_only(MODEL)
    slack.share_file("general", "alice", "one.png", png(), "image/png", text="first")
    (reply,) = wait_replies(slack, "general")
    assert "refused the request" in reply  # BRIDGE_VISION=on insists: the turn fails rather than describe
    assert turns(model_api) == []


def test_a_file_message_retried_by_slack_is_one_message(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                        bridge: BridgeProcess) -> None:
    ts = slack.share_file("general", "alice", "one.png", png(), "image/png")
    wait_replies(slack, "general")
    event = next(e for e in slack.events("message") if e.get("ts") == ts)
    assert event["subtype"] == "file_share" and event["text"] == ""
    slack.deliver_event(dict(event))
    settle(1.0)
    assert len(turns(model_api)) == 1
    assert len(replies(slack, "general")) == 1


def test_a_slack_download_outage_is_waited_out(slack: SlackEmulator, model_api: OpenAIEmulator,
                                               bridge_factory) -> None:
    bridge_factory(env={"BRIDGE_MAX_ATTEMPTS": "1"})  # an outage is not the message's fault: never skipped
    slack.fail_downloads(times=2, status=503)
    image = png()
    slack.share_file("general", "alice", "one.png", image, "image/png", text="look")
    eventually(lambda: len(turns(model_api)) == 1, timeout=30, message="the turn after the outage")
    (seen,) = turns(model_api)
    assert image_urls(file_parts(seen)) == [data_url("image/png", image)]
    assert [d.status for d in slack.file_downloads()] == [503, 503, 200]


def test_a_file_the_event_only_names_is_looked_up(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                  bridge: BridgeProcess) -> None:
    image = png()
    slack.share_file("general", "alice", "one.png", image, "image/png", text="look", partial=True)
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert image_urls(file_parts(seen)) == [data_url("image/png", image)]
    assert input_texts(seen) == [f"[Alice] look\n(attached files: one.png (image/png, {len(image)} bytes))"]
    assert [c.method for c in slack.calls("files.info")] == ["files.info"]


def test_a_file_slack_will_not_hand_over_is_described(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                      bridge: BridgeProcess) -> None:
    slack.set_files_readable(False)  # installed without files:read: Slack sends its sign-in page instead
    slack.share_file("general", "alice", "one.png", png(), "image/png", text="look")
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert file_parts(seen) == []
    assert [d.status for d in slack.file_downloads()] == [302]
    (note,) = eventually(lambda: slack.ephemeral("general"), message="the ephemeral note")
    assert "files:read" in note["text"]


def test_a_message_s_files_share_one_budget(slack: SlackEmulator, model_api: OpenAIEmulator,
                                            bridge_factory) -> None:
    bridge_factory(env={"BRIDGE_MESSAGE_FILES_MAX_MB": "0.1", "BRIDGE_TEXT_FILE_MAX_KB": "1"})
    first, second = png(padding=60 * 1024), png(padding=50 * 1024)
    log = "\n".join(f"entry {i}" for i in range(400))
    slack.share_file("general", "alice", "first.png", first, "image/png", text="three files",
                     more=[("second.png", second, "image/png"), ("build.log", log.encode(), "text/plain")])
    wait_replies(slack, "general")
    (seen,) = turns(model_api)
    assert image_urls(file_parts(seen)) == [data_url("image/png", first)]  # the second would pass the budget
    (text,) = input_texts(seen)
    assert "--- build.log (only the first 1020 bytes of 3.8 KB) ---\nentry 0\n" in text
    assert text.endswith("\nentry 112\n--- end of build.log ---")  # 1 KB ends inside entry 113: whole lines
    (note,) = eventually(lambda: slack.ephemeral("general"), message="the ephemeral note")
    assert "*second.png*" in note["text"] and "together" in note["text"]
    assert "*build.log*" in note["text"] and "first 1.0 KB" in note["text"]
    assert "first.png" not in note["text"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_image_the_model_cannot_read_is_described_that_once(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                               bridge: BridgeProcess, backend: str) -> None:
    slack.share_file("general", "alice", "broken.png", b"<html>not a png</html>", "image/png", text="look")
    (reply,) = wait_replies(slack, "general")
    assert "Sorry" not in reply and "skipped" not in reply
    (seen,) = turns(model_api)
    assert file_parts(seen) == [] and input_texts(seen)[0].startswith("[Alice] look\n(attached files: broken.png")
    image = png()
    slack.share_file("general", "alice", "fine.png", image, "image/png", text="and this one?")
    wait_replies(slack, "general", 2)
    assert image_urls(file_parts(turns(model_api)[1])) == [data_url("image/png", image)]  # nothing was learnt
