"""Shared pytest configuration: the emulator fixtures live beside each emulator, PostgreSQL's in postgres/."""

pytest_plugins = [
    "tests.emulators.slack.fixtures",
    "tests.emulators.openai.fixtures",
    "tests.postgres.fixtures",
]
