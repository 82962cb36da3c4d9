"""The error table through the emulated APIs, with the real SDK: a failure the stream reports with each code
of the table (and one nobody knows) means the same on the Responses and the Chat backend. (The
emulator's Assistants runs always fail with `server_error`; their codes: tests/unit/test_backend_errors.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from bot.backends.base import Backend, BackendError, FailureKind, TurnRequest
from bot.backends.chat import ChatBackend
from bot.backends.errors import CODE_KINDS
from bot.backends.responses import ResponsesBackend
from bot.store import Store
from tests.emulators.openai import OpenAIEmulator

MODEL = "gpt-4.1-mini"
ROWS = [*CODE_KINDS.items(), ("something_new", FailureKind.TRANSIENT)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "db.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture(params=["responses", "chat"])
async def backend(request: pytest.FixtureRequest, openai_emu: OpenAIEmulator, store: Store) -> AsyncIterator[Backend]:
    client = openai.AsyncOpenAI(base_url=openai_emu.base_url, api_key=openai_emu.api_key, max_retries=0)
    made: Backend = (ResponsesBackend(client, model=MODEL) if request.param == "responses"
                     else ChatBackend(client, model=MODEL, history=store.chat))
    yield made
    await made.aclose()


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
