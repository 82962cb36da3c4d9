"""Live replies under Slack's real rate limits: rounds of replies streaming at once, per reply mode.

For each mode (`BRIDGE_REPLY_IN=channel`, then `thread`) a fresh world: the Slack emulator with its real
tier limits on, a scripted model that streams at a human pace, `channels` channels, and rounds of one
message per channel sent at once (the next round once every reply of this one shows the model's whole
text). Each reply is traced through the emulators' records: the model's first text delta, the first
Slack write for it (an indicator or text), the first one that made text of it visible, and the first
one after which the model's whole text was visible (the final text: an edit, a new message replacing
the partial one, or the stop of a native stream).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bench.procstat import Usage
from bench.timeline import collect, slack_calls
from bench.world import END, Setup, World, token_text, tokens_in
from bot.outbound.replies import WORKING_TEXT
from tests.emulators.openai import ModelRequest, ScriptedModel
from tests.emulators.openai.model import default_reply, fit_length
from tests.emulators.slack.web_api import Call

MODES = ("channel", "thread")
FIRST_TEXT_TARGET_MS = {"channel": 1000.0, "thread": 300.0}
FINAL_TEXT_TARGET_MS = {"p95": 2000.0, "max": 4000.0}  # model done → final text, with ten replies at once
STARTS = ("chat.postMessage", "chat.startStream")  # writes that create a message: its ts is in the answer
WRITES = (*STARTS, "chat.update", "chat.appendStream", "chat.stopStream", "chat.delete")


@dataclass(frozen=True)
class LiveSetup:
    rounds: int = 5
    channels: int = 10
    wide: int = 20  # then the same with this many channels at once (0: not run)
    ttft: float = 0.3
    chunk_delay: float = 0.04  # 3,000 characters in 20-character chunks: six seconds of streaming
    chunk_size: int = 20
    reply_length: int = 3000
    timeout: float = 900.0
    modes: tuple[str, ...] = MODES


class TimedModel(ScriptedModel):
    """The scripted model, noting when it hands the emulator the first text delta of each answer (the
    emulator writes that delta to the response stream right after)."""

    def __init__(self, **knobs: float | int) -> None:
        super().__init__(**knobs)  # type: ignore[arg-type]
        self.first_delta: dict[str, float] = {}  # answer text -> time.time() of its first delta

    async def stream(self, text: str) -> AsyncIterator[str]:
        first = True
        async for piece in super().stream(text):
            if first:
                self.first_delta.setdefault(text, time.time())
                first = False
            yield piece


def live_reply(request: ModelRequest, length: int) -> str:
    """The usual echo (it carries the message's token), padded with filler to `length`, plus the end marker."""
    heard = default_reply(request)
    return f"{fit_length(heard, max(length - len(END) - 1, len(heard)))} {END}"


@dataclass
class LiveTrace:
    """One reply: what the emulators recorded for it (time.time() readings)."""

    token: int
    round: int
    delivered: float | None = None  # the user's message delivered to the bridge (Socket Mode)
    model_received: float | None = None
    model_done: float | None = None
    first_token: float | None = None  # the model's first text delta
    first_write: float | None = None  # the first Slack write for the reply (indicator or text)
    first_write_text: str = ""
    first_text: float | None = None  # the first Slack write that made text of the reply visible
    first_text_method: str = ""
    final_text: float | None = None  # the first Slack write after which the model's whole text showed
    complete: float | None = None  # the reply's last Slack write (a replaced partial's delete included)
    replaced: bool = False  # the final text went out as a new message (the partial one deleted)
    messages: int = 0  # Slack messages the reply used
    exact: bool = False  # the reply ended showing exactly the model's text


@dataclass
class ModeRun:
    mode: str
    traces: list[LiveTrace]
    round_seconds: list[float]
    calls: Counter[str]
    throttled: Counter[str]  # 429 answers by method
    usage: Usage
    violations: list[str]
    health: str = ""
    ttft: float = 0.0


def run_mode(setup: LiveSetup, mode: str, channels: int | None = None) -> ModeRun:
    channels = channels or setup.channels
    model = TimedModel(ttft=setup.ttft, chunk_size=setup.chunk_size, chunk_delay=setup.chunk_delay)
    model.reply_fn = lambda request: live_reply(request, setup.reply_length)
    world_setup = Setup(ttft=setup.ttft, chunk_delay=setup.chunk_delay, timeout=setup.timeout)
    with World(channels, world_setup, rate_limits="real", env={"BRIDGE_REPLY_IN": mode},
               model=model) as world:
        before, start = world.meter.snapshot(), time.time()
        rounds = [_round(world, index, mode) for index in range(setup.rounds)]
        usage, end = world.meter.usage(before, world.meter.snapshot()), time.time()
        calls = [c for c in world.slack.calls() if start <= c.time <= end]
        traces = _traces(world, model, [tokens for tokens, _ in rounds], calls)
        run = ModeRun(mode=mode, traces=traces, round_seconds=[seconds for _, seconds in rounds],
                      calls=slack_calls(world, start, end),
                      throttled=Counter(c.method for c in calls if c.status == 429),
                      usage=usage, violations=world.violations(), ttft=setup.ttft)
    run.health = world.health
    return run


def _round(world: World, index: int, mode: str) -> tuple[list[int], float]:
    """One message in every channel at once; wait until every reply shows a whole answer."""
    channels = world.channel_count
    tokens = [index * channels + channel for channel in range(channels)]
    began = time.monotonic()
    for channel, token in enumerate(tokens):
        world.say(channel, token)
    done: set[int] = set()

    def all_done() -> bool:
        done.update(t for c, t in enumerate(tokens) if t not in done and _reply_text(world, c, t) is not None)
        return len(done) == len(tokens)

    world.wait(all_done, world.setup.timeout, f"{mode} mode, round {index + 1}: {channels} replies to end "
               "with a whole answer", 0.05, lambda: f"{len(done)} of {channels} done so far")
    return tokens, time.monotonic() - began


def _reply_text(world: World, channel: int, token: int) -> str | None:
    """The text of the bot's message answering `token` once it holds a whole answer (ends with the end
    marker and is no longer streaming), else None."""
    wanted = token_text(token)
    for message in world.slack.messages(world.channel_ids[channel], "all"):
        text = str(message.get("markdown_text") or message.get("text") or "")
        if (message.get("bot_id") == world.slack.bot_id and wanted in text and text.rstrip().endswith(END)
                and not message.get("streaming")):
            return text
    return None


def _traces(world: World, model: TimedModel, rounds: list[list[int]], calls: list[Call]) -> list[LiveTrace]:
    tokens = [token for tokens in rounds for token in tokens]
    timelines = collect(world, tokens)
    firsts = {token: at for text, at in model.first_delta.items() for token in tokens_in(text)[:1]}
    answers = {token: seen.reply.text for seen in model.seen for token in tokens_in(repr(seen.input))}
    writes = _writes_by_token(calls)
    traces = []
    for index, round_tokens in enumerate(rounds):
        for channel, token in enumerate(round_tokens):
            timeline = timelines[token]
            trace = LiveTrace(token, index + 1, timeline.delivered, timeline.model_received, timeline.model_done,
                              firsts.get(token))
            _from_writes(trace, writes.get(token, []))
            trace.exact = answers.get(token) is not None and _reply_text(world, channel, token) == answers[token]
            traces.append(trace)
    return traces


def _text(call: Call) -> str:
    return str(call.args.get("markdown_text") or call.args.get("text") or "")


def _writes_by_token(calls: list[Call]) -> dict[int, list[Call]]:
    """The successful writes of each reply: grouped by message (channel, ts), messages of one reply joined
    by the turn their metadata carries (a final posted anew carries the partial message's), and a reply
    known by the token its text carries (an indicator or the first words may not carry it yet; later
    writes do)."""
    messages: dict[tuple[str, str], list[Call]] = {}
    for call in calls:
        if call.method in WRITES and call.ok:
            ts = call.response.get("ts") if call.method in STARTS else call.args.get("ts")
            messages.setdefault((str(call.args.get("channel")), str(ts)), []).append(call)
    replies: dict[object, list[Call]] = {}
    for key, writes in messages.items():
        turns = [_turn_of(c) for c in writes if _turn_of(c)]
        replies.setdefault((key[0], turns[0]) if turns else key, []).extend(writes)
    by_token: dict[int, list[Call]] = {}
    for writes in replies.values():
        for token in tokens_in(" ".join(_text(c) for c in writes))[:1]:
            by_token.setdefault(token, []).extend(writes)
    for writes in by_token.values():
        writes.sort(key=lambda c: c.time)
    return by_token


def _turn_of(call: Call) -> str | None:
    """The turn a reply message's metadata names (see bot/outbound/posted.py), if the call carries it."""
    metadata = call.args.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return None
    payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
    return str(payload.get("turn")) if isinstance(payload, dict) and payload.get("turn") else None


def _from_writes(trace: LiveTrace, writes: list[Call]) -> None:
    if not writes:
        return
    trace.first_write, trace.first_write_text = writes[0].time, _text(writes[0]).strip()
    trace.complete = writes[-1].time
    trace.messages = sum(1 for c in writes if c.method in STARTS) - sum(1 for c in writes if c.method == "chat.delete")
    # The answer ends with the end marker: the first write carrying it made the whole text visible (an edit
    # or post holds the whole text; a stream's last append or stop adds its end).
    final = next((c for c in writes if c.method != "chat.delete" and END in _text(c)), None)
    if final is not None:
        trace.final_text = final.time
        trace.replaced = final.method == "chat.postMessage" and any(c.method == "chat.delete" for c in writes)
    for call in writes:
        text = _text(call).strip()
        if text and text != WORKING_TEXT:
            trace.first_text, trace.first_text_method = call.time, call.method
            return
