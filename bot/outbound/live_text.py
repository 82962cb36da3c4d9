"""What a live reply has to show, and when: the text so far, a status line, the final text."""

from __future__ import annotations

import asyncio
import contextlib

from bot.outbound.formatting import open_fence_at_end

WORKING_TEXT = "_Thinking…_"
CUT_OFF_NOTE = "_…the answer was cut off here._"
INDICATOR_DELAY = 0.5  # post a working indicator if the model has written nothing by then


class LiveText:
    """What a reply has to show, and the signal that it changed."""

    def __init__(self) -> None:
        self.text = ""
        self.status: str | None = None
        self.final: str | None = None
        self.changed = asyncio.Event()
        self.ended = asyncio.Event()

    def feed(self, delta: str) -> None:
        if delta:
            self.text += delta
            self.status = None
            self.changed.set()

    def set_status(self, status: str | None) -> None:
        self.status = status
        self.changed.set()

    def end(self, final: str) -> None:
        self.final = final
        self.changed.set()
        self.ended.set()

    async def pause(self, seconds: float) -> None:
        """Let text gather for `seconds` (the pacing of progress writes); the end cuts it short."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.ended.wait()

    async def wait(self, seconds: float) -> None:
        """Until the text changes, or `seconds` pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.changed.wait()


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Stop a reply's writer task; a failure it already had is not news any more."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def balanced(markdown: str) -> str:
    """Close a code block left open at the end, so a partial text renders as Markdown."""
    fence = open_fence_at_end(markdown)
    if fence is None:
        return markdown
    return markdown + ("" if markdown.endswith("\n") else "\n") + fence.marker


def failure_text(partial: str, note: str) -> str:
    """What a failed reply ends with: the text so far (marked as cut off), then `note`."""
    return f"{balanced(partial)}\n\n{CUT_OFF_NOTE}\n\n{note}" if partial.strip() else note
