"""The bridge on PostgreSQL (DATABASE_URL=postgresql://…), against a real server the suite starts."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.accounting import Sent, tally
from tests.e2e.harness import BridgeProcess, bridge_env, eventually, free_port, run_once
from tests.e2e.model_view import context_text, in_use, turns
from tests.e2e.replies import replies, wait_replies
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
        assert in_use(model_api) == [first.conversation_id]  # one conversation, found again after the restart
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


@pytest.mark.parametrize("backend", ["responses", "chat"])
def test_a_used_sqlite_store_copied_to_postgresql_carries_on(postgres_url: str, slack: SlackEmulator,
                                                             model_api: OpenAIEmulator, tmp_path: Path,
                                                             bridge_factory: Callable[..., BridgeProcess],
                                                             backend: str) -> None:
    """The conversation, the journal's unfinished turn and its pending message all move to PostgreSQL."""
    on_sqlite = bridge_factory()
    slack.user_says("general", "alice", "remember 42")
    wait_replies(slack, "general")
    model_api.model.ttft = 4.0  # (the model finishes this answer after the bridge is gone)
    slack.user_says("general", "bob", "asked just before the move")
    model_api.wait_for(lambda: len(turns(model_api)) == 2, message="the second turn")
    refused = run_once(["copy-store", "--to", postgres_url], bridge_env(slack, model_api, tmp_path), tmp_path)
    assert refused.returncode == 2 and "stop the bridge" in refused.stderr  # the file is in use
    on_sqlite.kill()  # (the worst way to stop: mid-turn)
    model_api.model.ttft = 0.0
    copied = run_once(["copy-store", "--to", postgres_url], bridge_env(slack, model_api, tmp_path), tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert "conversations 1" in copied.stdout and "inbox 2" in copied.stdout
    bridge_factory(env={"DATABASE_URL": postgres_url})
    texts = wait_replies(slack, "general", 2, timeout=30)
    assert len(texts) == 2 and "asked just before the move" in texts[1]  # answered once, in its message
    slack.user_says("general", "carol", "and now?")
    wait_replies(slack, "general", 3)
    first, *_, last = turns(model_api)
    assert "[Alice] remember 42" in context_text(last) and "asked just before the move" in context_text(last)
    if backend == "responses":
        assert first.conversation_id == last.conversation_id and in_use(model_api) == [first.conversation_id]
    again = run_once(["copy-store", "--to", postgres_url], bridge_env(slack, model_api, tmp_path), tmp_path)
    assert again.returncode == 2 and "already holds rows" in again.stderr and len(again.stderr.splitlines()) == 1


def test_copy_store_refuses_what_it_cannot_copy(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                tmp_path: Path, postgres_url: str) -> None:
    env = bridge_env(slack, model_api, tmp_path)
    cases = {  # arguments → the sentence that names the problem
        ("--to", "sqlite:///other.sqlite3"): "--to must be a PostgreSQL URL",
        ("--from", "postgresql://a:secretpw@h/db", "--to", postgres_url): "--from must name a SQLite store",
        ("--to", postgres_url): "there is no SQLite store at",  # (the bridge never ran here)
        ("--from", f"sqlite:///{tmp_path}/x.sqlite3", "--to", "postgresql://u:secretpw@127.0.0.1:1/x"):
            "there is no SQLite store at",
    }
    for args, sentence in cases.items():
        result = run_once(["copy-store", *args], env, tmp_path)
        assert result.returncode == 2 and sentence in result.stderr, (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and "secretpw" not in result.stderr
    assert not list(tmp_path.glob("*.sqlite3"))  # a missing store is not created by looking for it
    sqlite3.connect(tmp_path / "empty.sqlite3").close()
    result = run_once(["copy-store", "--from", f"sqlite:///{tmp_path}/empty.sqlite3", "--to",
                       f"postgresql://u:secretpw@127.0.0.1:{free_port()}/x"], env, tmp_path)
    assert result.returncode == 2 and "postgresql://u:***@127.0.0.1:" in result.stderr, result.stderr
    assert "cannot be used" in result.stderr and "secretpw" not in result.stderr
    assert "copy-store" in run_once(["--help"], env, tmp_path).stdout


def conversations_overlap(model_api: OpenAIEmulator) -> list[str]:
    """Conversations that had two model requests in flight at once (whichever replica sent them). A request
    the service refused at once as `conversation_locked` ran nothing: the request of a replica killed
    mid-turn still runs at the service, and the replica taking over, which cannot know, is refused."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for r in model_api.requests("/v1/responses"):
        if r.method == "POST" and r.status == 200 and isinstance(r.json, dict) and r.json.get("conversation"):
            spans.setdefault(str(r.json["conversation"]), []).append((r.time_received, r.time_done or 1e18))
    return [conversation for conversation, times in spans.items()
            if any(end > later + 0.005 for (_, end), (later, _) in zip(sorted(times), sorted(times)[1:], strict=False))]


def test_two_replicas_share_the_channels_and_a_killed_one_loses_nothing(postgres_url: str, slack: SlackEmulator,
                                                                       model_api: OpenAIEmulator,
                                                                       tmp_path: Path) -> None:
    channels = ["general", "random", "dev"]
    for name in channels[1:]:
        slack.add_channel(name, members=list(slack.users.values()))
    replicas = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        replicas.append(BridgeProcess(slack, model_api, tmp_path / name,
                                      env={"DATABASE_URL": postgres_url, "ASSISTANT_BACKEND": "responses"}).start())
    sent: list[Sent] = []
    try:
        for round_ in range(2):  # Socket Mode spreads the events over both replicas' connections
            for channel in channels:
                sent.append(say(slack, channel, "alice", f"round {round_} in {channel}"))
        eventually(lambda: tally("-", slack, model_api, sent).answered == len(sent), timeout=30,
                   message="every message answered")
        model_api.model.ttft = 2.0
        before = len(model_api.requests("/v1/responses"))
        for channel in channels:
            sent.append(say(slack, channel, "carol", f"just before the crash in {channel}"))
        eventually(lambda: len(model_api.requests("/v1/responses")) > before, message="a turn in flight")
        replicas[0].kill()
        model_api.model.ttft = 0.0
        sent.append(say(slack, "general", "bob", "after the crash"))
        eventually(lambda: tally("-", slack, model_api, sent).answered == len(sent), timeout=40,
                   message="every message answered after the crash")
        row = tally("two replicas, one killed", slack, model_api, sent)
        assert (row.lost, row.duplicated, row.answered) == (0, 0, len(sent)), row
        assert not conversations_overlap(model_api)
        for channel in channels:
            expected = len([s for s in sent if s.channel == slack.channels[channel]])
            assert len(replies(slack, channel)) <= expected  # (answers may be grouped; never one twice)
    finally:
        for replica in replicas:
            if replica.alive:
                assert replica.stop() == 0, replica.log
    assert "Traceback" not in replicas[1].log, replicas[1].log


def say(slack: SlackEmulator, channel: str, user: str, text: str) -> Sent:
    names = {"alice": "Alice", "bob": "Bob Builder", "carol": "Carol"}
    return Sent(slack.channels.get(channel, channel), slack.user_says(channel, user, text), names[user], text)


def test_lost_database_sessions_are_survived(postgres_url: str, postgres_server, slack: SlackEmulator,
                                             model_api: OpenAIEmulator,
                                             bridge_factory: Callable[..., BridgeProcess]) -> None:
    """The server ends every session of the bridge (a failover, a restart, an idle timeout): the next
    message is still answered, and the log says nothing worse than a warning."""
    from tests.postgres.fixtures import admin_sql

    bridge = bridge_factory(env={"DATABASE_URL": postgres_url})
    slack.user_says("general", "alice", "before")
    wait_replies(slack, "general")
    database = postgres_url.rsplit("/", 1)[1]
    admin_sql(postgres_server, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
    slack.user_says("general", "alice", "after")
    texts = wait_replies(slack, "general", 2, timeout=30)
    assert "[Alice] after" in texts[1]
    assert bridge.alive


def test_a_replica_stopped_mid_turn_hands_its_channel_over(postgres_url: str, slack: SlackEmulator,
                                                           model_api: OpenAIEmulator, tmp_path: Path) -> None:
    """SIGTERM on one replica (a rolling deploy): it stops within the grace period, exit 0, and the other
    finishes the turn it left, once."""
    def replica(name: str) -> BridgeProcess:
        (tmp_path / name).mkdir()
        return BridgeProcess(slack, model_api, tmp_path / name,
                             env={"DATABASE_URL": postgres_url, "ASSISTANT_BACKEND": "responses"}).start()

    first = replica("a")
    model_api.model.ttft = 12.0  # longer than the grace period: the turn cannot finish before the exit
    sent = [say(slack, "general", "alice", "a slow question")]
    model_api.wait_for(lambda: model_api.requests("/v1/responses"), message="the first replica's turn")
    second = replica("b")  # (started after: the channel is the first one's)
    try:
        started = time.monotonic()
        assert first.stop() == 0, first.log
        assert time.monotonic() - started < 10
        model_api.model.ttft = 0.0
        sent.append(say(slack, "general", "bob", "and a quick one"))
        eventually(lambda: tally("-", slack, model_api, sent).answered == len(sent), timeout=40,
                   message="both answered by the replica left")
        row = tally("SIGTERM one of two replicas", slack, model_api, sent)
        assert (row.lost, row.duplicated) == (0, 0), row
        assert "outcome=answered" in second.log and "Traceback" not in first.log + second.log
    finally:
        assert second.stop() == 0, second.log
