"""Whether the model may be sent images and documents (BRIDGE_VISION), and what it has refused.

`off`: every file is described in words. `on`: images (and PDFs, where the API takes them) are always
sent; a server that refuses them fails the turn. `auto` (the default): they are sent until the server
refuses one the way a text-only model does; that turn is sent again with the descriptions alone, and
the refusal is remembered — in the store, so a restart does not ask again — for this backend, server
and model. Changing the model (or the server) asks afresh.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

import openai

log = logging.getLogger(__name__)

REFUSED = "refused"  # the remembered fact: this model takes no images or documents
# What text-only servers answer when a request carries an image: OpenAI ("Invalid content type. image_url
# is only supported by certain models."), LM Studio ("Model does not support images"), Ollama ("this model
# does not support images"), llama.cpp ("image input is not supported"), vLLM ("… is not a multimodal model").
_REFUSAL = re.compile(
    r"(image|input_image|image_url|input_file|file input|vision|multimodal)\S*[^.]{0,40}?"
    r"(only supported by|not supported|unsupported|does not support)"
    r"|(does not|doesn't|do not|cannot) support (image|vision|file|multimodal)"
    r"|not a multimodal model", re.IGNORECASE)
REFUSAL_STATUSES = frozenset({400, 422, 500})  # (vLLM answered 500 to images before it learned to say 400)
# What OpenAI answers an image it cannot read (seen): "You uploaded an unsupported image. Please make sure
# your image is valid." (or "… has of one the following formats: ['png', 'jpeg', 'gif', 'webp']."), with
# code invalid_image_format (or sanitizer_server_error). That image, not the model: this turn only.
_BAD_IMAGE = re.compile(r"unsupported image|invalid image|image (is )?(invalid|corrupt)|could not (process|decode) "
                        r"(the )?image", re.IGNORECASE)
BAD_IMAGE_CODES = frozenset({"invalid_image_format", "invalid_image", "sanitizer_server_error", "image_parse_error"})


class VisionMemory(Protocol):
    """Where what a model refused is kept (the store's `ModelFacts`)."""

    async def fact(self, key: str) -> str | None: ...

    async def remember(self, key: str, value: str) -> None: ...


def refuses_attachments(exc: BaseException) -> bool:
    """Is this the server saying the model cannot take images (or files) at all?"""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in REFUSAL_STATUSES:
        return False
    return bool(_REFUSAL.search(f"{getattr(exc, 'param', None) or ''} {exc.message}"))


def rejects_image(exc: BaseException) -> bool:
    """Is this the server refusing one image it cannot read (not images as such)?"""
    if not isinstance(exc, openai.BadRequestError):
        return False
    return getattr(exc, "code", None) in BAD_IMAGE_CODES or bool(_BAD_IMAGE.search(str(exc.message)))


def refuses_files(exc: BaseException) -> bool:
    """Does this answer make a turn's attachments the problem (a text-only model, or an unreadable image)?"""
    return refuses_attachments(exc) or rejects_image(exc)


class Vision:
    """BRIDGE_VISION for one backend, server and model (see the module docstring)."""

    def __init__(self, mode: str = "auto", *, memory: VisionMemory | None = None, key: str = "") -> None:
        self.mode = mode
        self._memory = memory
        self._key = f"vision:{key}"
        self.refused = False

    async def load(self) -> None:
        """Read what an earlier run learned (auto only)."""
        if self.mode == "auto" and self._memory is not None:
            self.refused = await self._memory.fact(self._key) == REFUSED

    @property
    def allowed(self) -> bool:
        """May this turn carry images and documents?"""
        return self.mode == "on" or (self.mode == "auto" and not self.refused)

    @property
    def learns(self) -> bool:
        """Does a refusal fall back to descriptions (and get remembered) rather than fail the turn?"""
        return self.mode == "auto"

    async def fall_back(self, exc: BaseException) -> bool:
        """The server refused a turn's attachments (`refuses_files`): send it again with descriptions only?
        Yes for an image it cannot read (this turn only, in any mode); for a text-only model only in
        `auto`, which also learns it."""
        if refuses_attachments(exc):
            if not self.learns:
                return False
            await self.learn_refusal(exc)
            return True
        if rejects_image(exc):
            log.warning("the model server could not read an image (%s); this turn describes it instead",
                        getattr(exc, "message", exc))
            return True
        return False

    async def learn_refusal(self, exc: BaseException) -> None:
        """The server refused an image or document: describe files from now on, and remember it."""
        self.refused = True
        log.warning("the model server refused an image or document (%s); files are described in words from now "
                    "on (BRIDGE_VISION=auto; set BRIDGE_VISION=on to insist, off to stop trying)",
                    getattr(exc, "message", exc))
        if self._memory is not None:
            await self._memory.remember(self._key, REFUSED)
