"""Every query the store makes finds its rows through an index: SQLite's own query plan says so, and
PostgreSQL's (asked to avoid sequential scans, it still plans one only where no index applies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from bot.messages import IncomingMessage, ResetRequest
from bot.store import Store
from bot.store.installation import installation_salt
from bot.store.leases import ChannelLeases, Replicas
from bot.store.usage import USER, Charge


async def statements_run(store: Store) -> set[str]:
    """The queries (SELECT, UPDATE, DELETE) the store's methods run, as SQLite ran them (values inlined)."""
    statements: list[str] = []
    store.db._db.set_trace_callback(statements.append)
    try:
        await exercise(store)
    finally:
        store.db._db.set_trace_callback(None)
    return {s for s in statements if s.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))}


async def test_no_query_scans_a_table(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bridge.sqlite3", retention_days=1)  # (retention's erasure too)
    statements = await statements_run(store)
    plans = {}
    for sql in statements:
        rows = await store.db.fetchall(f"EXPLAIN QUERY PLAN {sql}")
        plans[sql] = [row[-1] for row in rows]
    await store.close()
    scans = {sql: plan for sql, plan in plans.items()
             if any(step.startswith("SCAN") and "USING" not in step and "(subquery" not in step for step in plan)}
    assert plans and not scans, "\n".join(f"{sql}\n  -> {plan}" for sql, plan in scans.items())


async def test_no_query_scans_a_table_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    sqlite = await Store.open(tmp_path / "bridge.sqlite3", retention_days=1)
    statements = await statements_run(sqlite)
    await sqlite.close()
    store = await Store.open(postgres_url, retention_days=1)
    plans = {}
    try:
        partial = {name for (name,) in await store.db.fetchall(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE '% WHERE %'")}
        async with store.db.transaction():
            # Tables this small are read whole by choice; without that choice, only a query no index
            # serves still scans every row (a Seq Scan, or a whole index read for want of a condition).
            await store.db.execute("SET LOCAL enable_seqscan = off")
            for sql in statements - {s for s in statements if "json_insert" in s}:  # (SQLite's own function)
                # (each database's own clock)
                (plan,) = await store.db.fetchone(
                    f"EXPLAIN (FORMAT JSON) {sql.replace(sqlite.db.now_sql, store.db.now_sql)}")
                plans[sql] = list(_scans(json.loads(plan)[0]["Plan"], partial))
    finally:
        await store.close()
    # (backends_in_use counts every conversation, once at start-up: SQLite reads its covering index whole too)
    scans = {sql: plan for sql, plan in plans.items() if plan and not sql.startswith("SELECT backend FROM")}
    assert len(plans) > 20 and not scans, "\n".join(f"{sql}\n  -> {plan}" for sql, plan in scans.items())


def _scans(node: dict, partial: set[str]) -> Iterator[str]:
    """The plan's steps that read a whole table (a partial index holds only the rows it names: fine)."""
    kind = node["Node Type"]
    if kind == "Seq Scan":
        yield f"Seq Scan on {node['Relation Name']}"
    elif "Index" in kind and "Index Cond" not in node and node.get("Index Name") not in partial:
        yield f"{kind} on {node['Index Name']} without a condition"
    for child in node.get("Plans", []):
        yield from _scans(child, partial)


async def exercise(store: Store) -> None:
    """Every store method the bridge calls, once."""
    for ts in ("1.000001", "2.000001"):
        await store.inbox.add_message(IncomingMessage(channel="C1", ts=ts, user="U1", text="hi"))
    await store.inbox.add_reset(ResetRequest(channel="C1", user="U1", key="k", order_ts="3.0"))
    pending = await store.inbox.pending("C1")
    await store.inbox.pending_count("C1")
    await store.inbox.channels_with_pending()
    await store.inbox.waiting()
    leases = ChannelLeases(store.db, owner="a", ttl=30)
    await leases.claim("C1")
    await leases.renew(["C1"])
    await leases.holder("C1")
    await leases.release("C1")
    await leases.release_all()
    replicas = Replicas(store.db, replica_id="a")
    await replicas.beat(15)
    await replicas.leave()
    await store.inbox.record_attempt([pending[0].id])
    await store.conversations.set_conversation("C1", "responses", "conv_1")
    await store.conversations.conversation("C1", "responses")
    await store.conversations.last_item("C1", "responses")
    await store.conversations.backends_in_use()
    turn = await store.journal.start_turn("C1", [pending[0].id], thread_ts=None, conversation_id="conv_1",
                                          input_texts=["[A] hi"])
    await store.journal.start_turn("C1", [pending[0].id], thread_ts=None, conversation_id="conv_1",
                                   input_texts=["[A] hi"], turn_id=turn)
    await store.journal.open_turn("C1")
    await store.journal.turn_items(turn)
    await store.journal.add_turn_message(turn, "9.0")
    await store.journal.set_turn_messages(turn, ["9.0"])
    await store.journal.answer_turn(turn, "hello", "resp_1", backend="responses", last_item_id="msg_1")
    await store.journal.finish_turn(turn)
    other = await store.journal.start_turn("C1", [pending[1].id], thread_ts=None, conversation_id="conv_1",
                                           input_texts=["x"])
    await store.journal.retry_turn(other)
    await store.journal.abandon_turn(other)
    await store.journal.skip_turn(other)
    await store.inbox.mark_done([pending[1].id])
    await store.inbox.mark_skipped([pending[2].id])
    await store.conversations.forget_conversation("C1", "responses")
    await store.chat.append_chat("chat_1", [{"role": "user", "content": "hi"}])
    await store.chat.chat_history("chat_1")
    await store.chat.chat_history("chat_1", max_chars=1000)
    await store.chat.chat_since("chat_1", 1)
    await store.chat.chat_since("chat_1", None)
    await store.usage.add("2026-12-01", [Charge(USER, "U1", 5)])
    await store.usage.used("2026-12-01", USER, "U1")
    await store.usage.recent_messages(pending[0].id, "U1", 60.0)
    await store.usage.refuse([pending[0].id], 1.0)
    await installation_salt(store.db)
    await store.prune()


async def test_the_queue_is_read_in_order_from_the_open_items_index(tmp_path: Path) -> None:
    """The queries every step makes read the one index of open items, already in Slack order (no sort),
    and a turn's items are found by their turn: the indexes a stored message has to be added to are few."""
    store = await Store.open(tmp_path / "bridge.sqlite3")
    try:
        statements = await statements_run(store)
        plans = {sql: [row[-1] for row in await store.db.fetchall(f"EXPLAIN QUERY PLAN {sql}")]
                 for sql in statements}
        pending = {sql: plan for sql, plan in plans.items()
                   if sql.startswith(("SELECT id,", "SELECT count(*) FROM inbox WHERE")) and "pending" in sql
                   and "turn_id" not in sql}
        assert len(pending) == 3  # the queue, its length, and every channel's
        for sql, plan in pending.items():
            in_order = not any("TEMP B-TREE" in step for step in plan)
            assert any("INDEX inbox_open" in step for step in plan) and in_order, f"{sql}\n  -> {plan}"
        by_turn = [plan for sql, plan in plans.items() if "WHERE turn_id =" in sql]
        assert by_turn and all(any("INDEX inbox_turn" in step for step in plan) for plan in by_turn)
        (indexed,) = await store.db.fetchone(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'inbox'"
            " AND (sql IS NULL OR sql NOT LIKE '% WHERE %')")  # (every row is in these: the unique key's too)
        assert indexed == 1
    finally:
        await store.close()
