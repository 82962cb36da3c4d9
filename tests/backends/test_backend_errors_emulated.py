"""The error table through the emulated APIs, with the real SDK: a failure the stream reports with each code
of the table (and one nobody knows) means the same on the Responses and the Chat backend. (The
emulator's Assistants runs always fail with `server_error`; their codes: tests/unit/test_backend_errors.py.)"""

from __future__ import annotations

import pytest

from bot.backends.base import Backend, BackendError, FailureKind, TurnRequest
from bot.backends.errors import CODE_KINDS
from tests.emulators.openai import OpenAIEmulator

ROWS = [*CODE_KINDS.items(), ("something_new", FailureKind.TRANSIENT)]


async def test_every_code_means_the_same_on_every_backend(backend: Backend, openai_emu: OpenAIEmulator) -> None:
    openai_emu.model.reply_length = 40
    conversation = await backend.create_conversation("C1")
    for code, kind in ROWS:
        openai_emu.fail_stream_next(after_chars=5, code=code)
        request = TurnRequest(conversation_id=conversation, channel="C1", instructions="Be brief.",
                              messages=[f"[Alice] {code}?"])
        with pytest.raises(BackendError) as caught:
            async for _ in backend.stream_turn(request):
                pass
        assert (caught.value.code, caught.value.kind) == (code, kind), backend.name
