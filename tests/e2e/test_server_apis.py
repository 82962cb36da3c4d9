"""A model server with Chat Completions but no Conversations API (LiteLLM, vLLM, Ollama, llama.cpp …):
`check` says what to set, `auto` picks the API the server has, and no message is ever skipped for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, bridge_env, eventually, run_once
from tests.e2e.model_view import input_texts
from tests.e2e.replies import bot_messages, wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


@pytest.fixture
def chat_only(model_api: OpenAIEmulator) -> OpenAIEmulator:
    model_api.set_missing_apis("conversations", "responses", "assistants")
    return model_api


def test_check_names_the_fix(slack: SlackEmulator, chat_only: OpenAIEmulator, tmp_path: Path) -> None:
    env = bridge_env(slack, chat_only, tmp_path, {"ASSISTANT_BACKEND": "responses"})
    result = run_once(["check"], env, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[FAIL] model: the model server has no Conversations API" in result.stdout
    assert "set ASSISTANT_BACKEND=chat" in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_check_with_auto_passes_and_names_the_backend(slack: SlackEmulator, chat_only: OpenAIEmulator,
                                                      tmp_path: Path) -> None:
    result = run_once(["check"], bridge_env(slack, chat_only, tmp_path, {"ASSISTANT_BACKEND": "auto"}), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(ASSISTANT_BACKEND=auto chose chat)" in result.stdout
    assert "all checks passed" in result.stdout


def test_auto_is_the_default_and_answers_through_chat(slack: SlackEmulator, chat_only: OpenAIEmulator,
                                                      bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge = bridge_factory(env={"ASSISTANT_BACKEND": ""})  # unset: the default
    slack.user_says("general", "alice", "hello there")
    wait_replies(slack, "general")
    assert chat_only.requests("/v1/chat/completions") and not chat_only.conversations
    assert "ASSISTANT_BACKEND=auto: the model server does not offer the Conversations API; using chat" in bridge.log


def test_auto_uses_responses_where_the_server_has_it(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                     bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge_factory(env={"ASSISTANT_BACKEND": "auto"})
    slack.user_says("general", "alice", "hello there")
    wait_replies(slack, "general")
    assert model_api.conversations and not model_api.requests("/v1/chat/completions")


def test_a_missing_api_keeps_the_messages_until_the_settings_are_fixed(
        slack: SlackEmulator, chat_only: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess]) -> None:
    wrong = bridge_factory(env={"ASSISTANT_BACKEND": "responses"})
    slack.user_says("general", "alice", "first question")
    notice = eventually(lambda: [m for m in bot_messages(slack, "general") if "Sorry" in m["text"]],
                        message="the channel told once")
    text = notice[0]["text"]
    assert "does not offer the API this backend needs" in text and "ASSISTANT_BACKEND=chat" in text
    assert "rephrase" not in text and "skipped" not in text
    tried = len(chat_only.requests("/v1/conversations"))  # (the first attempt's, and a spare's at start)
    slack.user_says("general", "bob", "second question")  # waits too; the channel is not told again
    eventually(lambda: len(chat_only.requests("/v1/conversations")) > tried, message="the second attempt")
    assert len([m for m in bot_messages(slack, "general") if "Sorry" in m["text"]]) == 1
    assert wrong.stop() == 0
    bridge_factory(env={"ASSISTANT_BACKEND": "auto"})  # the admin fixes the settings: both are answered
    eventually(lambda: any("second question" in t for s in chat_only.model.seen for t in input_texts(s)),
               timeout=20, message="the waiting messages answered")
    answered = [t for s in chat_only.model.seen for t in input_texts(s)]
    assert answered == ["[Alice] first question", "[Bob Builder] second question"]


def test_auto_is_not_fooled_by_a_server_that_answers_200_everywhere(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                                     tmp_path: Path) -> None:
    model_api.set_missing_apis("conversations", "responses", "assistants", status=200)  # as LM Studio does
    result = run_once(["check"], bridge_env(slack, model_api, tmp_path, {"ASSISTANT_BACKEND": "auto"}), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(ASSISTANT_BACKEND=auto chose chat)" in result.stdout
