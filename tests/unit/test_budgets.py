"""The budgets' pure rules (bot/work/budgets.py), their settings, and the store parts they keep."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from bot.conversation.service import safety_identifier
from bot.messages import FileNote, InboxItem, IncomingMessage, ItemKind
from bot.settings import ConfigError, load_settings
from bot.store import Store
from bot.store.installation import installation_salt
from bot.store.usage import CHANNEL, USER, Charge, RecentMessages
from bot.work.budget_gate import limits_from
from bot.work.budgets import Limits, charges, next_midnight, over_budget, renews_text

GOOD = {"SLACK_BOT_TOKEN": "xoxb-1-test", "SLACK_APP_TOKEN": "xapp-1-test", "OPENAI_API_KEY": "sk-test-key"}
NOON = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def item(user: str, text: str, item_id: int = 1) -> InboxItem:
    return InboxItem(id=item_id, channel="C1", kind=ItemKind.MESSAGE, order_ts="1.0", user=user, text=text)


# --- charging -----------------------------------------------------------------------------------------


def test_a_turn_is_charged_to_the_channel_and_split_by_what_each_wrote() -> None:
    got = charges("C1", [item("A", "a" * 30), item("B", "b" * 10)], 50)
    assert got == [Charge(CHANNEL, "C1", 50), Charge(USER, "A", 37), Charge(USER, "B", 13)]


def test_the_split_adds_up_and_a_file_only_message_still_pays() -> None:
    got = charges("C1", [item("A", ""), item("B", "b" * 99), item("A", "x")], 1001)
    users = {c.subject: c.tokens for c in got if c.scope == USER}
    assert users == {"A": 19 + 1, "B": 981}  # 2/101 and 99/101 of it; the rounding's 1 to the last author
    assert charges("C1", [item("A", "x")], 0) == [] and charges("C1", [], 10) == []


# --- is a message over a budget -----------------------------------------------------------------------


def test_each_budget_is_over_only_once_used_up() -> None:
    limits = Limits(user_daily_tokens=100, channel_daily_tokens=1000, user_messages_per_minute=2)
    fine = RecentMessages(2, NOON.timestamp() - 30)
    assert over_budget(limits, user_used=99, channel_used=999, recent=fine, now=NOON) is None
    user = over_budget(limits, user_used=100, channel_used=0, recent=fine, now=NOON)
    assert user is not None and (user.kind, user.limit) == ("user", 100)
    assert user.renews_at == dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    channel = over_budget(limits, user_used=100, channel_used=1000, recent=fine, now=NOON)
    assert channel is not None and channel.kind == "channel"  # the channel's is named first
    rate = over_budget(limits, user_used=0, channel_used=0, recent=RecentMessages(3, NOON.timestamp() - 18), now=NOON)
    assert rate is not None and rate.kind == "rate" and rate.renews_at == NOON + dt.timedelta(seconds=42)


def test_no_limit_means_no_limit() -> None:
    assert not Limits().any
    assert over_budget(Limits(), user_used=10**9, channel_used=10**9, recent=RecentMessages(10**4, 0.0),
                       now=NOON) is None


def test_renewal_is_said_in_utc_with_how_long() -> None:
    assert next_midnight(dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    paris = dt.timezone(dt.timedelta(hours=1))
    assert next_midnight(dt.datetime(2026, 12, 2, 0, 30, tzinfo=paris)) == dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    assert renews_text(next_midnight(NOON), NOON) == "at 00:00 UTC (in 12 h 0 min)"
    assert renews_text(NOON + dt.timedelta(seconds=42), NOON) == "in 42 s"
    assert renews_text(NOON + dt.timedelta(minutes=5), NOON) == "at 12:05 UTC (in 5 min)"


# --- settings -----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_budget_settings_default_to_no_limit_and_take_whole_numbers() -> None:
    settings = load_settings("run", environ=GOOD)
    assert (settings.user_daily_tokens, settings.channel_daily_tokens, settings.user_messages_per_minute,
            settings.retention_days) == (0, 0, 0, 0)
    settings = load_settings("run", environ={**GOOD, "BRIDGE_USER_DAILY_TOKENS": "20_000",
                                             "BRIDGE_RETENTION_DAYS": "30"})
    assert settings.user_daily_tokens == 20_000 and settings.retention_days == 30


@pytest.mark.parametrize("name", ["BRIDGE_USER_DAILY_TOKENS", "BRIDGE_CHANNEL_DAILY_TOKENS",
                                  "BRIDGE_USER_MESSAGES_PER_MINUTE", "BRIDGE_RETENTION_DAYS"])
@pytest.mark.parametrize("value", ["-1", "1.5", "lots", "99999999999999999"])
def test_a_bad_budget_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings("run", environ={**GOOD, name: value})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{name} must be a whole number") and repr(value) in problem


def test_per_channel_budgets_override_the_bridge_wide_ones(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text("user_messages_per_minute = 1\n[channels.C1]\nchannel_daily_tokens = 500\n"
                      "user_daily_tokens = 0\n")
    with pytest.raises(ConfigError):  # (only BRIDGE_… names at the top of the file)
        load_settings("run", environ=GOOD, config_file=config)
    config.write_text("bridge_user_daily_tokens = 100\n[channels.C1]\nchannel_daily_tokens = 500\n"
                      "user_daily_tokens = 0\n")
    limits = limits_from(load_settings("run", environ=GOOD, config_file=config))
    assert limits("C1") == Limits(user_daily_tokens=0, channel_daily_tokens=500)
    assert limits("C2") == Limits(user_daily_tokens=100)
    config.write_text('[channels.C1]\nchannel_daily_tokens = "lots"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings("run", environ=GOOD, config_file=config)
    assert "[channels.C1] channel_daily_tokens must be a whole number of tokens" in caught.value.problems[0]


# --- the store's part ---------------------------------------------------------------------------------


async def test_usage_adds_up_per_day_and_subject(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bridge.sqlite3")
    try:
        await store.usage.add("2026-12-01", [Charge(USER, "A", 5), Charge(CHANNEL, "C1", 5)])
        await store.usage.add("2026-12-01", [Charge(USER, "A", 7), Charge(USER, "B", 0)])
        await store.usage.add("2026-12-02", [Charge(USER, "A", 1)])
        assert await store.usage.used("2026-12-01", USER, "A") == 12
        assert await store.usage.used("2026-12-01", CHANNEL, "C1") == 5
        assert await store.usage.used("2026-12-01", USER, "B") == 0
        assert await store.usage.used("2026-12-02", USER, "A") == 1
    finally:
        await store.close()


async def test_recent_messages_count_the_authors_own_unrefused_messages(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bridge.sqlite3")
    try:
        for ts, user in (("1.000001", "A"), ("2.000001", "B"), ("3.000001", "A"), ("4.000001", "A")):
            await store.inbox.add_message(IncomingMessage(channel="C1", ts=ts, user=user, text="hi"))
        ids = [i.id for i in await store.inbox.pending("C1")]
        assert (await store.usage.recent_messages(ids[3], "A", 60.0)).count == 3
        assert (await store.usage.recent_messages(ids[2], "A", 60.0)).count == 2  # up to and including it
        await store.usage.refuse([ids[2]], time.time())
        assert (await store.usage.recent_messages(ids[3], "A", 60.0)).count == 2
        await store.db.execute("UPDATE inbox SET received_at = received_at - 120 WHERE id = ?", (ids[0],))
        assert (await store.usage.recent_messages(ids[3], "A", 60.0)).count == 1
        assert [i.id for i in await store.inbox.pending("C1")] == [ids[0], ids[1], ids[3]]
    finally:
        await store.close()


async def test_retention_erases_text_of_finished_work_only_and_keeps_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    store = await Store.open(path)
    old = IncomingMessage(channel="C1", ts="1.000001", user="A", text="old secret", files=(FileNote("a.txt"),))
    await store.inbox.add_message(old)
    await store.inbox.add_message(IncomingMessage(channel="C1", ts="2.000001", user="A", text="waiting secret"))
    first, waiting = await store.inbox.pending("C1")
    turn = await store.journal.start_turn("C1", [first.id], thread_ts=None, conversation_id="chat_1",
                                          input_texts=["[A] old secret"])
    await store.journal.answer_turn(turn, "reply secret", None)
    await store.journal.finish_turn(turn)
    await store.chat.append_chat("chat_1", [{"role": "user", "content": "[A] old secret"}])
    two_days = 2 * 86_400
    await store.db.execute("UPDATE inbox SET received_at = received_at - ?, done_at = done_at - ?",
                           (two_days, two_days))
    await store.db.execute("UPDATE turns SET finished_at = finished_at - ?", (two_days,))
    await store.db.execute("UPDATE chat_messages SET created_at = created_at - ?", (two_days,))
    await store.prune()  # no retention set: everything is kept
    assert "old secret" in repr(await store.db.fetchall("SELECT text FROM inbox"))
    await store.close()
    store = await Store.open(path, retention_days=1)  # (prunes on open)
    try:
        assert await store.db.fetchall("SELECT text, files, state FROM inbox ORDER BY id") == [
            ("", None, "done"), ("waiting secret", None, "pending")]  # unfinished work untouched
        assert await store.db.fetchall("SELECT input_texts, reply_text, state FROM turns") == [
            (None, None, "delivered")]
        assert await store.chat.chat_history("chat_1") == []
        assert not await store.inbox.add_message(old)  # exactly-once holds after the erasure
        assert [i.id for i in await store.inbox.pending("C1")] == [waiting.id]
    finally:
        await store.close()


async def test_the_salt_is_made_once_and_kept(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bridge.sqlite3")
    salt = await installation_salt(store.db)
    assert len(salt) == 64 and await installation_salt(store.db) == salt
    await store.close()
    store = await Store.open(tmp_path / "bridge.sqlite3")
    assert await installation_salt(store.db) == salt
    await store.close()
    other = await Store.open(tmp_path / "other.sqlite3")
    assert await installation_salt(other.db) != salt  # each installation its own
    await other.close()
    assert safety_identifier(salt, "U1") != safety_identifier("x" + salt, "U1")
    assert safety_identifier(salt, "U1") == safety_identifier(salt, "U1") != safety_identifier(salt, "U2")
    assert len(safety_identifier(salt, "U1")) <= 64  # the APIs' limit


def test_the_budget_settings_are_documented() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    example, toml = (root / ".env.example").read_text(), (root / "config" / "bridge.toml").read_text()
    for name in ("BRIDGE_USER_DAILY_TOKENS", "BRIDGE_CHANNEL_DAILY_TOKENS", "BRIDGE_USER_MESSAGES_PER_MINUTE",
                 "BRIDGE_RETENTION_DAYS"):
        assert f"| `{name}` |" in readme and name in example and name.lower() in toml
    for key in ("user_daily_tokens", "channel_daily_tokens", "user_messages_per_minute"):
        assert f"\n# {key} = " in toml and f"`{key}`" in readme
    assert "## Security and privacy" in readme and "/assistant usage" in readme
