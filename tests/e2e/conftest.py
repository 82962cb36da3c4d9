"""End-to-end fixtures: the emulators plus the real `assistant-bridge` process."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.accounting import Tally, table
from tests.e2e.harness import MODEL, BridgeProcess
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


@pytest.fixture
def model_api(openai_factory: Callable[..., OpenAIEmulator]) -> OpenAIEmulator:
    """The OpenAI emulator, serving the model the bridge is configured with."""
    return openai_factory(models=(MODEL, "gpt-5.4"))


def create_assistant(model_api: OpenAIEmulator) -> str:
    """An assistant on the emulator for the legacy `assistants` backend (its own instructions kept)."""
    with openai.OpenAI(base_url=model_api.base_url, api_key=model_api.api_key) as client, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks Assistants deprecated
        return client.beta.assistants.create(model=MODEL, instructions="You are Sam, the team's helper.").id


@pytest.fixture
def backend() -> str:
    """The model API the bridge uses (ASSISTANT_BACKEND); tests parametrise it to run on each."""
    return "responses"


@pytest.fixture
def bridge_factory(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path,
                   backend: str) -> Iterator[Callable[..., BridgeProcess]]:
    """`bridge_factory(env={...}, start=True)`: bridge processes sharing one work dir (so one database)."""
    made: list[BridgeProcess] = []

    assistant = {"OPENAI_ASSISTANT_ID": create_assistant(model_api)} if backend == "assistants" else {}

    def make(*, env: dict[str, str] | None = None, start: bool = True, **kwargs: Any) -> BridgeProcess:
        env = {"ASSISTANT_BACKEND": backend, **assistant, **(env or {})}
        process = BridgeProcess(kwargs.pop("slack", slack), kwargs.pop("openai", model_api), tmp_path, env=env,
                                **kwargs)
        made.append(process)
        return process.start() if start else process

    yield make
    for process in made:
        if process.alive:
            assert process.stop() == 0, process.log
    for process in made:
        assert "Traceback" not in process.log, process.log


FAULT_ROWS: list[Tally] = []


@pytest.fixture
def fault_rows() -> list[Tally]:
    """Rows of the fault-injection table, printed at the end of the run."""
    return FAULT_ROWS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FAULT_ROWS:
        terminalreporter.section("fault injection: where every message went")
        terminalreporter.write_line(table(FAULT_ROWS))


@pytest.fixture
def bridge(bridge_factory: Callable[..., BridgeProcess]) -> BridgeProcess:
    return bridge_factory()
