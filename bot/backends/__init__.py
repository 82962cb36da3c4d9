"""Model backends: one class per API shape, all behind the `Backend` protocol."""

from bot.backends.base import (
    Backend,
    BackendError,
    FailureKind,
    TextDelta,
    TextDone,
    TurnCompleted,
    TurnEvent,
    TurnRequest,
)

__all__ = ["Backend", "BackendError", "FailureKind", "TextDelta", "TextDone", "TurnCompleted", "TurnEvent",
           "TurnRequest"]
