"""Settings: the one place that reads the environment, `.env` and `config/bridge.toml`.

Every setting has an environment variable. Non-secret behaviour settings can also be written in
`config/bridge.toml` under their lower-case name (`openai_model = "gpt-5.4-mini"`); the environment
wins. `load_settings()` validates everything at once and raises `ConfigError` with one sentence per
problem, so the command line can print them and exit with status 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from dotenv import dotenv_values

from bot.settings.access import (
    ACCESS_CHANNEL_KEYS,
    ACCESS_FILE_SETTINGS,
    DEFAULT_MAX_MESSAGE_CHARS,
    access_settings,
)
from bot.settings.budgets import (
    BUDGET_SETTINGS,
    MAX_MESSAGES_PER_MINUTE,
    MAX_TOKENS_PER_DAY,
    budget_settings,
    channel_budget,
)
from bot.settings.files import (
    DEFAULT_FILE_MAX_MB,
    DEFAULT_MESSAGE_FILES_MAX_MB,
    DEFAULT_TEXT_FILE_MAX_KB,
    SHARED_FILE_SETTINGS,
    file_settings,
)
from bot.settings.parsing import (
    ChannelSettings,
    channel_tables,
    check_choice,
    hosted_tools,
    is_http_url,
    number,
    parse_channels,
    port_number,
    read_config_file,
    redact_url,
)

DEFAULT_CONFIG_FILE = Path("config/bridge.toml")
DEFAULT_INSTRUCTIONS_FILE = Path("config/instructions.md")
DEFAULT_DATABASE_URL = "sqlite:///data/bridge.sqlite3"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_DATABASE_POOL_SIZE = 5  # PostgreSQL connections per replica: its turns and the intake at once
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_MODEL = "gpt-5.4-mini"
DEFAULT_COMMAND = "/assistant"
DEFAULT_PORT = 3000
DEFAULT_INSTRUCTIONS = "You are a helpful assistant shared by the members of a Slack channel."
DEFAULT_MAX_ATTEMPTS = 5  # tries of a message before it is reported and skipped
DEFAULT_TURN_TIMEOUT = 300.0  # seconds a model turn may take before it is abandoned as stuck

BACKENDS = ("auto", "responses", "chat", "assistants")
AVAILABLE_BACKENDS = BACKENDS
RESPOND_TO = ("all", "mentions")
REPLY_IN = ("channel", "thread")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

Mode = Literal["run", "serve", "check"]

# Settings that may be written in bridge.toml (secrets may not: they belong in the environment).
FILE_SETTINGS = frozenset({
    "ASSISTANT_BACKEND", "OPENAI_MODEL", "OPENAI_ASSISTANT_ID", "OPENAI_BASE_URL", "ASSISTANT_INSTRUCTIONS",
    "BRIDGE_CHANNELS", "BRIDGE_RESPOND_TO", "BRIDGE_REPLY_IN", "BRIDGE_COMMAND", "BRIDGE_TOOLS_MODULE",
    "DATABASE_URL", "SLACK_API_URL", "LOG_LEVEL", "LOG_FORMAT", "PORT", "METRICS_PORT", "BRIDGE_MAX_ATTEMPTS",
    "BRIDGE_TURN_TIMEOUT", "BRIDGE_MAX_TOOL_ROUNDS", "BRIDGE_TOOL_TIMEOUT", "BRIDGE_CONTEXT_TOKENS",
    "BRIDGE_LEASE_SECONDS",
    "DATABASE_POOL_SIZE", "BRIDGE_THREAD_FOLLOWUPS",
}) | frozenset(BUDGET_SETTINGS) | ACCESS_FILE_SETTINGS  # budgets and retention (bot/settings/budgets.py)
DEFAULT_MAX_TOOL_ROUNDS = 5
DEFAULT_CONTEXT_TOKENS = 8000  # the chat backend's prompt budget
DEFAULT_TOOL_TIMEOUT = 20.0
DEFAULT_LEASE_SECONDS = 15.0  # several replicas: a dead replica's channels are taken over within this
DEFAULT_THREAD_FOLLOWUPS = True  # mention-only channels: a reply in a thread the assistant answered in is answered
FILE_SETTINGS = FILE_SETTINGS | SHARED_FILE_SETTINGS  # files people share (bot/settings/files.py)


class ConfigError(Exception):
    """The settings are missing or malformed; `problems` holds one sentence per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """Validated, immutable settings, built once at start-up and passed to whoever needs them."""

    slack_bot_token: str = ""
    slack_app_token: str = ""
    slack_signing_secret: str = ""
    slack_api_url: str = DEFAULT_SLACK_API_URL
    openai_api_key: str = ""
    openai_base_url: str | None = None
    openai_model: str = DEFAULT_MODEL
    openai_model_explicit: bool = False  # OPENAI_MODEL was set (the assistants backend then overrides its model)
    openai_assistant_id: str | None = None
    assistant_backend: str = "auto"
    instructions: str = DEFAULT_INSTRUCTIONS
    instructions_source: str = "built-in default"
    channels: frozenset[str] = field(default_factory=frozenset)
    respond_to: str = "all"
    reply_in: str = "channel"
    command: str = DEFAULT_COMMAND
    tools_module: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = DEFAULT_DATABASE_POOL_SIZE
    log_level: str = "INFO"
    log_format: str = "text"
    port: int = DEFAULT_PORT
    metrics_port: int | None = None  # Socket Mode: serve /healthz, /readyz and /metrics on this port
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    turn_timeout: float = DEFAULT_TURN_TIMEOUT
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS
    tool_timeout: float = DEFAULT_TOOL_TIMEOUT
    context_tokens: int = DEFAULT_CONTEXT_TOKENS
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    # Budgets and retention (bot/settings/budgets.py); 0 = no limit / keep.
    user_daily_tokens: int = 0
    channel_daily_tokens: int = 0
    user_messages_per_minute: int = 0
    retention_days: int = 0
    thread_followups: bool = DEFAULT_THREAD_FOLLOWUPS
    vision: str = "auto"
    file_max_bytes: int = DEFAULT_FILE_MAX_MB * 1024 * 1024
    message_files_max_bytes: int = DEFAULT_MESSAGE_FILES_MAX_MB * 1024 * 1024
    text_file_max_bytes: int = DEFAULT_TEXT_FILE_MAX_KB * 1024
    channel_settings: ChannelSettings = ()  # [channels.C…] in bridge.toml
    hosted_tools: tuple[dict[str, Any], ...] = ()  # Responses hosted tools from bridge.toml
    config_file: str | None = None
    # Access (bot/settings/access.py): who may talk and reset, broadcast mentions, message length.
    allowed_users: frozenset[str] = field(default_factory=frozenset)
    blocked_users: frozenset[str] = field(default_factory=frozenset)
    admins: frozenset[str] = field(default_factory=frozenset)
    reset_by: str = "anyone"
    allow_broadcast_mentions: bool = False
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS

    def serves_channel(self, channel: str) -> bool:
        return not self.channels or channel in self.channels

    def for_channel(self, channel: str, key: str, default: Any) -> Any:
        """A per-channel setting (`[channels.C…] key = …` in bridge.toml), else `default`."""
        return dict(dict(self.channel_settings).get(channel, ())).get(key, default)

    def respond_to_for(self, channel: str) -> str:
        """`all` or `mentions` for this channel (its own setting in bridge.toml, else BRIDGE_RESPOND_TO)."""
        return self.for_channel(channel, "respond_to", self.respond_to)

    def thread_followups_for(self, channel: str) -> bool:
        """In a mention-only channel, is a reply in a thread the assistant answered in answered without a
        mention (`[channels.C…] thread_followups`, else BRIDGE_THREAD_FOLLOWUPS)?"""
        return bool(self.for_channel(channel, "thread_followups", self.thread_followups))

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file named by `database_url`, or None for another database."""
        return sqlite_path(self.database_url)


def sqlite_path(url: str) -> Path | None:
    """`sqlite:///relative/path` → Path('relative/path'); `sqlite:////abs` → Path('/abs')."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    return Path(url[len(prefix):])


def load_settings(
    mode: Mode,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
    config_file: str | Path | None = None,
) -> Settings:
    """Read and validate the settings `mode` needs; raise ConfigError listing every problem."""
    env = dict(os.environ if environ is None else environ)
    if env_file is not None and Path(env_file).is_file():
        for key, value in dotenv_values(env_file).items():
            if value is not None:
                env.setdefault(key, value)  # the real environment wins over .env

    problems: list[str] = []
    explicit = config_file is not None or "BRIDGE_CONFIG" in env
    config_path = Path(config_file or env.get("BRIDGE_CONFIG") or DEFAULT_CONFIG_FILE)
    file_values, tables = read_config_file(config_path, FILE_SETTINGS, explicit=explicit, problems=problems)

    def get(name: str, default: str = "") -> str:
        if name in env and env[name].strip() != "":
            return env[name].strip()
        if name in file_values:
            return file_values[name]
        return default

    values = _choices(get, problems)
    values |= _slack_settings(get, mode, problems)
    values |= _model_settings(get, values["assistant_backend"], problems)
    values |= _service_settings(get, problems)
    values |= _database(get, problems)
    values |= _limits(get, problems)
    values |= budget_settings(get, problems)
    values |= _threads(get, problems)
    values |= access_settings(get, problems)
    values |= file_settings(get, problems)
    values["channel_settings"] = channel_tables(tables.get("channels", {}), CHANNEL_KEYS, problems)
    values["hosted_tools"] = hosted_tools(tables.get("hosted_tools", {}), problems)
    if values["hosted_tools"] and values["assistant_backend"] not in ("auto", "responses"):
        problems.append("[hosted_tools] in the configuration file work only with ASSISTANT_BACKEND=responses.")
    values["instructions"], values["instructions_source"] = _instructions(env, file_values, problems)
    if problems:
        raise ConfigError(problems)
    return Settings(**values, config_file=str(config_path) if config_path.is_file() else None)


Lookup = Callable[..., str]  # get(NAME, default=""): the environment, then the configuration file


def _choices(get: Lookup, problems: list[str]) -> dict[str, Any]:
    """The settings that take one of a few words."""
    values = {"assistant_backend": get("ASSISTANT_BACKEND", "auto").lower(),
              "respond_to": get("BRIDGE_RESPOND_TO", "all").lower(),
              "reply_in": get("BRIDGE_REPLY_IN", "channel").lower(),
              "log_format": get("LOG_FORMAT", "text").lower(),
              "log_level": get("LOG_LEVEL", "INFO").upper()}
    check_choice(problems, "ASSISTANT_BACKEND", values["assistant_backend"], BACKENDS, AVAILABLE_BACKENDS)
    check_choice(problems, "BRIDGE_RESPOND_TO", values["respond_to"], RESPOND_TO, RESPOND_TO)
    check_choice(problems, "BRIDGE_REPLY_IN", values["reply_in"], REPLY_IN, REPLY_IN)
    check_choice(problems, "LOG_FORMAT", values["log_format"], LOG_FORMATS, LOG_FORMATS)
    check_choice(problems, "LOG_LEVEL", values["log_level"], LOG_LEVELS, LOG_LEVELS)
    return values


def _slack_settings(get: Lookup, mode: Mode, problems: list[str]) -> dict[str, Any]:
    """Slack's tokens (those `mode` needs) and its API address."""
    bot_token = get("SLACK_BOT_TOKEN")
    app_token = get("SLACK_APP_TOKEN")
    signing_secret = get("SLACK_SIGNING_SECRET")
    if not bot_token:
        problems.append("SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-…) from your "
                        "Slack app's OAuth & Permissions page.")
    elif not bot_token.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token starting with 'xoxb-'.")
    needs_app_token = mode == "run" or (mode == "check" and not signing_secret)
    if needs_app_token:
        if not app_token:
            problems.append("SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token (xapp-…) with "
                            "the connections:write scope, from your Slack app's Basic Information page.")
        elif not app_token.startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN must be an app-level token starting with 'xapp-'.")
    if mode == "serve" and not signing_secret:
        problems.append("SLACK_SIGNING_SECRET is not set: HTTP mode needs the Signing Secret from your "
                        "Slack app's Basic Information page.")
    slack_api_url = get("SLACK_API_URL", DEFAULT_SLACK_API_URL)
    if not is_http_url(slack_api_url):
        problems.append(f"SLACK_API_URL must be an http(s) URL, not {slack_api_url!r}.")
    elif not slack_api_url.endswith("/"):
        slack_api_url += "/"
    return {"slack_bot_token": bot_token, "slack_app_token": app_token, "slack_signing_secret": signing_secret,
            "slack_api_url": slack_api_url}


def _model_settings(get: Lookup, backend: str, problems: list[str]) -> dict[str, Any]:
    """Where the model is and which: endpoint, key, model, assistant."""
    base_url = get("OPENAI_BASE_URL") or None
    if base_url is not None and not is_http_url(base_url):
        problems.append(f"OPENAI_BASE_URL must be an http(s) URL, not {base_url!r}.")
    api_key = get("OPENAI_API_KEY")
    if not api_key and backend in ("auto", "chat") and base_url:
        api_key = "not-needed"  # local servers (Ollama, llama.cpp …) take no key; the SDK wants one
    if not api_key:
        problems.append("OPENAI_API_KEY is not set: create a key at https://platform.openai.com/api-keys "
                        "(or set any placeholder when OPENAI_BASE_URL points at a server without keys).")
    assistant_id = get("OPENAI_ASSISTANT_ID") or None
    if backend == "assistants" and not assistant_id:
        problems.append("OPENAI_ASSISTANT_ID is not set: ASSISTANT_BACKEND=assistants needs the id (asst_…) of the "
                        "assistant to run.")
    return {"openai_api_key": api_key, "openai_base_url": base_url, "openai_model": get("OPENAI_MODEL", DEFAULT_MODEL),
            "openai_model_explicit": bool(get("OPENAI_MODEL")), "openai_assistant_id": assistant_id}


def _service_settings(get: Lookup, problems: list[str]) -> dict[str, Any]:
    """The slash command, the channels served, the tools module and the HTTP port."""
    command = get("BRIDGE_COMMAND", DEFAULT_COMMAND)
    if not command.startswith("/") or len(command) < 2 or any(c.isspace() for c in command):
        problems.append(f"BRIDGE_COMMAND must be a slash command like '/assistant', not {command!r}.")
    port = port_number(problems, "PORT", get("PORT", str(DEFAULT_PORT))) or DEFAULT_PORT
    metrics_port = port_number(problems, "METRICS_PORT", get("METRICS_PORT")) if get("METRICS_PORT") else None
    return {"command": command, "channels": parse_channels(get("BRIDGE_CHANNELS"), problems),
            "tools_module": get("BRIDGE_TOOLS_MODULE") or None, "port": port, "metrics_port": metrics_port}


def _database(get: Lookup, problems: list[str]) -> dict[str, Any]:
    """DATABASE_URL (a SQLite file, or PostgreSQL for several replicas), the PostgreSQL pool's size and how
    soon a replica cut off from it loses its channels."""
    database_url = get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if database_url.startswith(POSTGRES_SCHEMES):
        try:
            urlparse(database_url).port  # noqa: B018 (a port that is not a number raises)
        except ValueError:
            problems.append(f"DATABASE_URL has a port that is not a number: {redact_url(database_url)!r}.")
    elif sqlite_path(database_url) is None:
        problems.append(f"DATABASE_URL must look like sqlite:///relative/path, sqlite:////absolute/path or "
                        f"postgresql://user:password@host:5432/database, not {redact_url(database_url)!r}.")
    pool_size = number(problems, "DATABASE_POOL_SIZE", get("DATABASE_POOL_SIZE"), DEFAULT_DATABASE_POOL_SIZE, 1, 100)
    return {"database_url": database_url, "database_pool_size": int(pool_size)}


def _limits(get: Lookup, problems: list[str]) -> dict[str, Any]:
    """Attempts, deadlines, tool rounds and the chat backend's prompt budget."""
    def limit(name: str, default: float, low: float, high: float) -> float:
        return number(problems, name, get(name), default, low, high)

    return {"max_attempts": int(limit("BRIDGE_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1, 100)),
            "turn_timeout": limit("BRIDGE_TURN_TIMEOUT", DEFAULT_TURN_TIMEOUT, 1, 3600),
            "max_tool_rounds": int(limit("BRIDGE_MAX_TOOL_ROUNDS", DEFAULT_MAX_TOOL_ROUNDS, 0, 50)),
            "tool_timeout": limit("BRIDGE_TOOL_TIMEOUT", DEFAULT_TOOL_TIMEOUT, 0.1, 600),
            "context_tokens": int(limit("BRIDGE_CONTEXT_TOKENS", DEFAULT_CONTEXT_TOKENS, 500, 2_000_000)),
            "lease_seconds": limit("BRIDGE_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, 3, 300)}


# --- threads ------------------------------------------------------------------------------------------
SWITCH_WORDS = {"true": True, "false": False}


def _threads(get: Lookup, problems: list[str]) -> dict[str, Any]:
    """BRIDGE_THREAD_FOLLOWUPS: true or false."""
    text = get("BRIDGE_THREAD_FOLLOWUPS", "true").lower()
    if text not in SWITCH_WORDS:
        problems.append(f"BRIDGE_THREAD_FOLLOWUPS must be true or false, not {text!r}.")
        return {"thread_followups": DEFAULT_THREAD_FOLLOWUPS}
    return {"thread_followups": SWITCH_WORDS[text]}


def _switch(value: Any) -> bool | None:
    """A per-channel true/false (a TOML boolean)."""
    return value if isinstance(value, bool) else None


def _respond_to(text: Any) -> str | None:
    return text if text in RESPOND_TO else None


# What a [channels.C…] table may hold: key → (parse: TOML value → setting or None if invalid, what it takes).
CHANNEL_KEYS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "respond_to": (_respond_to, '"all" or "mentions"'),
    # Budgets (bot/settings/budgets.py): over BRIDGE_USER_DAILY_TOKENS … for messages in this channel.
    "user_daily_tokens": (channel_budget(MAX_TOKENS_PER_DAY), "a whole number of tokens (0: no limit)"),
    "channel_daily_tokens": (channel_budget(MAX_TOKENS_PER_DAY), "a whole number of tokens (0: no limit)"),
    "user_messages_per_minute": (channel_budget(MAX_MESSAGES_PER_MINUTE), "a whole number (0: no limit)"),
    "thread_followups": (_switch, "true or false"),
    **ACCESS_CHANNEL_KEYS,
}


def _instructions(env: Mapping[str, str], file_values: Mapping[str, str], problems: list[str]) -> tuple[str, str]:
    text = env.get("ASSISTANT_INSTRUCTIONS", "").strip() or file_values.get("ASSISTANT_INSTRUCTIONS", "")
    if text:
        return text, "ASSISTANT_INSTRUCTIONS"
    path = DEFAULT_INSTRUCTIONS_FILE
    if path.is_file():
        try:
            content = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"The instructions file {str(path)!r} cannot be read: {exc}.")
            return DEFAULT_INSTRUCTIONS, "built-in default"
        if content:
            return content, str(path)
    return DEFAULT_INSTRUCTIONS, "built-in default"


