"""Fixtures of the backend tests: a store of their own, and each backend that speaks to the OpenAI
emulator through the real SDK (a test module's own `backend` fixture takes the place of this one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from bot.backends.base import Backend
from bot.backends.chat import ChatBackend
from bot.backends.responses import ResponsesBackend
from bot.store import Store
from tests.emulators.openai import OpenAIEmulator

MODEL = "gpt-4.1-mini"


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
