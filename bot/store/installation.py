"""Facts about this installation kept in its database: the salt of the safety_identifier, created
once at random (every replica on a shared database reads the same one)."""

from __future__ import annotations

import secrets

from bot.store.database import Database

SALT = "safety_identifier_salt"
SALT_BYTES = 32


async def installation_salt(db: Database) -> str:
    """This installation's salt, created the first time it is asked for (the first writer wins)."""
    await db.execute("INSERT INTO installation (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
               (SALT, secrets.token_hex(SALT_BYTES)))
    row = await db.fetchone("SELECT value FROM installation WHERE name = ?", (SALT,))
    assert row is not None
    return str(row[0])
