"""Text-only models: a request that shows one an image or a file is refused before anything is stored.

Chat Completions answers what OpenAI answers a text-only model (gpt-3.5-turbo) given an image (seen in
public issue threads): 400 `Invalid content type. image_url is only supported by certain models.`,
`param` naming the part (`messages.[0].content.[1].type`), `code` null. The Responses and Assistants
answers are the same text for their own part types (a reconstruction in the same style).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .errors import ApiError

# What each image format starts with; OpenAI reads png, jpeg, gif and webp and refuses anything else.
MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",), "image/gif": (b"GIF87a", b"GIF89a"),
         "image/webp": (b"RIFF",)}

# Part types that carry an image or a file, per API.
CHAT_PARTS = frozenset({"image_url", "input_audio", "file"})
RESPONSES_PARTS = frozenset({"input_image", "input_file"})
ASSISTANTS_PARTS = frozenset({"image_url", "image_file"})


def refused(part_type: str, param: str) -> ApiError:
    return ApiError(400, f"Invalid content type. {part_type} is only supported by certain models.", param=param)


def bad_image() -> ApiError:  # seen (public issue threads)
    return ApiError(400, "You uploaded an unsupported image. Please make sure your image is valid.",
                    code="invalid_image_format")


def check_images(path: str, body: Any) -> None:
    """Every inline image (a data URL) must be a PNG, JPEG, GIF or WebP that is what it says it is."""
    if not isinstance(body, dict) or path not in ("/v1/chat/completions", "/v1/responses"):
        return
    items = body.get("messages") if path == "/v1/chat/completions" else body.get("input")
    for item in items if isinstance(items, list) else ():
        content = item.get("content") if isinstance(item, dict) else None
        for part in content if isinstance(content, list) else ():
            url = part.get("image_url") if isinstance(part, dict) else None
            url = url.get("url") if isinstance(url, dict) else url
            if isinstance(url, str) and url.startswith("data:") and not _readable(url):
                raise bad_image()


def _readable(url: str) -> bool:
    header, _, data = url.partition(",")
    mimetype = header.removeprefix("data:").split(";")[0]
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    starts = MAGIC.get(mimetype, ())
    return any(content.startswith(start) for start in starts) and (mimetype != "image/webp" or content[8:12] == b"WEBP")


def check(path: str, body: Any, text_only: bool) -> None:
    """Raise the refusal if a text-only model is shown an image or a file."""
    if not text_only or not isinstance(body, dict):
        return
    if path == "/v1/chat/completions":
        _scan(body.get("messages"), "messages", CHAT_PARTS, dotted=True)
    elif path == "/v1/responses":
        _scan(body.get("input") if isinstance(body.get("input"), list) else None, "input", RESPONSES_PARTS)
    elif path.startswith("/v1/threads") and (path.endswith("/runs") or path.endswith("/messages")):
        messages = body.get("additional_messages") if path.endswith("/runs") else [body]
        _scan(messages, "additional_messages" if path.endswith("/runs") else "", ASSISTANTS_PARTS)


def _scan(messages: Any, where: str, kinds: frozenset[str], *, dotted: bool = False) -> None:
    for i, message in enumerate(messages or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in kinds:
                if not where:  # one message's own body
                    param = f"content[{j}].type"
                else:
                    param = f"{where}.[{i}].content.[{j}].type" if dotted else f"{where}[{i}].content[{j}].type"
                raise refused(str(kind), param)
