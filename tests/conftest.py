"""Shared pytest configuration: the emulator fixtures live beside each emulator."""

pytest_plugins = [
    "tests.emulators.slack.fixtures",
    "tests.emulators.openai.fixtures",
]
