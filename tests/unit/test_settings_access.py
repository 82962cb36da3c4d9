"""The access settings: lists of users and groups, reset_by, broadcast mentions, message length —
global (environment or bridge.toml) and per channel."""

from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings
from bot.settings.access import DEFAULT_MAX_MESSAGE_CHARS

GOOD = {"SLACK_BOT_TOKEN": "xoxb-1-test", "SLACK_APP_TOKEN": "xapp-1-test", "OPENAI_API_KEY": "sk-test-key"}


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings("run", environ={**GOOD, **env})
    return caught.value.problems


def test_defaults_admit_everyone_and_defuse_broadcasts() -> None:
    settings = load_settings("run", environ=GOOD)
    assert settings.allowed_users == settings.blocked_users == settings.admins == frozenset()
    assert settings.reset_by == "anyone" and settings.allow_broadcast_mentions is False
    assert settings.max_message_chars == DEFAULT_MAX_MESSAGE_CHARS


def test_lists_of_users_and_groups_from_the_environment() -> None:
    settings = load_settings("run", environ={**GOOD, "BRIDGE_ALLOWED_USERS": "U0AAA, W0BBB S0CCC",
                                             "BRIDGE_BLOCKED_USERS": "U0DDD", "BRIDGE_ADMINS": "S0EEE",
                                             "BRIDGE_RESET_BY": "Admins", "BRIDGE_ALLOW_BROADCAST_MENTIONS": "true",
                                             "BRIDGE_MAX_MESSAGE_CHARS": "500"})
    assert settings.allowed_users == {"U0AAA", "W0BBB", "S0CCC"}
    assert settings.blocked_users == {"U0DDD"} and settings.admins == {"S0EEE"}
    assert settings.reset_by == "admins" and settings.allow_broadcast_mentions
    assert settings.max_message_chars == 500


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("BRIDGE_ALLOWED_USERS", "alice", "BRIDGE_ALLOWED_USERS must be a comma-separated list of user IDs"),
        ("BRIDGE_BLOCKED_USERS", "U0AAA,@bob", "BRIDGE_BLOCKED_USERS must be"),
        ("BRIDGE_ADMINS", "C0123", "BRIDGE_ADMINS must be"),
        ("BRIDGE_RESET_BY", "owners", "BRIDGE_RESET_BY must be one of anyone, admins"),
        ("BRIDGE_ALLOW_BROADCAST_MENTIONS", "yes", "BRIDGE_ALLOW_BROADCAST_MENTIONS must be true or false"),
        ("BRIDGE_MAX_MESSAGE_CHARS", "10", "BRIDGE_MAX_MESSAGE_CHARS must be a whole number from 100 to 40000"),
        ("BRIDGE_MAX_MESSAGE_CHARS", "lots", "BRIDGE_MAX_MESSAGE_CHARS must be"),
    ],
)
def test_a_bad_value_is_named_in_one_sentence(name: str, value: str, says: str) -> None:
    (found,) = problems({name: value})
    assert found.startswith(says)


def test_per_channel_lists_and_reset_by_in_the_file(in_empty_dir: Path) -> None:
    (in_empty_dir / "config").mkdir()
    (in_empty_dir / "config" / "bridge.toml").write_text(
        'bridge_allowed_users = ["U0AAA", "S0GRP"]\nbridge_reset_by = "admins"\n'
        '[channels.C0OPS]\nallowed_users = ["U0BBB"]\nblocked_users = ["S0BAD"]\nreset_by = "anyone"\n')
    settings = load_settings("run", environ=GOOD)
    assert settings.allowed_users == {"U0AAA", "S0GRP"} and settings.reset_by == "admins"
    assert settings.for_channel("C0OPS", "allowed_users", None) == {"U0BBB"}
    assert settings.for_channel("C0OPS", "blocked_users", None) == {"S0BAD"}
    assert settings.for_channel("C0OPS", "reset_by", None) == "anyone"


@pytest.mark.parametrize(("table", "says"), [
    ('allowed_users = ["bob"]', "[channels.C0OPS] allowed_users must be a list of user or user-group IDs"),
    ("blocked_users = [1]", "[channels.C0OPS] blocked_users must be"),
    ('reset_by = "owners"', '[channels.C0OPS] reset_by must be "anyone" or "admins"'),
])
def test_a_bad_channel_value_is_named(in_empty_dir: Path, table: str, says: str) -> None:
    (in_empty_dir / "config").mkdir()
    (in_empty_dir / "config" / "bridge.toml").write_text(f"[channels.C0OPS]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings("run", environ=GOOD)
    assert caught.value.problems[0].startswith(says)
