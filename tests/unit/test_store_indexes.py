"""Every query the store makes finds its rows through an index: SQLite's own query plan says so."""

from __future__ import annotations

from pathlib import Path

from bot.messages import IncomingMessage, ResetRequest
from bot.store import Store
from bot.store.installation import installation_salt
from bot.store.usage import USER, Charge


async def test_no_query_scans_a_table(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bridge.sqlite3", retention_days=1)  # (retention's erasure too)
    statements: list[str] = []
    store.db._db.set_trace_callback(statements.append)
    try:
        await exercise(store)
    finally:
        store.db._db.set_trace_callback(None)
    plans = {}
    for sql in {s for s in statements if s.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))}:
        rows = store.db.fetchall(f"EXPLAIN QUERY PLAN {sql}")
        plans[sql] = [row[-1] for row in rows]
    await store.close()
    scans = {sql: plan for sql, plan in plans.items()
             if any(step.startswith("SCAN") and "USING" not in step and "(subquery" not in step for step in plan)}
    assert plans and not scans, "\n".join(f"{sql}\n  -> {plan}" for sql, plan in scans.items())


async def exercise(store: Store) -> None:
    """Every store method the bridge calls, once."""
    for ts in ("1.000001", "2.000001"):
        await store.inbox.add_message(IncomingMessage(channel="C1", ts=ts, user="U1", text="hi"))
    await store.inbox.add_reset(ResetRequest(channel="C1", user="U1", key="k", order_ts="3.0"))
    pending = await store.inbox.pending("C1")
    await store.inbox.pending_count("C1")
    await store.inbox.channels_with_pending()
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
    store.prune()
