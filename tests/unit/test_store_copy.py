"""copy-store's copy: every table of a SQLite store, row for row, into an empty PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.messages import IncomingMessage, ResetRequest
from bot.store import Store
from bot.store.copy import TargetNotEmpty, copy_store

TABLES = {"conversations": "channel, backend", "turns": "id", "inbox": "id", "chat_messages": "id"}


async def used_store(path: Path) -> None:
    """A SQLite store with a bit of everything: finished and pending items, an unfinished turn, history."""
    store = await Store.open(path)
    for ts in ("1.000001", "2.000001", "3.000001"):
        await store.inbox.add_message(IncomingMessage(channel="C1", ts=ts, user="U1", text=f"it's {ts}"))
    await store.inbox.add_reset(ResetRequest(channel="C2", user="U2", key="k", order_ts="4.0"))
    first, second, _ = await store.inbox.pending("C1")
    await store.conversations.set_conversation("C1", "chat", "chat_1")
    done = await store.journal.start_turn("C1", [first.id], thread_ts=None, conversation_id="chat_1",
                                          input_texts=["[A] it's 1"], messages=["9.1"])
    await store.journal.answer_turn(done, "answer", None, backend="chat", last_item_id="x")
    await store.journal.finish_turn(done)
    await store.journal.start_turn("C1", [second.id], thread_ts=None, conversation_id="chat_1",
                                   input_texts=["[A] it's 2"], messages=["9.2"])  # in flight when it stopped
    await store.chat.append_chat("chat_1", [{"role": "user", "content": "é ✓"}, {"role": "assistant", "content": "ok"}])
    await store.close()


async def rows(store: Store) -> dict[str, list[tuple]]:
    return {table: await store.db.fetchall(f"SELECT * FROM {table} ORDER BY {order}")
            for table, order in TABLES.items()}


async def test_every_row_is_copied_and_new_ids_come_after(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "bridge.sqlite3"
    await used_store(source)
    copied = await copy_store(source, postgres_url)
    assert {table: rows for table, rows in copied.items() if rows} == {"chat_messages": 2, "conversations": 1,
                                                                         "inbox": 4, "turns": 2}
    assert "channel_leases" not in copied  # (the replicas' own state, not the store's)
    sqlite, postgres = await Store.open(source), await Store.open(postgres_url)
    try:
        before = await rows(sqlite)
        assert await rows(postgres) == before
        assert [i.text for i in await postgres.inbox.pending("C1")] == ["it's 2.000001", "it's 3.000001"]
        assert (await postgres.journal.open_turn("C1")).input_texts == ("[A] it's 2",)
        assert await postgres.inbox.add_message(IncomingMessage(channel="C1", ts="5.0", user="U1", text="new"))
        (new_id,) = await postgres.db.fetchone("SELECT max(id) FROM inbox")
        assert new_id == max(row[0] for row in before["inbox"]) + 1  # the identity moved past the copied ids
        assert await postgres.chat.append_chat("chat_1", [{"role": "user", "content": "more"}]) == 3
    finally:
        await sqlite.close()
        await postgres.close()


async def test_a_database_with_rows_is_refused_and_left_alone(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "bridge.sqlite3"
    await used_store(source)
    target = await Store.open(postgres_url)
    await target.conversations.set_conversation("C9", "responses", "conv_theirs")
    await target.close()
    with pytest.raises(TargetNotEmpty, match="already holds rows in conversations"):
        await copy_store(source, postgres_url)
    target = await Store.open(postgres_url)
    try:
        left = await rows(target)
        assert [row[:3] for row in left.pop("conversations")] == [("C9", "responses", "conv_theirs")]
        assert left == {"turns": [], "inbox": [], "chat_messages": []}
    finally:
        await target.close()
