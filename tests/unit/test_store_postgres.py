"""What only PostgreSQL does: several replicas opening one database at once, its schema bookkeeping,
and every store query served by an index. (The store's behaviour on it is in test_store.py, which runs
on both databases.)"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bot.store import Store
from bot.store.migrations import MIGRATIONS


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(postgres_url) for _ in range(3)))
    try:
        versions = await stores[0].db.fetchall("SELECT version FROM schema_version ORDER BY version")
        assert versions == [(n,) for n in range(1, len(MIGRATIONS) + 1)]
        assert await stores[1].inbox.pending("C1") == []  # every one of them works
    finally:
        for store in stores:
            await store.close()
    again = await Store.open(postgres_url)  # an upgraded database opens as it is
    try:
        assert len(await again.db.fetchall("SELECT version FROM schema_version")) == len(MIGRATIONS)
    finally:
        await again.close()


async def test_newer_schema_refused(postgres_url: str) -> None:
    store = await Store.open(postgres_url)
    await store.db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    await store.close()
    with pytest.raises(RuntimeError, match="newer version"):
        await Store.open(postgres_url)


async def test_a_failed_transaction_leaves_nothing(postgres_url: str) -> None:
    store = await Store.open(postgres_url)
    try:
        with pytest.raises(asyncpg.UniqueViolationError):
            async with store.db.transaction():
                await store.conversations.set_conversation("C1", "responses", "conv_1")
                await store.db.execute("INSERT INTO schema_version (version) VALUES (1)")  # already there
        assert await store.conversations.conversation("C1", "responses") is None
    finally:
        await store.close()
