"""What the bridge learned about a model server (today: that a model refuses images), kept across restarts."""

from __future__ import annotations

import time

from bot.store.database import Database


class ModelFacts:
    """Facts by key (`vision:<backend>:<server>:<model>` → `refused`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def fact(self, key: str) -> str | None:
        row = await self._db.fetchone("SELECT value FROM model_facts WHERE fact_key = ?", (key,))
        return row[0] if row else None

    async def remember(self, key: str, value: str) -> None:
        await self._db.execute(
            "INSERT INTO model_facts (fact_key, value, learned_at) VALUES (?, ?, ?)"
            " ON CONFLICT (fact_key) DO UPDATE SET value = excluded.value, learned_at = excluded.learned_at",
            (key, value, time.time()))
