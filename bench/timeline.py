"""Per-message timelines from the emulators' own records (one machine, one clock: time.time()).

- delivered: the Slack emulator's first Socket Mode delivery of the message's event (`attempts[0]["at"]`);
- acked: when the bridge's ack arrived (`Envelope.acked_at`) — the bridge acks after the inbox commit;
- model_received / model_done: the OpenAI emulator's `time_received` / `time_done` of the
  `POST /v1/responses` whose input carried the message (time_done: the SSE stream fully written);
- first_post: when the Slack emulator answered the `chat.postMessage` that created the reply's message
  (a working indicator or the first text of a live reply);
- answered: when the Slack emulator answered the write (`chat.postMessage` or `chat.update`) that made
  the message show the complete answer (the scripted model ends each answer with an end marker);
  `by_update` says which.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.world import REPLY_METHODS, World, final_text, tokens_in

_IDS = re.compile(r"/(conv|resp|msg|item)_[0-9A-Za-z]+")


@dataclass
class Trace:
    token: int
    delivered: float | None = None
    acked: float | None = None
    deliveries: int = 0
    model_received: float | None = None
    model_done: float | None = None
    first_post: float | None = None
    answered: float | None = None
    by_update: bool = False


@dataclass(frozen=True)
class Dist:
    """A distribution of durations, in milliseconds."""

    n: int
    p50: float
    p95: float
    max: float

    def __str__(self) -> str:
        if not self.n:
            return "n/a"
        return f"p50 {self.p50:7.2f} ms  p95 {self.p95:7.2f} ms  max {self.max:7.2f} ms  (n={self.n})"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (q in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q
    low, high = math.floor(k), math.ceil(k)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def dist(pairs: Iterable[tuple[float | None, float | None]]) -> Dist:
    """Durations end − start in ms, skipping pairs with a missing end."""
    values = [(end - start) * 1000 for start, end in pairs if start is not None and end is not None]
    if not values:
        return Dist(0, math.nan, math.nan, math.nan)
    return Dist(len(values), percentile(values, 0.5), percentile(values, 0.95), max(values))


def collect(world: World, tokens: Iterable[int]) -> dict[int, Trace]:
    """The timeline of each message carrying one of `tokens` (reads the emulators' full records once)."""
    traces = {token: Trace(token) for token in tokens}
    _from_envelopes(world, traces)
    _from_model(world, traces)
    _from_slack(world, traces)
    return traces


def _from_envelopes(world: World, traces: dict[int, Trace]) -> None:
    users = set(world.user_ids)
    for envelope in world.slack.envelopes("events_api"):
        event = envelope.event or {}
        if event.get("type") != "message" or event.get("subtype") not in (None, "file_share") \
                or event.get("user") not in users:
            continue
        for token in tokens_in(str(event.get("text", ""))):
            trace = traces.get(token)
            if trace is not None and envelope.attempts:
                trace.delivered = envelope.attempts[0]["at"]
                trace.acked = envelope.acked_at
                trace.deliveries = len(envelope.attempts)


def _from_model(world: World, traces: dict[int, Trace]) -> None:
    for request in world.openai.requests("/v1/responses"):
        if request.method != "POST" or request.path != "/v1/responses":
            continue
        for token in tokens_in(repr((request.json or {}).get("input"))):
            trace = traces.get(token)
            if trace is not None and trace.model_received is None:
                trace.model_received, trace.model_done = request.time_received, request.time_done


def _from_slack(world: World, traces: dict[int, Trace]) -> None:
    posted: dict[str, float] = {}  # ts of a message the bridge posted -> when
    for call in world.slack.calls():
        if call.method not in REPLY_METHODS or not call.ok:
            continue
        is_post = call.method == "chat.postMessage"
        if is_post:
            posted[str(call.response.get("ts"))] = call.time
        for token in tokens_in(final_text(call.args)):
            trace = traces.get(token)
            if trace is not None and trace.answered is None:
                trace.answered, trace.by_update = call.time, not is_post
                trace.first_post = call.time if is_post else posted.get(str(call.args.get("ts")))


# -- request counts ----------------------------------------------------------------------------------
def slack_calls(world: World, start: float, end: float) -> Counter[str]:
    """Slack Web API calls answered in [start, end], by method."""
    return Counter(c.method for c in world.slack.calls() if start <= c.time <= end)


def model_calls(world: World, start: float, end: float) -> Counter[str]:
    """OpenAI requests received in [start, end], by method and path (ids replaced by {id})."""
    return Counter(f"{r.method} {_IDS.sub('/{id}', r.path)}" for r in world.openai.requests()
                   if start <= r.time_received <= end)


def replies_in(world: World, start: float, end: float) -> tuple[int, int]:
    """Complete answers the Slack emulator received in [start, end]: (all, those written by chat.update)."""
    finals = [c.method for c in world.slack.calls() if c.method in REPLY_METHODS and c.ok
              and start <= c.time <= end and final_text(c.args)]
    return len(finals), finals.count("chat.update")


def per_message(counts: Counter[str], messages: int) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{name} {n / messages:.2f}" for name, n in counts.most_common())
    return f"{total / messages:.2f}  ({parts})" if messages else "n/a"


def window(traces: Iterable[Trace]) -> tuple[float, float]:
    """From the first delivery to the last answer (or the last thing seen)."""
    items = list(traces)
    starts = [t.delivered for t in items if t.delivered is not None]
    ends = [t.answered or t.model_done or t.delivered for t in items]
    return min(starts), max(e for e in ends if e is not None)
