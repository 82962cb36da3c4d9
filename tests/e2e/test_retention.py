"""What the bridge keeps, end to end: BRIDGE_RETENTION_DAYS erases message text from the store once it
is that old, and keeps what exactly-once needs — a re-delivered event after the erasure is still a
duplicate. Time passes as it does for a real installation: the bridge is stopped and its store left as it
would be two days later; the store's maintenance runs when the bridge starts (and hourly after)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, settle
from tests.e2e.model_view import context_text, input_texts, turns
from tests.e2e.replies import replies, wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

TWO_DAYS = 2 * 86_400


def database(workdir: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(workdir / "bridge.sqlite3", isolation_level=None))


def two_days_pass(workdir: Path) -> None:
    """Everything the store holds happened two days earlier."""
    with database(workdir) as db:
        db.execute("UPDATE inbox SET received_at = received_at - ?, done_at = done_at - ?", (TWO_DAYS, TWO_DAYS))
        db.execute("UPDATE turns SET started_at = started_at - ?, finished_at = finished_at - ?",
                   (TWO_DAYS, TWO_DAYS))
        db.execute("UPDATE chat_messages SET created_at = created_at - ?", (TWO_DAYS,))


def stored_texts(workdir: Path) -> str:
    """Every text column of the store, as one string."""
    with database(workdir) as db:
        rows = [*db.execute("SELECT text, files FROM inbox"), *db.execute("SELECT input_texts, reply_text FROM turns"),
                *db.execute("SELECT message FROM chat_messages")]
    return repr(rows)


@pytest.mark.parametrize("backend", ["responses", "chat"])
def test_retention_erases_text_but_keeps_exactly_once(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                      tmp_path: Path, backend: str,
                                                      bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge = bridge_factory(env={"BRIDGE_RETENTION_DAYS": "1"})
    ts = slack.user_says("general", "alice", "the launch code is swordfish",
                         files=[{"id": "F1", "name": "plan.txt", "mimetype": "text/plain", "size": 10}])
    wait_replies(slack, "general")
    assert "swordfish" in stored_texts(tmp_path) and "plan.txt" in stored_texts(tmp_path)
    assert bridge.stop() == 0
    two_days_pass(tmp_path)
    bridge.start()
    assert "swordfish" not in stored_texts(tmp_path) and "plan.txt" not in stored_texts(tmp_path)
    with database(tmp_path) as db:
        assert db.execute("SELECT count(*) FROM inbox WHERE dedupe_key = ?", (ts,)).fetchone() == (1,)
        assert db.execute("SELECT state, messages FROM turns").fetchone()[0] == "delivered"
    # Slack delivers the old event again: it still dies at the unique key.
    event = next(e for e in slack.events("message") if e.get("ts") == ts)
    slack.deliver_event(dict(event))
    settle(1.0)
    assert len(turns(model_api)) == 1 and len(replies(slack, "general")) == 1
    slack.user_says("general", "alice", "what is the launch code?")
    wait_replies(slack, "general", 2)
    second = turns(model_api)[-1]
    assert input_texts(second) == ["[Alice] what is the launch code?"]
    if backend == "chat":  # our store is the conversation: past the retention the model no longer sees it
        assert "swordfish" not in context_text(second)
    else:  # the Conversation at OpenAI keeps it (see README, Security and privacy)
        assert "swordfish" in context_text(second)


def test_without_retention_text_is_kept(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path,
                                        bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge = bridge_factory(env={"ASSISTANT_BACKEND": "chat"})
    slack.user_says("general", "alice", "the launch code is swordfish")
    wait_replies(slack, "general")
    assert bridge.stop() == 0
    two_days_pass(tmp_path)
    bridge.start()
    assert "swordfish" in stored_texts(tmp_path)
