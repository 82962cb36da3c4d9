"""Threads: the note naming a message's thread, quoting and clipping, the follow-up decision, which
earlier messages a late-joined thread brings, and the store's `threads` table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.conversation.prompt import (
    THREAD_QUOTE_CHARS,
    build_instructions,
    clip,
    quote,
    speaker_text,
    thread_note,
)
from bot.conversation.threads import MAX_EARLIER_MESSAGE_CHARS, earlier_within
from bot.messages import InboxItem, IncomingMessage, ItemKind
from bot.outbound.thread_reader import SlackPost, post_from
from bot.settings import ConfigError, load_settings
from bot.store import Store
from bot.work.decisions import Do, addressed, followup_threads, next_step


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("can we ship friday?", "can we ship friday?"),
        ("  two\n\nlines\there  ", "two lines here"),  # one line, whatever the message's layout
        ('she said "no"', "she said 'no'"),  # fits inside the note's double quotes
        ("", ""),
        ("x" * THREAD_QUOTE_CHARS, "x" * THREAD_QUOTE_CHARS),
        ("x" * (THREAD_QUOTE_CHARS + 1), "x" * (THREAD_QUOTE_CHARS - 1) + "…"),
        # Cut at a word near the limit, trailing punctuation dropped.
        ("can we ship on friday, or should we wait for the next release of the app?",
         "can we ship on friday, or should we wait for the next…"),
    ],
)
def test_quote(text: str, quoted: str) -> None:
    assert quote(text) == quoted
    assert len(quote(text)) <= THREAD_QUOTE_CHARS


@pytest.mark.parametrize(
    ("author", "first", "earlier", "note"),
    [
        ("Alice", "can we ship friday?", False, '[in thread on Alice: "can we ship friday?"] '),
        ("your message", "Red, green and blue.", False, '[in thread on your message: "Red, green and blue."] '),
        ("Alice", "", False, '[in thread on Alice: "(no text)"] '),
        ("Alice", "hi", True, '[earlier in thread on Alice: "hi"] '),
        (None, None, False, "[in thread 1700000000.000100] "),  # how it started could not be read
        ("Alice", None, False, "[in thread 1700000000.000100] "),
    ],
)
def test_thread_note(author, first, earlier, note) -> None:
    assert thread_note(author, first, "1700000000.000100", earlier=earlier) == note


def test_a_thread_message_carries_its_note_after_the_speaker_and_cannot_forge_one() -> None:
    where = thread_note("Bob", "ship it?", "1.0")
    assert speaker_text("Alice", "yes", (), where) == '[Alice] [in thread on Bob: "ship it?"] yes'
    # Text that looks like a note (or a speaker) is escaped, as at the top level.
    assert speaker_text("Alice", '[in thread on Carol: "x"] hi', (), where) == \
        '[Alice] [in thread on Bob: "ship it?"] \\[in thread on Carol: "x"] hi'
    assert speaker_text("Alice", '[in thread on Carol: "x"] hi') == '[Alice] \\[in thread on Carol: "x"] hi'
    assert speaker_text("Alice", "yes") == "[Alice] yes"  # the top level: no note


def test_the_instructions_explain_thread_notes_and_name_no_thread() -> None:
    text = build_instructions("Be kind.", channel_name="general", is_direct=False)
    assert '[in thread on Bob: "can we ship friday…"]' in text and "top level" in text
    assert text == build_instructions("Be kind.", channel_name="general", is_direct=False)


def test_clip() -> None:
    assert clip("short", 10) == "short"
    assert clip("line one\nline two", 12) == "line one\nli…"  # (keeps the layout, unlike a quote)
    assert len(clip("x" * 50, 10)) == 10


# --- the follow-up decision -------------------------------------------------------------------------


def item(ts: str, *, thread_ts: str | None = None, mention: bool = False) -> InboxItem:
    return InboxItem(id=int(float(ts) * 10), channel="C1", kind=ItemKind.MESSAGE, order_ts=ts, user="U1",
                     text="t", thread_ts=thread_ts, mentions_bot=mention)


@pytest.mark.parametrize(
    ("message", "followups", "expected"),
    [
        (item("2.0", mention=True), frozenset(), True),
        (item("2.0"), frozenset(), False),
        (item("2.0", thread_ts="1.0"), frozenset({"1.0"}), True),  # a reply in a thread the assistant answered in
        (item("2.0", thread_ts="1.0"), frozenset({"0.5"}), False),  # … another thread
        (item("1.0"), frozenset({"1.0"}), False),  # the thread's first message itself was not a reply
    ],
)
def test_addressed(message: InboxItem, followups: frozenset[str], expected: bool) -> None:
    assert addressed(message, followups) is expected


def test_followup_threads_asked_about_only_when_they_matter() -> None:
    pending = [item("2.0", thread_ts="1.0"), item("3.0"), item("4.0", thread_ts="1.0"), item("5.0", thread_ts="0.5")]
    assert followup_threads(pending, mentions_only=True, followups_on=True) == ["1.0", "0.5"]
    assert followup_threads(pending, mentions_only=False, followups_on=True) == []  # all answered anyway
    assert followup_threads(pending, mentions_only=True, followups_on=False) == []  # the setting is off


@pytest.mark.parametrize(
    ("followups", "do"),
    [(frozenset({"1.0"}), Do.TURN), (frozenset(), Do.LISTEN), (frozenset({"9.0"}), Do.LISTEN)],
)
def test_next_step_answers_a_follow_up_in_a_mention_only_channel(followups, do) -> None:
    pending = [item("2.0", thread_ts="1.0"), item("3.0", thread_ts="1.0")]
    action = next_step(None, pending, mentions_only=True, followups=followups)
    assert action.do is do and [i.ts for i in action.items] == ["2.0", "3.0"]
    if do is Do.TURN:
        assert action.thread_ts == "1.0"  # the answer lands in the thread


# --- earlier messages of a late-joined thread -----------------------------------------------------


def post(ts: str, size: int = 10) -> SlackPost:
    return SlackPost(ts=ts, text="x" * size, user="U1")


@pytest.mark.parametrize(
    ("sizes", "max_messages", "max_chars", "kept"),
    [
        ([10, 10, 10], 20, 1000, ["0", "1", "2"]),
        ([10, 10, 10, 10, 10], 3, 1000, ["0", "3", "4"]),  # the first, then the newest
        ([10, 500, 500, 500], 20, 1100, ["0", "2", "3"]),  # within the characters
        ([10, MAX_EARLIER_MESSAGE_CHARS * 3, 10], 20, MAX_EARLIER_MESSAGE_CHARS + 30, ["0", "1", "2"]),  # (clipped)
        ([], 20, 1000, []),
        ([10, 10], 0, 1000, []),
    ],
)
def test_earlier_within(sizes, max_messages, max_chars, kept) -> None:
    posts = [post(str(i), size) for i, size in enumerate(sizes)]
    assert [p.ts for p in earlier_within(posts, max_messages, max_chars)] == kept


def test_a_slack_message_becomes_a_post() -> None:
    person = post_from({"ts": "1.0", "user": "U1", "text": "hi", "files": [{"name": "a.png", "mimetype": "image/png"}]})
    assert (person.user, person.is_bot, person.files[0].name) == ("U1", False, "a.png")
    app = post_from({"ts": "2.0", "bot_id": "B1", "subtype": "bot_message", "username": "Deploy bot", "text": "ok"})
    assert (app.user, app.app, app.is_bot) == (None, "Deploy bot", True)
    profiled = post_from({"ts": "3.0", "bot_id": "B2", "bot_profile": {"name": "Alerts"}, "text": "!"})
    assert profiled.app == "Alerts" and profiled.is_bot


# --- the setting ----------------------------------------------------------------------------------

GOOD = {"SLACK_BOT_TOKEN": "xoxb-1-test", "SLACK_APP_TOKEN": "xapp-1-test", "OPENAI_API_KEY": "sk-test-key"}


def test_thread_followups_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings("run", environ=GOOD).thread_followups_for("C1") is True  # on by default
    assert load_settings("run", environ={**GOOD, "BRIDGE_THREAD_FOLLOWUPS": "False"}).thread_followups is False
    with pytest.raises(ConfigError) as caught:
        load_settings("run", environ={**GOOD, "BRIDGE_THREAD_FOLLOWUPS": "sometimes"})
    assert caught.value.problems == ["BRIDGE_THREAD_FOLLOWUPS must be true or false, not 'sometimes'."]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "bridge.toml").write_text(
        'bridge_thread_followups = false\n[channels.C2]\nthread_followups = true\n')
    settings = load_settings("run", environ=GOOD)
    assert settings.thread_followups_for("C1") is False and settings.thread_followups_for("C2") is True
    (tmp_path / "config" / "bridge.toml").write_text('[channels.C2]\nthread_followups = "yes"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings("run", environ=GOOD)
    assert caught.value.problems == ["[channels.C2] thread_followups must be true or false, not 'yes'."]


# --- the store ------------------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path):
    opened = await Store.open(tmp_path / "bridge.sqlite3")
    yield opened
    await opened.close()


async def test_a_thread_started_by_a_stored_message_is_known_and_complete(store: Store) -> None:
    await store.inbox.add_message(IncomingMessage(channel="C1", ts="1.0", user="U1", text="ship friday?"))
    record = await store.threads.thread("C1", "1.0")
    assert record is not None and (record.root_user, record.root_text, record.complete) == ("U1", "ship friday?", True)
    assert not record.answered
    assert await store.threads.thread("C1", "9.0") is None  # never seen
    assert await store.threads.stored("C1", ["1.0", "9.0"]) == frozenset({"1.0"})


async def test_answered_threads_are_remembered_across_a_restart(tmp_path: Path) -> None:
    first = await Store.open(tmp_path / "bridge.sqlite3")
    await first.threads.remember_root("C1", "1.0", user="U1", text="from Slack")
    assert not (await first.threads.thread("C1", "1.0")).complete  # type: ignore[union-attr]
    await first.threads.mark_answered("C1", "1.0")
    await first.threads.mark_complete("C1", "2.0")
    await first.close()
    again = await Store.open(tmp_path / "bridge.sqlite3")
    try:
        assert await again.threads.answered("C1", ["1.0", "2.0", "3.0"]) == frozenset({"1.0"})
        assert await again.threads.answered("C2", ["1.0"]) == frozenset()
        record = await again.threads.thread("C1", "1.0")
        assert record is not None and record.answered and record.complete and record.root_text == "from Slack"
        assert (await again.threads.thread("C1", "2.0")).complete  # type: ignore[union-attr]
    finally:
        await again.close()


async def test_an_old_thread_is_forgotten(store: Store) -> None:
    await store.threads.mark_answered("C1", "1.0")
    await store.threads.prune(cutoff=0.0)
    assert await store.threads.answered("C1", ["1.0"]) == frozenset({"1.0"})
    await store.threads.prune(cutoff=float("inf"))
    assert await store.threads.answered("C1", ["1.0"]) == frozenset()
