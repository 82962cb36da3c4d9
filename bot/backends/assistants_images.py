"""Images for the Assistants backend: a thread message takes no inline image, so each is uploaded
(Files API, purpose `vision`) and named by file id in an `image_file` part. Uploaded once per content
(by hash, in memory), so a turn tried again does not upload its images again."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import openai

from bot.backends.base import IMAGE, Attachment
from bot.backends.errors import classify, missing_api
from bot.backends.vision import refuses_attachments

MAX_UPLOADS_KEPT = 1000  # image hashes → file ids remembered


class AttachmentsRefused(Exception):
    """The model takes no images (a text-only model): the run was refused before it existed."""

    def __init__(self, error: openai.APIStatusError) -> None:
        super().__init__(str(error))
        self.error = error


class ImageUploads:
    """Uploads a message's images and builds its content parts."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client
        self._ids: dict[str, str] = {}  # sha256 of an image → its file id

    async def content(self, text: str, attachments: Sequence[Attachment]) -> str | list[dict[str, Any]]:
        """A message's content: its text, then its images as `image_file` parts."""
        images = [attachment for attachment in attachments if attachment.kind == IMAGE]
        if not images:
            return text
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
        for image in images:
            parts.append({"type": "image_file", "image_file": {"file_id": await self.upload(image)}})
        return parts

    async def upload(self, image: Attachment) -> str:
        """The image's file id, uploading it the first time."""
        digest = hashlib.sha256(image.data).hexdigest()
        if digest not in self._ids:
            try:
                uploaded = await self._client.files.create(file=(image.name, image.data, image.mimetype),
                                                           purpose="vision")
            except openai.NotFoundError as exc:
                if missing_api(exc):  # a server with threads and runs but no Files API: no images there
                    raise AttachmentsRefused(exc) from exc
                raise classify(exc) from exc
            except openai.BadRequestError as exc:
                if refuses_attachments(exc):
                    raise AttachmentsRefused(exc) from exc
                raise classify(exc) from exc
            except Exception as exc:  # noqa: BLE001 - every SDK failure is classified
                raise classify(exc) from exc
            if len(self._ids) >= MAX_UPLOADS_KEPT:
                self._ids.pop(next(iter(self._ids)))
            self._ids[digest] = uploaded.id
        return self._ids[digest]
