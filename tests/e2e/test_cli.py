"""The command line: settings errors, start-up failures, `check`, `--help`."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BridgeProcess, bridge_env, run_once
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run_once(["--help"], {"PATH": "/usr/bin:/bin"}, tmp_path)
    assert result.returncode == 0
    for command in ("run", "serve", "check", "--env-file", "--config"):
        assert command in result.stdout


def test_missing_settings_exit_2_naming_each(tmp_path: Path) -> None:
    result = run_once(["run"], {"PATH": "/usr/bin:/bin"}, tmp_path)
    assert result.returncode == 2
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "OPENAI_API_KEY"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n  - ") == 3  # one sentence per problem


def test_malformed_setting_exit_2(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path) -> None:
    env = bridge_env(slack, model_api, tmp_path, {"BRIDGE_REPLY_IN": "sideways"})
    result = run_once(["run"], env, tmp_path)
    assert result.returncode == 2
    assert "BRIDGE_REPLY_IN must be one of channel, thread, not 'sideways'" in result.stderr
    assert "Traceback" not in result.stderr and slack.bot_token not in result.stderr


def test_bad_config_file_exit_2(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "bridge.toml").write_text("openai_model = [unclosed\n")
    result = run_once(["run"], bridge_env(slack, model_api, tmp_path), tmp_path)
    assert result.returncode == 2
    assert "is not valid TOML" in result.stderr


def test_refused_bot_token_exit_2(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path) -> None:
    env = bridge_env(slack, model_api, tmp_path, {"SLACK_BOT_TOKEN": "xoxb-not-the-right-one"})
    result = run_once(["run"], env, tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN was refused by Slack (invalid_auth)" in result.stderr
    assert "xoxb-not-the-right-one" not in result.stderr and "Traceback" not in result.stderr


def test_check_passes(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path) -> None:
    result = run_once(["check"], bridge_env(slack, model_api, tmp_path), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok  ] slack: connected to" in result.stdout
    assert "[ok  ] socket mode" in result.stdout
    assert "[ok  ] model: model gpt-5.4-mini is available" in result.stdout
    assert "all checks passed" in result.stdout


def test_check_reports_a_refused_key_and_unknown_model(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                       tmp_path: Path) -> None:
    env = bridge_env(slack, model_api, tmp_path, {"OPENAI_API_KEY": "sk-wrong-key-123456"})
    result = run_once(["check"], env, tmp_path)
    assert result.returncode == 1
    assert "[FAIL] model: the model service rejected the API key (HTTP 401" in result.stdout
    assert "sk-wrong-key-123456" not in result.stdout + result.stderr
    env = bridge_env(slack, model_api, tmp_path, {"OPENAI_MODEL": "gpt-nonexistent"})
    result = run_once(["check"], env, tmp_path)
    assert result.returncode == 1
    assert "[FAIL] model: the configured model does not exist or is not available to this key (HTTP 404" \
        in result.stdout


def test_sigterm_exits_0_quickly_with_a_turn_in_flight(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                       bridge: BridgeProcess) -> None:
    model_api.model.ttft = 30.0  # a turn that will not finish before the grace period ends
    slack.user_says("general", "alice", "take your time")
    model_api.wait_for(lambda: model_api.requests("/v1/responses"), message="the turn to start")
    import time

    started = time.monotonic()
    assert bridge.stop(timeout=10.0) == 0
    assert time.monotonic() - started < 10.0


def test_unusable_database_exit_2(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path) -> None:
    env = bridge_env(slack, model_api, tmp_path, {"DATABASE_URL": "sqlite:////proc/no-such-dir/bridge.sqlite3"})
    result = run_once(["run"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "DATABASE_URL 'sqlite:////proc/no-such-dir/bridge.sqlite3' cannot be opened" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_process_on_the_same_database_exit_2(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                      bridge: BridgeProcess, tmp_path: Path) -> None:
    result = run_once(["run"], bridge_env(slack, model_api, tmp_path), tmp_path)
    assert result.returncode == 2
    assert "another assistant-bridge process is using" in result.stderr
