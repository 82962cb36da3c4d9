"""Throughput through one bridge process: a burst of messages at once, and a sustained rate."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.procstat import Usage
from bench.report import Section, add_cpu, add_memory
from bench.scenarios import CLOCK_NOTE, count_rows, health_row, inject, overhead_rows
from bench.timeline import Trace, collect, dist, model_calls, replies_in, slack_calls
from bench.world import Setup, World

THROUGHPUT_TARGET = 300.0  # messages per second through one process across 100 channels


@dataclass
class Loaded:
    """What one loaded run left behind (read from the emulators before they stopped)."""

    traces: list[Trace]
    injection_rate: float
    complete: bool
    drain: float
    usage: Usage
    counts: tuple[dict[str, int], dict[str, int]]
    replies: tuple[int, int]
    memory: tuple[float, float]
    violations: list[str]
    health: str = ""

    @property
    def answered(self) -> list[Trace]:
        return [t for t in self.traces if t.answered is not None]

    @property
    def first(self) -> float:
        return min(t.delivered for t in self.traces if t.delivered is not None)


def run_loaded(setup: Setup, channels: int, messages: int, rate: float | None, drain: float, *,
               env: dict[str, str] | None = None, replicas: int = 1) -> Loaded:
    """Warm every channel, send `messages` round-robin (at once, or at `rate`), wait for the answers
    for at most `drain` seconds after the last one was sent (`replicas` bridges sharing `env`'s database)."""
    with World(channels, setup, env=env, replicas=replicas) as world:
        world.warm_up(range(channels), 0)
        tokens = list(range(channels, channels + messages))
        before, start = world.meter.snapshot(), time.time()
        injection_rate = inject(world, tokens, channels, rate)
        complete = world.wait_all(tokens, limit=drain)
        usage, end = world.meter.usage(before, world.meter.snapshot()), time.time()
        loaded = Loaded(traces=list(collect(world, tokens).values()), injection_rate=injection_rate,
                        complete=complete, drain=drain, usage=usage,
                        counts=(model_calls(world, start, end), slack_calls(world, start, end)),
                        replies=replies_in(world, start, end), memory=world.meter.memory(),
                        violations=world.violations())
    loaded.health = world.health
    return loaded


def burst(setup: Setup, messages: int, channels: int, drain: float) -> Section:
    section = Section(f"Throughput, burst: {messages} messages injected at once, round-robin over {channels} "
                      "warmed channels")
    run = run_loaded(setup, channels, messages, None, drain)
    answered = run.answered
    elapsed = max(t.answered for t in answered) - run.first if answered else float("nan")
    section.add("injection rate (the driver, not the bridge)", f"{run.injection_rate:,.0f} messages/s")
    section.add("time until every message was answered", f"{elapsed:.2f} s" if run.complete else
                f"not within {drain:.0f} s after the last was sent: {len(answered)} of {messages} answered")
    section.add("messages answered per second", f"{len(answered) / elapsed:,.0f} /s  ({len(answered)} answers)",
                f"≥ {THROUGHPUT_TARGET:.0f} messages/s through one process across 100 channels",
                len(answered) / elapsed >= THROUGHPUT_TARGET)
    at_model = [t.model_received for t in run.traces if t.model_received is not None]
    reached = max(at_model) - run.first
    section.add("messages at the model per second", f"{len(at_model) / reached:,.0f} /s  ({len(at_model)} there, "
                f"the last after {reached:.2f} s)")
    section.add("replies delivered per second", f"{run.replies[0] / elapsed:,.0f} /s  ({run.replies[0]} replies: "
                f"{len(answered) / max(run.replies[0], 1):.1f} messages per reply; {run.replies[1]} completed "
                "by chat.update)")
    cpu = run.usage.bridge_cpu
    section.add("messages per second per core (answered / the bridge's CPU seconds)",
                f"{len(answered) / cpu:,.0f} /s per core  ({cpu:.2f} CPU s for {len(answered)} messages)"
                if cpu > 0 else "n/a")
    _common_rows(section, run, messages)
    section.note("Messages per core: what one core of the bridge answers per second in such a burst when nothing "
                 "else competes for it — to size replicas, divide the expected peak rate by it (the machine's "
                 "other core runs both emulators here, so the wall-clock rate above is lower).")
    section.note("Rates are over the window from the first message's delivery to the last answer. Messages that "
                 "arrive while a channel's turn runs are answered together in its next turn, so a burst needs "
                 "fewer model requests and replies than messages.")
    return section


def sustained(setup: Setup, rate: float, seconds: float, channels: int, drain: float) -> Section:
    total = max(1, int(rate * seconds))
    section = Section(f"Throughput, sustained: {total} messages at {rate:.0f}/s for {seconds:g} s, round-robin "
                      f"over {channels} warmed channels")
    run = run_loaded(setup, channels, total, rate, drain)
    last_sent = max(t.delivered or 0 for t in run.traces)
    backlog = max((t.answered for t in run.answered), default=last_sent) - last_sent
    kept_up = run.complete and run.injection_rate >= THROUGHPUT_TARGET * 0.98 and backlog < 1.0
    section.add("offered rate (achieved by the driver)", f"{run.injection_rate:,.0f} messages/s")
    section.add("backlog after the last message", f"cleared {backlog * 1000:.0f} ms after it was delivered"
                if run.complete else f"not cleared within {drain:.0f} s: {len(run.answered)} of {total} answered",
                f"keep up with {THROUGHPUT_TARGET:.0f} messages/s (backlog gone < 1 s after the last message)",
                kept_up)
    overhead_rows(section, run.traces, target=False)
    _common_rows(section, run, total, end_to_end=False)
    section.note("The driver paces messages at the given rate (time.sleep to each due time). If the bridge keeps "
                 "up, each message is answered within a turn's latency and the backlog is gone right after the "
                 "last one; if not, the backlog grows for the whole run. Figures under load are queueing plus "
                 "overhead.")
    return section


def _common_rows(section: Section, run: Loaded, messages: int, *, end_to_end: bool = True) -> None:
    if end_to_end:  # (the sustained run has it among the overhead rows)
        section.add("end to end: event delivered → answer in Slack",
                    str(dist((t.delivered, t.answered) for t in run.traces)))
    section.add("event → ack under load", str(dist((t.delivered, t.acked) for t in run.traces)))
    redelivered = sum(1 for t in run.traces if t.deliveries > 1)
    section.add("events re-delivered (ack later than 3 s)", f"{redelivered}", "0", redelivered == 0)
    count_rows(section, *run.counts, messages)
    add_cpu(section, run.usage, messages)
    add_memory(section, *run.memory)
    health_row(section, run.health, run.violations)
    section.note(CLOCK_NOTE)
    if not run.complete:
        section.note(f"Not every message was answered within --drain {run.drain:g} s after the last was sent; "
                     "latencies cover the answered ones, rates the window up to the last answer.")
