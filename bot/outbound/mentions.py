"""Broadcast mentions in the model's replies, made harmless.

`<!channel>`, `<!here>`, `<!everyone>` and `<!subteam^ID>` in a message notify a whole channel or a user
group; so can the plain words `@channel`, `@here` and `@everyone`. A reply must never do that on the
model's say-so (it may be repeating what a channel message told it to write). Each is rewritten to read
the same — "@channel", "@devs" — with an invisible word joiner after the "@", which Slack does not take
for a mention. `MentionGuard` does the same to a reply streamed in pieces: it holds back the end of a
piece that could still become a mention, so a mention split across pieces is caught too, and the pieces
it lets through always add up to `escape_broadcasts` of the whole text.
"""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"  # invisible and zero-width: "@\u2060channel" shows as "@channel" but notifies nobody
BROADCASTS = ("channel", "here", "everyone")
_MENTION = re.compile(r"<!([^<>\n]*)>|@(channel|here|everyone)", re.IGNORECASE)
_OPEN_TOKEN = re.compile(r"<(![^<>\n]*)?$")  # a `<!…` not closed yet at the end of the text
_OPEN_WORD = re.compile(r"@[A-Za-z]{0,7}$")


def _rewrite(match: re.Match[str]) -> str:
    body, word = match.group(1), match.group(2)
    if word is not None:
        return "@" + WORD_JOINER + word
    target, _, label = body.partition("|")
    if target.lower() in BROADCASTS:
        return "@" + WORD_JOINER + (label.lstrip("@") or target)
    if target.startswith("subteam^"):
        return "@" + WORD_JOINER + (label.lstrip("@") or target.removeprefix("subteam^"))
    return match.group(0)  # <!date^…> and other special tokens notify nobody


def escape_broadcasts(text: str) -> str:
    """`text` with every broadcast and user-group mention made harmless (see the module docstring)."""
    return _MENTION.sub(_rewrite, text) if ("<!" in text or "@" in text) else text


def _hold_from(text: str) -> int:
    """Where the tail that could still grow into a mention begins (len(text) if there is none)."""
    cut = len(text)
    token = _OPEN_TOKEN.search(text)
    if token is not None:
        cut = token.start()
    word = _OPEN_WORD.search(text)
    if word is not None and any(b.startswith(word.group(0)[1:].lower()) for b in BROADCASTS):
        cut = min(cut, word.start())
    return cut


class MentionGuard:
    """`escape_broadcasts` for text that arrives in pieces."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        """What of the text so far can be shown now, escaped; the rest waits for the next piece."""
        text = self._held + piece
        cut = _hold_from(text)
        self._held = text[cut:]
        return escape_broadcasts(text[:cut])

    def flush(self) -> str:
        """The held tail (the text is complete)."""
        text, self._held = self._held, ""
        return escape_broadcasts(text)
