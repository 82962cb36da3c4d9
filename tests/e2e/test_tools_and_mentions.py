"""Tools and mention-only channels, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import REPO_ROOT, eventually, settle
from tests.e2e.model_view import input_texts
from tests.e2e.replies import replies, wait_replies, wait_text
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

NO_FUNCTION = {"status": "error", "message": "No function found"}
pytestmark = pytest.mark.parametrize("backend", ["responses", "chat", "assistants"])
EXAMPLE_TOOLS = {"BRIDGE_TOOLS_MODULE": "bot.conversation.example_tools"}
TEST_TOOLS = {"BRIDGE_TOOLS_MODULE": "tests.e2e.tools_for_tests", "PYTHONPATH": str(REPO_ROOT)}


def with_tools(request) -> bool:  # type: ignore[no-untyped-def]
    return any(tool.get("type") == "function" for tool in request.tools)


def function_names(seen) -> list[str]:  # type: ignore[no-untyped-def]
    """Names of the function tools offered in a request (Responses and Chat Completions shapes)."""
    return [tool.get("name") or tool["function"]["name"] for tool in seen.tools if tool.get("type") == "function"]


def final_reply(slack: SlackEmulator, model_api: OpenAIEmulator, requests: int) -> str:
    model_api.wait_for(lambda: len(model_api.model.seen) == requests, message=f"{requests} model requests")
    return wait_text(slack, "general", model_api.model.seen[-1].reply.text.strip())["text"]


def test_a_configured_tool_is_called_and_its_result_used(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                         bridge_factory) -> None:
    bridge_factory(env=EXAMPLE_TOOLS)
    model_api.model.enqueue(tool_calls=[{"name": "current_time", "arguments": {"time_zone": "Asia/Tokyo"}}])
    slack.user_says("general", "alice", "what time is it in Tokyo?")
    reply = final_reply(slack, model_api, 2)
    first, second = model_api.model.seen
    assert sorted(function_names(first)) == ["channel_members", "current_time"]
    (result,) = second.tool_results
    output = json.loads(result.output)
    assert output["time_zone"] == "Asia/Tokyo" and "time" in output
    assert "Asia/Tokyo" in reply  # the model's answer used the tool's result


def test_a_tool_that_reads_the_channel(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory) -> None:
    bridge_factory(env=EXAMPLE_TOOLS)
    model_api.model.enqueue(tool_calls=[{"name": "channel_members", "arguments": {}}])
    slack.user_says("general", "carol", "who is here?")
    final_reply(slack, model_api, 2)
    (result,) = model_api.model.seen[1].tool_results
    assert json.loads(result.output)["members"] == ["Alice", "Bob Builder", "Carol"]


def test_an_unknown_function_gets_the_sample_answer(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                    bridge_factory) -> None:
    bridge_factory(env=EXAMPLE_TOOLS)
    model_api.model.enqueue(tool_calls=[{"name": "launch_rockets", "arguments": {"count": 3}}])
    slack.user_says("general", "bob", "launch!")
    final_reply(slack, model_api, 2)
    (result,) = model_api.model.seen[1].tool_results
    assert json.loads(result.output) == NO_FUNCTION


def test_the_tool_loop_is_capped(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory,
                                 backend: str) -> None:
    bridge_factory(env={**EXAMPLE_TOOLS, "BRIDGE_MAX_TOOL_ROUNDS": "2"})
    for _ in range(3):  # the model would call tools a third time if it could
        model_api.model.enqueue(tool_calls=[{"name": "current_time", "arguments": {}}], match=with_tools)
    slack.user_says("general", "alice", "loop forever")
    if backend == "assistants":
        # A run keeps its tools: past the cap, calls are answered with "limit reached" instead.
        final_reply(slack, model_api, 4)
        (limited,) = model_api.model.seen[3].tool_results
        assert "limit reached" in limited.output
        return
    final_reply(slack, model_api, 3)
    assert [bool(function_names(s)) for s in model_api.model.seen] == [True, True, False]  # last: no tools
    settle(0.5)
    assert len(model_api.model.seen) == 3


def test_a_failing_or_slow_tool_is_reported_to_the_model(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                         bridge_factory) -> None:
    bridge_factory(env={**TEST_TOOLS, "BRIDGE_TOOL_TIMEOUT": "1.5"})
    model_api.model.enqueue(tool_calls=[{"name": "explode", "arguments": {}},
                                        {"name": "sleepy", "arguments": {"seconds": 4}}])
    slack.user_says("general", "alice", "try the tools")
    final_reply(slack, model_api, 2)
    outputs = {r.name: json.loads(r.output) for r in model_api.model.seen[1].tool_results}
    assert outputs["explode"] == {"status": "error", "message": "RuntimeError: the tool blew up: boom"}
    assert outputs["sleepy"] == {"status": "error", "message": "The tool did not finish within 1.5 seconds"}
    shown = [c.args.get("markdown_text", "") for c in slack.calls() if c.method in ("chat.postMessage", "chat.update")]
    assert any("Using explode and sleepy…" in text for text in shown), "the working indicator named the tools"


def test_unmentioned_messages_are_context_and_a_mention_is_answered(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory, backend: str) -> None:
    bridge = bridge_factory(env={"BRIDGE_RESPOND_TO": "mentions"})
    slack.user_says("general", "alice", "we are planning the offsite in Lisbon")
    eventually(lambda: "context channel=" in bridge.log, message="the first message taken as context")
    slack.user_says("general", "bob", "I will book the hotel")
    eventually(lambda: bridge.log.count("context channel=") == 2, message="the second message taken as context")
    settle(1.0)
    assert replies(slack, "general") == [] and model_api.model.seen == []
    slack.user_says("general", "carol", f"<@{slack.bot_user_id}> where is the offsite?")
    (reply,) = wait_replies(slack, "general")
    (seen,) = model_api.model.seen
    context = str(seen.context)
    assert "[Alice] we are planning the offsite in Lisbon" in context and "[Bob Builder] I will book" in context
    assert "where is the offsite?" in str(seen.input)
    if backend == "responses":  # (Chat Completions has no such distinction: it is all one message list)
        assert "[Alice] we are planning" not in str(seen.input)  # earlier messages: context, not this turn's input


def test_mentions_setting_per_channel_and_dms_always_answered(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                              bridge_factory, tmp_path: Path) -> None:
    quiet = slack.add_channel("quiet", members=[slack.users["alice"]])
    dm = slack.add_channel("dm-alice", is_im=True, members=[slack.users["alice"]])
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "bridge.toml").write_text(f'[channels.{quiet}]\nrespond_to = "mentions"\n')
    bridge_factory()
    slack.user_says(quiet, "alice", "just chatting")
    slack.user_says("general", "alice", "answer me here")
    slack.user_says(dm, "alice", "and here")
    wait_replies(slack, "general")
    wait_replies(slack, dm)
    settle(0.5)
    assert replies(slack, quiet) == []
    assert sorted(len(input_texts(s)) for s in model_api.model.seen) == [1, 1]  # one message each
