"""What the bridge may spend, end to end: each budget reached (the message refused, its author told
ephemerally, the rest of the channel unaffected) and renewed, and `/assistant usage`.

"Today" moves the way it does for a real installation: the bridge is stopped, and the store is left as it
would be a day (or a minute) later — its usage rows dated yesterday, its messages received earlier —
then the bridge starts again and reads it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, eventually, settle
from tests.e2e.model_view import context_text, input_texts, turns
from tests.e2e.replies import wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


def database(workdir: Path) -> contextlib.closing[sqlite3.Connection]:
    """The bridge's store, opened beside it (as an operator would, with the sqlite3 shell)."""
    return contextlib.closing(sqlite3.connect(workdir / "bridge.sqlite3", isolation_level=None))


def state_of(workdir: Path, text: str) -> str:
    with database(workdir) as db:
        (state,) = db.execute("SELECT state FROM inbox WHERE text = ?", (text,)).fetchone()
    return state


def a_day_passes(workdir: Path) -> None:
    """The bridge is stopped over midnight (UTC): today's usage becomes yesterday's."""
    with database(workdir) as db:
        db.execute("UPDATE token_usage SET day = ?", ((dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1))
                                                      .isoformat(),))


def notes_to(slack: SlackEmulator, user: str) -> list[str]:
    return [e["text"] for e in slack.ephemeral() if e["user"] == slack.users[user]]


@pytest.mark.parametrize("backend", ["responses", "chat", "assistants"])
def test_user_budget_reached_and_renewed(slack: SlackEmulator, model_api: OpenAIEmulator, tmp_path: Path,
                                         bridge_factory: Callable[..., BridgeProcess], backend: str) -> None:
    # Counted from the usage each backend reports: were it not reported, the second message would pass.
    bridge = bridge_factory(env={"BRIDGE_USER_DAILY_TOKENS": "1"})
    slack.user_says("general", "alice", "first question")
    wait_replies(slack, "general")
    slack.user_says("general", "alice", "second question")
    (note,) = eventually(lambda: notes_to(slack, "alice"), message="alice's note")
    assert "you've used your 1 tokens for today" in note and "renews at 00:00 UTC" in note
    slack.user_says("general", "carol", "carol's question")  # the rest of the channel is unaffected
    wait_replies(slack, "general", 2)
    assert [input_texts(seen) for seen in turns(model_api)] == [["[Alice] first question"],
                                                                 ["[Carol] carol's question"]]
    assert state_of(tmp_path, "second question") == "refused"
    assert notes_to(slack, "carol") == []
    assert bridge.stop() == 0
    a_day_passes(tmp_path)
    bridge.start()
    slack.user_says("general", "alice", "third question")
    wait_replies(slack, "general", 3)
    third = turns(model_api)[-1]
    assert input_texts(third) == ["[Alice] third question"]
    assert "second question" not in context_text(third)  # a refused message never enters the conversation
    assert len(notes_to(slack, "alice")) == 1


def test_channel_budget_per_channel_reached_and_renewed(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                        tmp_path: Path,
                                                        bridge_factory: Callable[..., BridgeProcess]) -> None:
    general = slack.channels["general"]
    slack.add_channel("random", members=[slack.users["alice"], slack.users["bob"]])
    (tmp_path / "bridge.toml").write_text(f'[channels.{general}]\nchannel_daily_tokens = 1\n')
    bridge = bridge_factory(env={"BRIDGE_CONFIG": str(tmp_path / "bridge.toml")})
    slack.user_says("general", "alice", "general one")
    wait_replies(slack, "general")
    slack.user_says("general", "bob", "general two")
    (note,) = eventually(lambda: notes_to(slack, "bob"), message="bob's note")
    assert "this channel has used its 1 tokens for today" in note
    slack.user_says("random", "bob", "random one")  # another channel has its own (here: no) budget
    wait_replies(slack, "random")
    assert [input_texts(seen) for seen in turns(model_api)] == [["[Alice] general one"], ["[Bob Builder] random one"]]
    assert state_of(tmp_path, "general two") == "refused"
    assert bridge.stop() == 0
    a_day_passes(tmp_path)
    bridge.start()
    slack.user_says("general", "bob", "general three")
    wait_replies(slack, "general", 2)
    assert input_texts(turns(model_api)[-1]) == ["[Bob Builder] general three"]


def test_messages_per_minute_reached_and_renewed(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                 tmp_path: Path,
                                                 bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge = bridge_factory(env={"BRIDGE_USER_MESSAGES_PER_MINUTE": "2"})
    for text in ("m1", "m2", "m3"):
        slack.user_says("general", "alice", text)
    (note,) = eventually(lambda: notes_to(slack, "alice"), message="alice's note")
    assert "more than 2 messages in a minute" in note and "renews in " in note and " s;" in note
    slack.user_says("general", "bob", "bob too")
    eventually(lambda: "[Bob Builder] bob too" in sum((input_texts(s) for s in turns(model_api)), []),
               message="bob's turn")
    settle(1.0)
    seen = sum((input_texts(s) for s in turns(model_api)), [])
    assert sorted(seen) == ["[Alice] m1", "[Alice] m2", "[Bob Builder] bob too"]
    assert state_of(tmp_path, "m3") == "refused"
    assert bridge.stop() == 0
    with database(tmp_path) as db:  # a minute passes while the bridge is stopped
        db.execute("UPDATE inbox SET received_at = received_at - 61")
    bridge.start()
    slack.user_says("general", "alice", "m4")
    eventually(lambda: input_texts(turns(model_api)[-1]) == ["[Alice] m4"], message="m4's turn")
    assert len(notes_to(slack, "alice")) == 1


def test_usage_command_shows_today_against_the_budgets(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                       bridge_factory: Callable[..., BridgeProcess]) -> None:
    model_api.model.usage = {"input_tokens": 40, "output_tokens": 10}  # 50 tokens a turn
    bridge_factory(env={"BRIDGE_USER_DAILY_TOKENS": "1000", "BRIDGE_CHANNEL_DAILY_TOKENS": "5000",
                        "BRIDGE_USER_MESSAGES_PER_MINUTE": "30"})
    model_api.model.ttft = 1.0  # the first turn is still running when the next two arrive: one turn for both
    slack.user_says("general", "alice", "one")
    eventually(lambda: turns(model_api) or model_api.requests("/v1/responses"), message="first turn")
    slack.user_says("general", "alice", "a" * 30)
    slack.user_says("general", "bob", "b" * 10)
    eventually(lambda: len(turns(model_api)) == 2, timeout=20, message="two turns")
    wait_replies(slack, "general", 2, timeout=20)
    assert input_texts(turns(model_api)[1]) == ["[Alice] " + "a" * 30, "[Bob Builder] " + "b" * 10]

    def usage(user: str) -> str:
        handle = slack.slash_command("general", user, "/assistant", "usage")
        return eventually(lambda: handle.responses(), message="the usage answer")[0]["text"]

    # 100 tokens for the channel; alice 50 + 30/40 of 50 (37), bob 10/40 of 50 plus the rounding (13).
    alice = usage("alice")
    assert "*This channel:* 100 of 5,000 tokens" in alice and "*You:* 87 of 1,000 tokens" in alice
    assert "at most 30 a minute per person" in alice and "renew at 00:00 UTC" in alice
    bob = usage("bob")
    assert "*You:* 13 of 1,000 tokens" in bob
    carol = usage("carol")
    assert "*You:* 0 of 1,000 tokens" in carol
    handle = slack.slash_command("general", "alice", "/assistant", "help")
    assert "/assistant usage" in eventually(lambda: handle.responses(), message="help")[0]["text"]


def test_usage_command_without_budgets(slack: SlackEmulator, model_api: OpenAIEmulator,
                                       bridge: BridgeProcess) -> None:
    slack.user_says("general", "alice", "hello")
    wait_replies(slack, "general")
    handle = slack.slash_command("general", "alice", "/assistant", "usage")
    text = eventually(lambda: handle.responses(), message="the usage answer")[0]["text"]
    assert "tokens (no limit)" in text and "*Messages:* no limit" in text
    assert "*This channel:* 0 tokens" not in text  # the turn was counted even without a budget


def test_a_budget_that_runs_out_while_messages_wait_refuses_them(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                                 tmp_path: Path,
                                                                 bridge_factory: Callable[..., BridgeProcess]) -> None:
    # Checked when a turn takes the waiting messages, not on arrival: "two" arrived while alice still
    # had budget, but the answer to "one" used it up before "two"'s turn.
    bridge_factory(env={"BRIDGE_USER_DAILY_TOKENS": "1"})
    model_api.model.ttft = 1.0
    slack.user_says("general", "alice", "one")
    eventually(lambda: turns(model_api) or model_api.requests("/v1/responses"), message="first turn")
    slack.user_says("general", "alice", "two")
    slack.user_says("general", "bob", "bob's")
    eventually(lambda: notes_to(slack, "alice"), message="alice's note")
    eventually(lambda: len(turns(model_api)) == 2, timeout=20, message="bob's turn")
    wait_replies(slack, "general", 2, timeout=20)
    assert [input_texts(seen) for seen in turns(model_api)] == [["[Alice] one"], ["[Bob Builder] bob's"]]
    assert state_of(tmp_path, "two") == "refused"
