"""Secrets never leave the bridge: across a run full of failures — the model's 5xx, refusals and a
rejected key, Slack's failed and refused writes, budgets refusing messages, every slash command, `check`
against a bad key and a configuration error — no log line (at DEBUG, the most talkative level), no
error, no message, ephemeral note or command answer holds the bot token, the app token, the signing
secret or the API key. (tests/e2e/test_faults.py checks the JSON log of a run that went well.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import BridgeProcess, bridge_env, eventually, run_once
from tests.e2e.replies import wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


def secrets_of(slack: SlackEmulator, model_api: OpenAIEmulator) -> dict[str, str]:
    return {"bot token": slack.bot_token, "app token": slack.app_token, "signing secret": slack.signing_secret,
            "API key": model_api.api_key}


def everything_said(slack: SlackEmulator, commands: list) -> str:
    """Every text the bridge put in Slack: messages (every version written), ephemerals, command answers."""
    written = [str(call.args) for call in slack.calls() if call.method.startswith("chat.")]
    notes = [str(note) for note in slack.ephemeral()]
    answers = [str(handle.responses()) for handle in commands]
    return "\n".join([*written, *notes, *answers])


def test_no_secret_in_any_log_error_or_reply(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path,
                                             bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge = bridge_factory(env={"LOG_LEVEL": "DEBUG", "BRIDGE_USER_MESSAGES_PER_MINUTE": "3",
                                 "BRIDGE_MAX_ATTEMPTS": "2"})
    model_api.fail_next(500)  # a transient failure, told once, retried (a 5xx on a write is not resent blindly)
    slack.user_says("general", "alice", "first")
    wait_replies(slack, "general")
    model_api.fail_next(400, "invalid_request_error", "the request was refused")  # a refused message
    slack.user_says("general", "bob", "second")
    wait_replies(slack, "general", 2, timeout=30)
    model_api.set_api_key("sk-rotated-elsewhere")  # the bridge's key is refused: an account failure
    slack.user_says("general", "carol", "third")
    eventually(lambda: any("couldn't answer" in text for text in _texts(slack)), timeout=30,
               message="the account failure notice")
    model_api.set_api_key(model_api.api_key)
    slack.fail_next("chat.postMessage", "internal_error", times=2)  # Slack fails a write, then takes it
    slack.user_says("general", "carol", "fourth")
    for text in ("5", "6", "7", "8"):  # over the rate: refused, told ephemerally
        slack.user_says("general", "alice", text)
    eventually(lambda: slack.ephemeral(), message="a budget note")
    commands = [slack.slash_command("general", "alice", "/assistant", words)
                for words in ("status", "usage", "help", "bogus", "reset")]
    eventually(lambda: all(handle.responses() for handle in commands[:4]), message="the command answers")
    wait_replies(slack, "general", 4, timeout=30)
    assert bridge.stop() == 0
    env = bridge_env(slack, model_api, tmp_path, {"OPENAI_API_KEY": "sk-wrong-key-for-check"})
    checked = run_once(["check"], env, tmp_path)
    bad_setting = run_once(["run"], {**bridge_env(slack, model_api, tmp_path), "BRIDGE_USER_DAILY_TOKENS": "lots"},
                           tmp_path)
    assert checked.returncode != 0 and bad_setting.returncode == 2
    assert "BRIDGE_USER_DAILY_TOKENS" in bad_setting.stderr + bad_setting.stdout
    seen = "\n".join([bridge.log, everything_said(slack, commands), checked.stdout, checked.stderr,
                      bad_setting.stdout, bad_setting.stderr])
    assert "debug" in bridge.log.lower() or "DEBUG" in bridge.log  # the most talkative level really ran
    leaked = [name for name, secret in secrets_of(slack, model_api).items() if secret in seen]
    assert not leaked, f"leaked: {leaked}"
    assert "sk-wrong-key-for-check" not in checked.stdout + checked.stderr


def _texts(slack: SlackEmulator) -> list[str]:
    return [message.get("text", "") for message in slack.messages("general")]
