"""pytest fixtures: `slack` (a ready workspace) and `slack_factory` (build your own).

Both fail the test at teardown if the app broke Slack's published contract (`emu.violations`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .emulator import SlackEmulator

# (name, display_name, real_name): bob has no display name, so his real name must be used.
DEFAULT_USERS = (
    ("alice", "Alice", "Alice Liddell"),
    ("bob", "", "Bob Builder"),
    ("carol", "Carol", "Carol Danvers"),
)


def populate(emu: SlackEmulator) -> SlackEmulator:
    """Add alice, bob, carol and #general (everyone, the bot included)."""
    for name, display_name, real_name in DEFAULT_USERS:
        emu.add_user(name=name, display_name=display_name, real_name=real_name)
    emu.add_channel("general", members=[emu.users[name] for name, _, _ in DEFAULT_USERS])
    return emu


def assert_no_violations(emu: SlackEmulator) -> None:
    violations = emu.violations
    if violations:
        lines = "\n".join(f"  - {v}" for v in violations)
        pytest.fail(f"the Slack emulator recorded {len(violations)} spec violation(s):\n{lines}", pytrace=False)


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    """A started emulator (rate limits off) with alice, bob, carol and #general."""
    emu = SlackEmulator(rate_limits="off").start()
    try:
        populate(emu)
        yield emu
        assert_no_violations(emu)
    finally:
        emu.stop()


@pytest.fixture
def slack_factory() -> Iterator[Callable[..., SlackEmulator]]:
    """`slack_factory(populated=True, **SlackEmulator options)` -> a started emulator."""
    made: list[SlackEmulator] = []

    def make(populated: bool = True, **options: Any) -> SlackEmulator:
        options.setdefault("rate_limits", "off")
        emu = SlackEmulator(**options).start()
        made.append(emu)
        return populate(emu) if populated else emu

    try:
        yield make
        for emu in made:
            assert_no_violations(emu)
    finally:
        for emu in made:
            emu.stop()
