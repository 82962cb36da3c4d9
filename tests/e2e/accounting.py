"""Where did every message go? Counts for the fault-injection suite, from the emulators' records.

- sent: messages people posted (the test's own list);
- acked: their events acknowledged by the bridge (Slack would not re-deliver them);
- delivered: present in the channel's conversation at the model (at least once);
- answered: present, and the model's answer to it (the next assistant message in the conversation)
  shown in the channel;
- duplicated: present in the conversations more than once;
- skipped: not delivered, but reported in the channel as skipped (only where a case expects it);
- lost: none of the above — acked and then forgotten.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

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


def tally(case: str, slack: SlackEmulator, model_api: OpenAIEmulator, sent: list[Sent]) -> Tally:
    result = Tally(case, sent=len(sent))
    acked_ts = {e.event.get("ts") for e in slack.envelopes("events_api")
                if e.acked_at is not None and e.event and e.event.get("type") == "message"}
    answers = _answers(model_api)
    in_conversations = Counter(text for text, _ in answers)
    shown: dict[str, str] = {}
    for channel in {s.channel for s in sent}:
        shown[channel] = "\n".join(m["text"] for m in bot_messages(slack, channel))
    for message in sent:
        result.acked += message.ts in acked_ts
        count = in_conversations[message.as_seen]
        if count:
            result.delivered += 1
            result.duplicated += count > 1
            answer = next(a for text, a in answers if text == message.as_seen)
            result.answered += bool(answer) and answer.strip() in shown[message.channel]
        elif _reported_skipped(slack, message):
            result.skipped += 1
        else:
            result.lost += 1
            result.notes.append(f"lost: {message.channel} {message.ts} {message.text!r}")
    return result


def _answers(model_api: OpenAIEmulator) -> list[tuple[str, str]]:
    """(user message text, the text of the next assistant message after it, or "") per user message."""
    found = []
    for items in model_api.conversations.values():
        for index, item in enumerate(items):
            if item.get("type") == "message" and item.get("role") == "user":
                after = (i for i in items[index + 1:] if i.get("type") == "message" and i.get("role") == "assistant")
                answer = next(after, None)
                text = "".join(p.get("text", "") for p in answer.get("content") or ()) if answer else ""
                found.extend((part.get("text", ""), text) for part in item.get("content") or ())
    return found


def _reported_skipped(slack: SlackEmulator, message: Sent) -> bool:
    return any("skipped" in m["text"] for m in bot_messages(slack, message.channel))


def table(rows: list[Tally]) -> str:
    cells = [Tally.HEADER, *(r.row() for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(Tally.HEADER))]
    lines = ["  ".join(value.ljust(width) if i == 0 else value.rjust(width)
                       for i, (value, width) in enumerate(zip(row, widths, strict=True))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
