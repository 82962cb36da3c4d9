from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings

GOOD = {"SLACK_BOT_TOKEN": "xoxb-1-test", "SLACK_APP_TOKEN": "xapp-1-test", "OPENAI_API_KEY": "sk-test-key"}


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(env: dict[str, str], mode: str = "run", **kwargs):
    return load_settings(mode, environ=env, **kwargs)


def problems(env: dict[str, str], mode: str = "run", **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(env, mode, **kwargs)
    return caught.value.problems


def test_defaults() -> None:
    settings = load(GOOD)
    assert settings.assistant_backend == "auto"  # Responses + Conversations where the server has them, else Chat
    assert settings.openai_model == "gpt-5.4-mini"
    assert settings.command == "/assistant"
    assert settings.database_url == "sqlite:///data/bridge.sqlite3"
    assert settings.sqlite_path == Path("data/bridge.sqlite3")
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.serves_channel("CANY")


def test_every_missing_secret_named_once() -> None:
    found = problems({})
    assert len(found) == 3
    assert [p.split()[0] for p in found] == ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "OPENAI_API_KEY"]


def test_serve_needs_signing_secret_not_app_token() -> None:
    env = {k: v for k, v in GOOD.items() if k != "SLACK_APP_TOKEN"}
    found = problems(env, "serve")
    assert len(found) == 1 and found[0].startswith("SLACK_SIGNING_SECRET")
    assert load({**env, "SLACK_SIGNING_SECRET": "s"}, "serve").slack_signing_secret == "s"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("SLACK_BOT_TOKEN", "xapp-wrong", "SLACK_BOT_TOKEN must be a bot token"),
        ("SLACK_APP_TOKEN", "xoxb-wrong", "SLACK_APP_TOKEN must be an app-level token"),
        ("ASSISTANT_BACKEND", "gemini", "ASSISTANT_BACKEND must be one of auto, responses, chat, assistants"),
        ("BRIDGE_REPLY_IN", "dm", "BRIDGE_REPLY_IN must be one of channel, thread"),
        ("BRIDGE_CHANNELS", "general,C123", "BRIDGE_CHANNELS must be a comma-separated list of channel IDs"),
        ("BRIDGE_COMMAND", "assistant", "BRIDGE_COMMAND must be a slash command"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL must look like sqlite:///"),
        ("DATABASE_URL", "postgresql://u:secretpw@h:port/db", "DATABASE_URL has a port that is not a number"),
        ("DATABASE_POOL_SIZE", "0", "DATABASE_POOL_SIZE"),
        ("BRIDGE_LEASE_SECONDS", "1", "BRIDGE_LEASE_SECONDS"),
        ("SLACK_API_URL", "slack.example", "SLACK_API_URL must be an http(s) URL"),
        ("OPENAI_BASE_URL", "localhost:11434", "OPENAI_BASE_URL must be an http(s) URL"),
        ("PORT", "http", "PORT must be a number"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of text, json"),
    ],
)
def test_malformed_setting_named(name: str, value: str, needle: str) -> None:
    found = problems({**GOOD, name: value})
    assert len(found) == 1
    assert needle in found[0]
    assert "secretpw" not in found[0]


@pytest.mark.parametrize("url", ["postgresql://bridge:pw@db.internal:5432/bridge", "postgres://db/bridge"])
def test_postgresql_database_url_accepted(url: str) -> None:
    settings = load({**GOOD, "DATABASE_URL": url, "DATABASE_POOL_SIZE": "12"})
    assert (settings.database_url, settings.sqlite_path, settings.database_pool_size) == (url, None, 12)
    assert load(GOOD).database_pool_size == 5


def test_channels_allowlist_parsed() -> None:
    settings = load({**GOOD, "BRIDGE_CHANNELS": "C111, G222 ,D333"})
    assert settings.channels == {"C111", "G222", "D333"}
    assert settings.serves_channel("C111") and not settings.serves_channel("C999")


def test_toml_file_and_environment_wins(in_empty_dir: Path) -> None:
    (in_empty_dir / "config").mkdir()
    (in_empty_dir / "config" / "bridge.toml").write_text(
        'openai_model = "from-file"\nbridge_command = "/helper"\nbridge_channels = ["C1", "C2"]\n')
    settings = load({**GOOD, "OPENAI_MODEL": "from-env"})
    assert settings.openai_model == "from-env"
    assert settings.command == "/helper"
    assert settings.channels == {"C1", "C2"}


def test_toml_rejects_secrets_and_bad_syntax(in_empty_dir: Path) -> None:
    path = in_empty_dir / "b.toml"
    path.write_text('slack_bot_token = "xoxb-oops"\n')
    found = problems(GOOD, config_file=path)
    assert "unknown setting 'slack_bot_token'" in found[0]
    path.write_text("openai_model = \n")
    assert "not valid TOML" in problems(GOOD, config_file=path)[0]
    assert "does not exist" in problems(GOOD, config_file=in_empty_dir / "missing.toml")[0]


def test_dotenv_fills_in_and_environment_wins(in_empty_dir: Path) -> None:
    (in_empty_dir / ".env").write_text("OPENAI_MODEL=from-dotenv\nOPENAI_API_KEY=sk-dotenv\n")
    env = {k: v for k, v in GOOD.items() if k != "OPENAI_API_KEY"}
    settings = load({**env, "OPENAI_MODEL": "from-env"})
    assert settings.openai_model == "from-env"
    assert settings.openai_api_key == "sk-dotenv"


def test_instructions_from_env_then_file_then_default(in_empty_dir: Path) -> None:
    assert load(GOOD).instructions_source == "built-in default"
    (in_empty_dir / "config").mkdir()
    (in_empty_dir / "config" / "instructions.md").write_text("You are Sam.\n")
    settings = load(GOOD)
    assert settings.instructions == "You are Sam."
    assert load({**GOOD, "ASSISTANT_INSTRUCTIONS": "Be brief."}).instructions == "Be brief."


def test_assistants_backend_needs_an_assistant_id() -> None:
    found = problems({**GOOD, "ASSISTANT_BACKEND": "assistants"})
    assert len(found) == 1 and found[0].startswith("OPENAI_ASSISTANT_ID is not set")
    settings = load({**GOOD, "ASSISTANT_BACKEND": "assistants", "OPENAI_ASSISTANT_ID": "asst_1"})
    assert settings.openai_assistant_id == "asst_1" and not settings.openai_model_explicit
    assert load({**GOOD, "OPENAI_MODEL": "gpt-x"}).openai_model_explicit


def test_chat_backend_with_a_local_server_needs_no_key() -> None:
    env = {k: v for k, v in GOOD.items() if k != "OPENAI_API_KEY"}
    settings = load({**env, "ASSISTANT_BACKEND": "chat", "OPENAI_BASE_URL": "http://localhost:11434/v1"})
    assert settings.openai_api_key == "not-needed"
    assert problems(env)[0].startswith("OPENAI_API_KEY is not set")


def test_file_settings_defaults_and_units() -> None:
    settings = load(GOOD)
    assert (settings.vision, settings.file_max_bytes, settings.message_files_max_bytes,
            settings.text_file_max_bytes) == ("auto", 10 * 1024 * 1024, 20 * 1024 * 1024, 100 * 1024)
    tuned = load({**GOOD, "BRIDGE_VISION": "OFF", "BRIDGE_FILE_MAX_MB": "2.5", "BRIDGE_TEXT_FILE_MAX_KB": "8"})
    assert (tuned.vision, tuned.file_max_bytes, tuned.text_file_max_bytes) == ("off", 2621440, 8192)


@pytest.mark.parametrize(("name", "value", "needle"), [
    ("BRIDGE_VISION", "maybe", "BRIDGE_VISION must be one of auto, on, off"),
    ("BRIDGE_FILE_MAX_MB", "ten", "BRIDGE_FILE_MAX_MB must be a number"),
    ("BRIDGE_MESSAGE_FILES_MAX_MB", "0", "BRIDGE_MESSAGE_FILES_MAX_MB must be a number"),
    ("BRIDGE_TEXT_FILE_MAX_KB", "-1", "BRIDGE_TEXT_FILE_MAX_KB must be a number"),
])
def test_malformed_file_setting_named(name: str, value: str, needle: str) -> None:
    (found,) = problems({**GOOD, name: value})
    assert needle in found
