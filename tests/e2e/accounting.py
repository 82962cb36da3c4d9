"""Where did every message go? Counts for the fault-injection suite, from the emulators' records.

- sent: messages people posted (the test's own list);
- acked: their events acknowledged by the bridge (Slack would not re-deliver them);
- delivered: present in the channel's conversation at the model (at least once) — the Conversations
  API's items, an Assistants thread's messages, or (Chat Completions) the history in the bridge's store;
- answered: present, and the model's answer to it (the next assistant message in the conversation)
  shown in the channel;
- duplicated: present in the conversations more than once, or its answer shown in more than one of the
  bot's messages in Slack;
- skipped: not delivered, but reported in the channel as skipped (only where a case expects it);
- lost: none of the above — acked and then forgotten.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.replies import bot_messages
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


@dataclass(frozen=True)
class Sent:
    channel: str
    ts: str
    speaker: str  # the name the model sees
    text: str

    @property
    def as_seen(self) -> str:
        return f"[{self.speaker}] {self.text}"

    def seen_in(self, stored: str) -> bool:
        """Is `stored` (a user message's text in a conversation) this message? A mention (`<@U…>`) reads
        as `@Name` there."""
        if "<@" not in self.text:
            return stored == self.as_seen
        pattern = "".join(".+?" if part.startswith("<@") else re.escape(part)
                          for part in re.split(r"(<@[A-Z0-9]+>)", self.as_seen))
        return re.fullmatch(pattern, stored) is not None


@dataclass
class Tally:
    case: str
    sent: int = 0
    acked: int = 0
    delivered: int = 0
    answered: int = 0
    duplicated: int = 0
    skipped: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)

    HEADER = ("case", "sent", "acked", "to model", "answered", "duplicated", "skipped", "lost")

    def row(self) -> tuple[str, ...]:
        return (self.case, *(str(v) for v in (self.sent, self.acked, self.delivered, self.answered,
                                              self.duplicated, self.skipped, self.lost)))


def tally(case: str, slack: SlackEmulator, model_api: OpenAIEmulator, sent: list[Sent],
          store: Path | None = None) -> Tally:
    """`store`: the bridge's SQLite database, where the chat backend keeps each channel's history."""
    result = Tally(case, sent=len(sent))
    acked_ts = {e.event.get("ts") for e in slack.envelopes("events_api")
                if e.acked_at is not None and e.event and e.event.get("type") == "message"}
    answers = _answers(model_api, store)
    shown: dict[str, list[str]] = {}
    for channel in {s.channel for s in sent}:
        shown[channel] = [m["text"] for m in bot_messages(slack, channel, "all")]
    for message in sent:
        result.acked += message.ts in acked_ts
        mine = [answer for text, answer in answers if message.seen_in(text)]
        if mine:
            result.delivered += 1
            answer = mine[0].strip()
            showing = sum(answer in text for text in shown[message.channel]) if answer else 0
            if len(mine) > 1 or showing > 1:
                result.duplicated += 1
                result.notes.append(f"doubled: {message.text!r} {len(mine)}x in the conversation, "
                                    f"its answer in {showing} Slack messages")
            result.answered += showing > 0
        elif _reported_skipped(slack, message):
            result.skipped += 1
        else:
            result.lost += 1
            result.notes.append(f"lost: {message.channel} {message.ts} {message.text!r}")
    return result


def _answers(model_api: OpenAIEmulator, store: Path | None) -> list[tuple[str, str]]:
    """(user message text, the text of the next assistant message after it, or "") per user message of
    every stored conversation."""
    found = []
    for messages in _stored_conversations(model_api, store):
        for index, (role, text) in enumerate(messages):
            if role == "user":
                # (an assistant message without text is a tool call's: the answer comes after its result)
                answer = next((said for who, said in messages[index + 1:] if who == "assistant" and said), "")
                found.append((text, answer))
    return found


def _stored_conversations(model_api: OpenAIEmulator, store: Path | None) -> list[list[tuple[str, str]]]:
    """Every conversation the model service (or, for Chat Completions, the bridge) keeps, as (role, text)."""
    conversations = [[(item.get("role", ""), _text(item.get("content"))) for item in items
                      if item.get("type") == "message"] for items in model_api.conversations.values()]
    conversations += [[(m["role"], _text(m["content"])) for m in messages] for messages in model_api.threads.values()]
    if store is not None and store.exists():
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT conversation_id, message FROM chat_messages ORDER BY id").fetchall()
        by_conversation: dict[str, list[tuple[str, str]]] = {}
        for conversation, raw in rows:
            message = json.loads(raw)
            by_conversation.setdefault(conversation, []).append((message.get("role", ""),
                                                                 _text(message.get("content"))))
        conversations += by_conversation.values()
    return conversations


def _text(content: object) -> str:
    """A message's text: a string, or its parts' text (Responses: `text`; Assistants: `text.value`)."""
    if isinstance(content, str):
        return content
    texts = []
    for part in content or ():  # type: ignore[attr-defined]
        text = part.get("text", "") if isinstance(part, dict) else ""
        texts.append(text.get("value", "") if isinstance(text, dict) else text)
    return "".join(texts)


def _reported_skipped(slack: SlackEmulator, message: Sent) -> bool:
    return any("skipped" in m["text"] for m in bot_messages(slack, message.channel))


def table(rows: list[Tally]) -> str:
    cells = [Tally.HEADER, *(r.row() for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(Tally.HEADER))]
    lines = ["  ".join(value.ljust(width) if i == 0 else value.rjust(width)
                       for i, (value, width) in enumerate(zip(row, widths, strict=True))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
