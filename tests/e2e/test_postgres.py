"""The bridge on PostgreSQL (DATABASE_URL=postgresql://…), against a real server the suite starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, bridge_env, free_port, run_once
from tests.e2e.model_view import context_text, turns
from tests.e2e.replies import wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


@pytest.mark.parametrize("backend", ["responses", "chat"])  # (chat keeps the conversation in the database)
def test_replies_and_a_restart_keeps_the_conversation(postgres_url: str, slack: SlackEmulator,
                                                      model_api: OpenAIEmulator,
                                                      bridge_factory: Callable[..., BridgeProcess],
                                                      backend: str) -> None:
    """(postgres_url first: the database outlives the bridge processes.)"""
    bridge = bridge_factory(env={"DATABASE_URL": postgres_url})
    slack.user_says("general", "alice", "remember 42")
    (reply,) = wait_replies(slack, "general")
    assert "[Alice] remember 42" in reply
    bridge.restart()
    slack.user_says("general", "bob", "what did Alice say?")
    wait_replies(slack, "general", 2)
    first, second = turns(model_api)
    assert "[Alice] remember 42" in context_text(second) and first.reply.text in context_text(second)
    if backend == "responses":
        assert first.conversation_id == second.conversation_id
        assert len(model_api.requests("/v1/conversations")) == 1  # created once, found again after the restart
    assert not list(bridge.workdir.glob("*.sqlite3"))  # nothing went to a SQLite file


def test_check_reports_the_database(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path,
                                    postgres_url: str) -> None:
    result = run_once(["check"], bridge_env(slack, model_api, tmp_path, {"DATABASE_URL": postgres_url}), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok  ] database: PostgreSQL " in result.stdout and " reachable, schema at version 0 of " in result.stdout
    nowhere = f"postgresql://bridge:secretpw@127.0.0.1:{free_port()}/bridge"
    result = run_once(["check"], bridge_env(slack, model_api, tmp_path, {"DATABASE_URL": nowhere}), tmp_path)
    assert result.returncode == 1
    assert "[FAIL] database: cannot use postgresql://bridge:***@127.0.0.1:" in result.stdout
    assert "secretpw" not in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr


def test_an_unreachable_server_exit_2(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path) -> None:
    nowhere = f"postgres://bridge:secretpw@127.0.0.1:{free_port()}/bridge"
    result = run_once(["run"], bridge_env(slack, model_api, tmp_path, {"DATABASE_URL": nowhere}), tmp_path)
    assert result.returncode == 2, result.stderr
    assert "DATABASE_URL 'postgres://bridge:***@127.0.0.1:" in result.stderr and "cannot be opened" in result.stderr
    assert "secretpw" not in result.stderr and "Traceback" not in result.stderr
