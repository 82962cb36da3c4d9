"""Splitting a long Markdown reply into Slack messages without breaking a code block."""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKDOWN_TEXT_LIMIT = 12_000  # chat.postMessage / chat.update `markdown_text`, in characters

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


@dataclass(frozen=True, slots=True)
class _Fence:
    marker: str  # "```" or "~~~~" …
    opening_line: str

    def closes(self, line: str) -> bool:
        match = _FENCE.match(line)
        return bool(match and match.group(1)[0] == self.marker[0]
                    and len(match.group(1)) >= len(self.marker) and not match.group(2).strip())


def open_fence_at_end(text: str, fence: _Fence | None = None) -> _Fence | None:
    """The code fence still open after `text` (given the one open before it), or None."""
    for line in text.split("\n"):
        if fence is None:
            match = _FENCE.match(line)
            if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                fence = _Fence(match.group(1), line.strip())
        elif fence.closes(line):
            fence = None
    return fence


def split_markdown(text: str, limit: int = MARKDOWN_TEXT_LIMIT) -> list[str]:
    """Split `text` into pieces of at most `limit` characters.

    Cuts at a paragraph break, else a line break, else a space, else anywhere. A code block cut in two
    is closed at the end of one piece and reopened (same fence and language) at the start of the next.
    Deterministic and prefix-stable: once the text is longer than a piece, that piece never changes
    as more text is appended, so a reply being written can be split as it grows.
    """
    if limit < 64:
        raise ValueError("limit too small to split Markdown safely")
    pieces: list[str] = []
    start = 0
    fence: _Fence | None = None
    while True:
        prefix = fence.opening_line + "\n" if fence else ""
        if len(prefix) + len(text) - start <= limit:
            pieces.append(prefix + text[start:])
            return pieces
        # Room for the reopened fence before and a closing fence after.
        budget = limit - len(prefix) - (len(fence.marker) + 1 if fence else 0) - 16
        cut = _cut_point(text, start, start + budget)
        body = text[start:cut]
        after = open_fence_at_end(body, fence)
        if after is not None and len(prefix) + len(body) + len(after.marker) + 1 > limit:
            cut = start + budget - len(after.marker) - 1
            body = text[start:cut]
            after = open_fence_at_end(body, fence)
        closing = ("" if body.endswith("\n") else "\n") + after.marker if after else ""
        pieces.append(prefix + body + closing)
        fence, start = after, cut


def _cut_point(text: str, start: int, end: int) -> int:
    """Where to end a piece that must end by `end`: after the last good break in its second half."""
    floor = start + (end - start) // 2
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, floor, end)
        if at != -1:
            return at + len(separator)
    return end
