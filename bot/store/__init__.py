"""The durable store: the inbox, the turn journal, the channel → conversation map and the chat
backend's history, behind one database connection with numbered migrations."""

from bot.store.store import ChatRecord, OpenTurn, Store, StoreInUse

__all__ = ["ChatRecord", "OpenTurn", "Store", "StoreInUse"]
