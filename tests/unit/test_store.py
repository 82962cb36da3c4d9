"""The inbox and turn journal, on a real SQLite file and on a real PostgreSQL server (each test that
takes `store` runs on both)."""

import asyncio
import os
from pathlib import Path

import pytest

from bot.messages import FileNote, IncomingMessage, ItemKind, ResetRequest
from bot.store import Store
from bot.store.migrations import MIGRATIONS
from bot.work.decisions import next_batch as _next_batch


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A SQLite file's path, or an empty PostgreSQL database's URL."""
    return tmp_path / "db" / "bridge.sqlite3" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(target: Path | str):
    opened = await Store.open(target)
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path):
    opened = await Store.open(tmp_path / "db" / "bridge.sqlite3")
    yield opened
    await opened.close()


def msg(ts: str, channel: str = "C1", user: str = "U1", thread_ts: str | None = None, **kw) -> IncomingMessage:
    return IncomingMessage(channel=channel, ts=ts, user=user, text=f"text {ts}", thread_ts=thread_ts, **kw)


async def test_duplicate_delivery_dropped(store: Store) -> None:
    assert await store.inbox.add_message(msg("1.000001"))
    assert not await store.inbox.add_message(msg("1.000001"))
    assert await store.inbox.add_message(msg("1.000001", channel="C2"))  # same ts, another channel
    assert [i.ts for i in await store.inbox.pending("C1")] == ["1.000001"]


async def test_pending_in_slack_order_with_reset_in_place(store: Store) -> None:
    await store.inbox.add_message(msg("1.000000"))
    await store.inbox.add_message(msg("2.999999"))
    # The reset lands right after the newest message stored before it …
    await store.inbox.add_reset(ResetRequest(channel="C1", user="U2", key="trig-1", order_ts="9.000000"))
    assert not await store.inbox.add_reset(ResetRequest(channel="C1", user="U2", key="trig-1", order_ts="9.5"))
    await store.inbox.add_message(msg("4.000000"))
    await store.inbox.add_message(msg("2.000000"))  # … and a late re-delivery of an older message sorts before it
    items = await store.inbox.pending("C1")
    assert [(i.kind, i.ts) for i in items] == [
        (ItemKind.MESSAGE, "1.000000"), (ItemKind.MESSAGE, "2.000000"), (ItemKind.MESSAGE, "2.999999"),
        (ItemKind.RESET, "3.000000"), (ItemKind.MESSAGE, "4.000000")]
    assert await store.inbox.pending_count("C1") == 5


async def test_reset_in_an_empty_channel_uses_its_own_time(store: Store) -> None:
    await store.inbox.add_reset(ResetRequest(channel="C1", user="U2", key="k", order_ts="5.000000"))
    assert [i.ts for i in await store.inbox.pending("C1")] == ["5.000000"]


async def test_files_and_flags_round_trip(store: Store) -> None:
    await store.inbox.add_message(msg("1.0", files=(FileNote("a.txt", "text/plain", 3),), mentions_bot=True))
    (item,) = await store.inbox.pending("C1")
    assert item.files == (FileNote("a.txt", "text/plain", 3),)
    assert item.mentions_bot


async def test_where_a_file_is_round_trips_and_old_rows_still_read(store: Store) -> None:
    shared = FileNote("a.png", "image/png", 5, id="F1", url="https://files.slack.com/d/a.png", filetype="png")
    await store.inbox.add_message(msg("1.0", files=(shared, FileNote("b", access="check_file_info", id="F2"))))
    await store.db.execute("INSERT INTO inbox (channel, dedupe_key, kind, order_ts, user_id, files, received_at)"
                           " VALUES ('C1', '2.0', 'message', '2.0', 'U1', '[[\"old.txt\", \"text/plain\", 3]]', 0)")
    first, old = await store.inbox.pending("C1")
    assert first.files == (shared, FileNote("b", access="check_file_info", id="F2"))
    assert old.files == (FileNote("old.txt", "text/plain", 3),)  # stored before files were read


async def test_model_facts_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "facts.sqlite3"
    store = await Store.open(path)
    assert await store.model_facts.fact("vision:chat:x:m") is None
    await store.model_facts.remember("vision:chat:x:m", "refused")
    await store.model_facts.remember("vision:chat:x:m", "refused")  # (learnt twice: one row)
    await store.close()
    reopened = await Store.open(path)
    assert await reopened.model_facts.fact("vision:chat:x:m") == "refused"
    await reopened.close()


async def test_turn_lifecycle(store: Store) -> None:
    for ts in ("1.0", "2.0"):
        await store.inbox.add_message(msg(ts))
    ids = [i.id for i in await store.inbox.pending("C1")]
    turn = await store.journal.start_turn("C1", ids, thread_ts=None, conversation_id="conv_1",
                                  input_texts=["[A] text 1.0", "[A] text 2.0"], messages=["9.0"])
    opened = await store.journal.open_turn("C1")
    assert (opened.state, opened.conversation_id, opened.input_texts) == (
        "started", "conv_1", ("[A] text 1.0", "[A] text 2.0"))
    assert [i.ts for i in await store.journal.turn_items(turn)] == ["1.0", "2.0"]
    await store.journal.add_turn_message(turn, "9.5")
    assert (await store.journal.open_turn("C1")).messages == ("9.0", "9.5")
    assert [i.attempts for i in await store.inbox.pending("C1")] == [1, 1]
    await store.conversations.set_conversation("C1", "responses", "conv_1")
    await store.journal.answer_turn(turn, "the reply", "resp_1", backend="responses", last_item_id="msg_9")
    assert await store.conversations.last_item("C1", "responses") == "msg_9"
    assert await store.inbox.pending("C1") == []
    assert await store.inbox.channels_with_pending() == ["C1"]  # answered, not yet delivered
    opened = await store.journal.open_turn("C1")
    assert (opened.state, opened.reply_text, opened.message_ts) == ("answered", "the reply", "9.0")
    await store.journal.finish_turn(turn)
    assert await store.journal.open_turn("C1") is None
    assert await store.inbox.channels_with_pending() == []


async def test_replaced_messages_take_the_place_of_the_old_ones(store: Store) -> None:
    await store.inbox.add_message(msg("1.0"))
    ids = [i.id for i in await store.inbox.pending("C1")]
    turn = await store.journal.start_turn("C1", ids, thread_ts=None, conversation_id="c", input_texts=["x"],
                                          messages=["9.0", "9.1", "9.2"])
    await store.journal.replace_turn_messages(turn, ["9.1", "9.2"], ["9.5", "9.6"])  # from the second on
    assert (await store.journal.open_turn("C1")).messages == ("9.0", "9.5", "9.6")
    await store.journal.replace_turn_messages(turn, ["9.0"], ["9.7"])  # the first, keeping the order
    assert (await store.journal.open_turn("C1")).messages == ("9.7", "9.5", "9.6")


async def test_stale_messages_are_kept_until_deleted(store: Store) -> None:
    await store.stale_messages.add("C1", ["9.1", "9.2"])
    await store.stale_messages.add("C2", ["8.1"])
    await store.stale_messages.add("C1", ["9.1"])  # (told twice: one row)
    assert sorted(await store.stale_messages.pending()) == [("C1", "9.1"), ("C1", "9.2"), ("C2", "8.1")]
    await store.stale_messages.done("C1", "9.1")
    assert sorted(await store.stale_messages.pending()) == [("C1", "9.2"), ("C2", "8.1")]


async def test_a_spare_conversation_goes_to_one_channel(store: Store) -> None:
    conversations = store.conversations
    for conversation_id in ("conv_a", "conv_b"):
        await conversations.add_spare("responses:k1", conversation_id)
    await conversations.add_spare("responses:k2", "conv_other_key")  # (another API key's: not for this one)
    assert await conversations.spare_count("responses:k1") == 2
    assert await conversations.take_spare("C1", "responses", "responses:k1") == "conv_a"  # the oldest
    assert await conversations.conversation("C1", "responses") == "conv_a"
    assert await conversations.take_spare("C1", "responses", "responses:k1") == "conv_a"  # it has one: none spent
    assert await conversations.spare_count("responses:k1") == 1
    assert await conversations.take_spare("C2", "responses", "responses:k1") == "conv_b"
    assert await conversations.take_spare("C3", "responses", "responses:k1") is None  # none left
    assert await conversations.conversation("C3", "responses") is None
    assert await conversations.spare_count("responses:k2") == 1
    # Taken, each is remembered with its channel until the service has the label too.
    assert await conversations.taken_spares("responses:k1") == [("conv_a", "C1"), ("conv_b", "C2")]
    await conversations.labelled("conv_a")
    assert await conversations.taken_spares("responses:k1") == [("conv_b", "C2")]
    await conversations.add_spare("responses:k1", "conv_c")
    await conversations.drop_spares("responses:k1")  # (the service lost a conversation)
    assert await conversations.spare_count("responses:k1") == 0
    assert await conversations.taken_spares("responses:k1") == [("conv_b", "C2")]  # (still to label)


async def test_channels_taking_spares_at_once_never_share_one(store: Store) -> None:
    for n in range(4):
        await store.conversations.add_spare("pool", f"conv_{n}")
    taken = await asyncio.gather(*(store.conversations.take_spare(f"C{n}", "responses", "pool") for n in range(6)))
    got = [conversation_id for conversation_id in taken if conversation_id is not None]
    assert len(got) == 4 and len(set(got)) == 4  # (on PostgreSQL, a spare another take holds is passed over)
    assert await store.conversations.spare_count("pool") == 0
    for n, conversation_id in enumerate(taken):
        assert await store.conversations.conversation(f"C{n}", "responses") == conversation_id


async def test_failed_turns_leave_items_pending(store: Store) -> None:
    await store.inbox.add_message(msg("1.0"))
    ids = [i.id for i in await store.inbox.pending("C1")]
    turn = await store.journal.start_turn("C1", ids, thread_ts=None, conversation_id="c", input_texts=["x"],
                                  messages=["9.0"])
    await store.journal.retry_turn(turn)  # failed before reaching the conversation: reuse its message
    assert (await store.journal.open_turn("C1")).state == "retry"
    again = await store.journal.start_turn("C1", ids, thread_ts=None, conversation_id="c", input_texts=["x"],
                                   messages=["9.0"], turn_id=turn)
    assert again == turn
    assert (await store.inbox.pending("C1"))[0].attempts == 2
    await store.journal.abandon_turn(turn)
    assert [i.ts for i in await store.inbox.pending("C1")] == ["1.0"]
    assert await store.journal.open_turn("C1") is None


async def test_skipped_turn_and_items(store: Store) -> None:
    await store.inbox.add_message(msg("1.0"))
    await store.inbox.add_message(msg("2.0"))
    first, second = await store.inbox.pending("C1")
    await store.inbox.mark_skipped([first.id])
    assert [i.ts for i in await store.inbox.pending("C1")] == ["2.0"]
    turn = await store.journal.start_turn("C1", [second.id], thread_ts=None, conversation_id="c", input_texts=["x"])
    await store.journal.skip_turn(turn)
    assert await store.inbox.pending("C1") == [] and await store.journal.open_turn("C1") is None


async def test_conversation_map_survives_reopen(target: Path | str) -> None:
    path = target
    first = await Store.open(path)
    await first.conversations.set_conversation("C1", "responses", "conv_1")
    await first.inbox.add_message(msg("1.0"))
    await first.close()
    second = await Store.open(path)
    try:
        assert await second.conversations.conversation("C1", "responses") == "conv_1"
        assert await second.conversations.conversation("C1", "chat") is None
        assert len(await second.inbox.pending("C1")) == 1
        await second.conversations.forget_conversation("C1", "responses")
        assert await second.conversations.conversation("C1", "responses") is None
    finally:
        await second.close()


async def test_newer_schema_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "x.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer version"):
        await Store.open(path)


async def test_next_batch_stops_at_reset_and_thread_change(store: Store) -> None:
    await store.inbox.add_message(msg("1.0"))
    await store.inbox.add_message(msg("2.0"))
    await store.inbox.add_message(msg("3.0", thread_ts="0.5"))
    await store.inbox.add_message(msg("4.0"))
    items = await store.inbox.pending("C1")
    assert [i.ts for i in _next_batch(items)] == ["1.0", "2.0"]
    assert [i.ts for i in _next_batch(items[2:])] == ["3.0"]
    await store.inbox.add_message(msg("1.0", channel="C2"))
    await store.inbox.add_reset(ResetRequest(channel="C2", user="U1", key="k", order_ts="1.5"))
    await store.inbox.add_message(msg("2.0", channel="C2"))
    assert [i.ts for i in _next_batch(await store.inbox.pending("C2"))] == ["1.0"]


async def test_a_smaller_retry_of_a_turn_does_not_end_the_items_it_left_out(store: Store) -> None:
    for ts in ("1.0", "2.0", "3.0"):
        await store.inbox.add_message(msg(ts))
    ids = [i.id for i in await store.inbox.pending("C1")]
    turn = await store.journal.start_turn("C1", ids, thread_ts=None, conversation_id="c", input_texts=["a", "b", "c"])
    await store.journal.retry_turn(turn)  # refused: now one message at a time
    await store.journal.start_turn("C1", ids[:1], thread_ts=None, conversation_id="c", input_texts=["a"], turn_id=turn)
    await store.journal.answer_turn(turn, "answer to the first", None)
    await store.journal.finish_turn(turn)
    assert [i.ts for i in await store.inbox.pending("C1")] == ["2.0", "3.0"]


async def test_one_process_per_database(tmp_path: Path) -> None:
    from bot.store import StoreInUse

    first = await Store.open(tmp_path / "one.sqlite3")
    try:
        with pytest.raises(StoreInUse, match="another assistant-bridge process"):
            await Store.open(tmp_path / "one.sqlite3")
    finally:
        await first.close()
    again = await Store.open(tmp_path / "one.sqlite3")  # released on close
    await again.close()


async def test_times_keep_their_precision(store: Store) -> None:
    """Unix times are 8-byte floats on both databases (PostgreSQL's REAL would round them to minutes)."""
    import time

    before = time.time()
    await store.inbox.add_message(msg("1.0"))
    after = time.time()
    (received_at,) = await store.db.fetchone("SELECT received_at FROM inbox")
    assert before - 0.002 <= received_at <= after + 0.002  # (the database's clock: SQLite's counts milliseconds)


async def test_finished_work_is_pruned_after_the_retention(store: Store) -> None:
    import time

    from bot import store as store_module

    await store.inbox.add_message(msg("1.0"))
    await store.inbox.add_message(msg("2.0"))
    first, second = await store.inbox.pending("C1")
    await store.inbox.mark_done([first.id])
    await store.db.execute("UPDATE inbox SET done_at = ? WHERE id = ?",
                           (time.time() - store_module.RETENTION - 1, first.id))
    await store.prune()
    (remaining,) = await store.db.fetchall("SELECT id FROM inbox")
    assert remaining == (second.id,)


async def test_the_chat_window_is_read_backwards_and_matches_the_newest_that_fit(store: Store) -> None:
    from bot.store.chat_history import HISTORY_PAGE

    sizes = [(n * 37) % 90 + 5 for n in range(HISTORY_PAGE * 3 + 17)]  # more than three pages, uneven sizes
    for n, size in enumerate(sizes):
        await store.chat.append_chat("chat_1", [{"role": "user", "content": "x" * size, "n": n}])
    await store.chat.append_chat("chat_2", [{"role": "user", "content": "other"}])
    everything = await store.chat.chat_history("chat_1")
    for budget in (0, 50, 5_000, 20_000, 10**9):
        expected, used = [], 0  # the newest records whose characters, summed from the newest, fit the budget
        for record in reversed(everything):
            if used + record.chars > budget:
                break
            used += record.chars
            expected.insert(0, record)
        assert await store.chat.chat_history("chat_1", max_chars=budget) == expected


async def test_looking_for_a_turn_reads_from_its_anchor_on(store: Store) -> None:
    ids = [await store.chat.append_chat("chat_1", [{"role": "user", "content": str(n)}]) for n in range(600)]
    since = await store.chat.chat_since("chat_1", ids[-3])
    assert [record.message["content"] for record in since] == ["597", "598", "599"]
    recent = await store.chat.chat_since("chat_1", None, limit=4)
    assert [record.message["content"] for record in recent] == ["596", "597", "598", "599"]


async def test_a_reset_removes_the_chat_history_of_the_forgotten_conversation(store: Store) -> None:
    await store.conversations.set_conversation("C1", "chat", "chat_old")
    await store.conversations.set_conversation("C2", "chat", "chat_other")
    await store.chat.append_chat("chat_old", [{"role": "user", "content": "before the reset"}])
    await store.chat.append_chat("chat_other", [{"role": "user", "content": "another channel"}])
    await store.conversations.forget_conversation("C1", "chat")
    assert await store.chat.chat_history("chat_old") == []
    assert [r.message["content"] for r in await store.chat.chat_history("chat_other")] == ["another channel"]


async def test_what_slack_is_acked_for_is_committed_to_the_disk(sqlite_store: Store) -> None:
    """The inbox's commits wait for the disk (synchronous=FULL): they survive a power loss, not only a
    crash. The other commits do not wait (synchronous=NORMAL)."""
    seen: list[str] = []
    sqlite_store.db._db.set_trace_callback(seen.append)
    try:
        await sqlite_store.inbox.add_message(msg("1.0"))
        await sqlite_store.inbox.add_reset(ResetRequest(channel="C1", user="U2", key="k", order_ts="2.0"))
        await sqlite_store.conversations.set_conversation("C1", "responses", "conv_1")
    finally:
        sqlite_store.db._db.set_trace_callback(None)
    mode, under = "NORMAL", []  # (statement, the synchronous mode it ran under)
    for statement in seen:
        if statement.startswith("PRAGMA synchronous="):
            mode = statement.split("=")[1]
        else:
            under.append((statement, mode))
    inbox_writes = [m for sql, m in under if sql.startswith("INSERT INTO inbox") or sql == "COMMIT"]
    assert inbox_writes == ["FULL", "FULL", "FULL"]  # the message, the reset and the reset's commit
    assert [m for sql, m in under if "INTO conversations" in sql] == ["NORMAL"]
    (mode,) = await sqlite_store.db.fetchone("PRAGMA synchronous")
    assert mode == 1  # NORMAL again afterwards


async def test_a_message_stored_to_be_seen_at_once_is_on_the_disk_after_sync(
        sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The intake's way: the message is committed without waiting (the channel's worker sees it at
    once), then the write-ahead log is fsynced in a thread before Slack is acked."""
    synced: list[str] = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), fsync(fd)))
    assert await sqlite_store.inbox.add_message(msg("1.0"), durable=False)
    assert [item.ts for item in await sqlite_store.inbox.pending("C1")] == ["1.0"]  # seen before it is synced
    assert not any(path.endswith("-wal") for path in synced)
    await sqlite_store.inbox.sync()
    assert synced and synced[-1].endswith("bridge.sqlite3-wal")


async def test_access_notes_remember_whom_they_told(store: Store, target: Path | str) -> None:
    assert await store.access_notes.first_time("C1", "U1")
    assert not await store.access_notes.first_time("C1", "U1")
    assert await store.access_notes.first_time("C2", "U1")  # once per channel
    await store.access_notes.forget("C2", "U1")  # (the note could not be sent)
    assert await store.access_notes.first_time("C2", "U1")
    await store.close()
    reopened = await Store.open(target)
    try:
        assert not await reopened.access_notes.first_time("C1", "U1")  # across restarts
    finally:
        await reopened.close()


async def test_speaker_names_are_held_by_their_first_user(store: Store) -> None:
    assert await store.speaker_names.claim("bob", "UBOB") == "UBOB"
    assert await store.speaker_names.claim("bob", "UTRUDY") == "UBOB"
    assert await store.speaker_names.claim("bob (@trudy)", "UTRUDY") == "UTRUDY"
