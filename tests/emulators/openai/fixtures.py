"""pytest fixtures: `openai_emu` (a started emulator, zero-latency model) and `openai_factory`.

At teardown every emulator must have seen only spec-valid requests: a violation fails the test that
caused it, with the list of what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .emulator import OpenAIEmulator


def _assert_clean(emu: OpenAIEmulator) -> None:
    problems = emu.violations
    assert not problems, "the OpenAI emulator saw requests that break the spec or the platform's rules:\n  " \
        + "\n  ".join(problems)


@pytest.fixture
def openai_factory() -> Iterator[Callable[..., OpenAIEmulator]]:
    """Build and start emulators with custom options: `openai_factory(api_key=…, models=(…), …)`."""
    started: list[OpenAIEmulator] = []

    def make(**options: Any) -> OpenAIEmulator:
        emu = OpenAIEmulator(**options).start()
        started.append(emu)
        return emu

    yield make
    try:
        for emu in started:
            _assert_clean(emu)
    finally:
        for emu in started:
            emu.stop()


@pytest.fixture
def openai_emu(openai_factory: Callable[..., OpenAIEmulator]) -> OpenAIEmulator:
    """A started emulator with a zero-latency model and the default test key `sk-test-key`."""
    return openai_factory()
