"""Memory with many channels known: one message in each of N channels through one bridge process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.procstat import Usage
from bench.report import Section, add_cpu
from bench.scenarios import health_row
from bench.timeline import model_calls, per_message, slack_calls
from bench.world import Setup, World

RSS_TARGET_MB = 200.0
TARGET_CHANNELS = 10_000


@dataclass
class Outcome:
    idle_rss: float
    early: int  # channels known at the early reading
    early_rss: float
    known_rss: float  # once every channel's message reached the model
    known_after: float  # seconds from the first message
    final_rss: float
    hwm: float
    answered: int
    drained_after: float
    usage: Usage
    counts: tuple[dict[str, int], dict[str, int]]
    database_mb: float
    violations: list[str]


def many_channels(setup: Setup, count: int, window: int, drain: float) -> Section:
    section = Section(f"Memory with {count:,} channels known: one message in each of {count:,} channels")
    with World(count, setup) as world:
        outcome = _drive(world, count, window, drain)
    _rows(section, outcome, count)
    health_row(section, world.health, outcome.violations)
    section.note(f"Each of {count:,} channels gets exactly one message, so the bridge creates its conversation, "
                 f"caches its channel info and keeps its reply pacer; the driver keeps at most {window} messages "
                 "waiting for the model, so this measures memory, not queueing. RSS is VmRSS from "
                 "/proc/<pid>/status, read once every message has reached the model (every channel known), then "
                 f"again once every answer is in Slack or after {drain:.0f} s more, whichever is first. Growth per "
                 "channel = (RSS with all known − RSS idle) / channels, and after the first tenth (at most 1,000; "
                 "the first turns also load code and fill caches and pools once). CPython rarely returns freed "
                 "memory to the OS, so RSS includes the high-water mark of transient buffers.")
    return section


def _drive(world: World, count: int, window: int, drain: float) -> Outcome:
    idle_rss, _ = world.meter.memory()
    before, start, first = world.meter.snapshot(), time.time(), time.monotonic()
    tokens = list(range(count))  # channel number == token
    early, early_rss = max(1, min(count // 10, 1000)), 0.0
    for token in tokens:
        if token % 10 == 0:
            world.wait(lambda t=token: t - len(world.at_model()) < window, world.setup.timeout,
                       "the model to catch up", 0.01)
        if not early_rss and len(world.at_model()) >= early:
            early, early_rss = len(world.at_model()), world.meter.memory()[0]
        world.say(token, token)
    if not early_rss:  # fewer channels than the window: the early reading is the idle one
        early, early_rss = 0, idle_rss
    world.wait(lambda: len(world.at_model()) >= count, world.setup.timeout, f"{count} messages at the model", 0.1,
               lambda: f"{len(world.at_model())} there so far")
    known_after, known_rss = time.monotonic() - first, world.meter.memory()[0]
    world.wait_all(tokens, limit=drain, interval=1.0)  # answers still queued then are reported, not awaited
    drained_after = time.monotonic() - first
    usage, end = world.meter.usage(before, world.meter.snapshot()), time.time()
    final_rss, hwm = world.meter.memory()
    return Outcome(idle_rss=idle_rss, early=early, early_rss=early_rss, known_rss=known_rss,
                   known_after=known_after, final_rss=final_rss, hwm=hwm,
                   answered=len(world.answered() & set(tokens)), drained_after=drained_after, usage=usage,
                   counts=(model_calls(world, start, end), slack_calls(world, start, end)),
                   database_mb=_size_mb(world.workdir), violations=world.violations())


def _rows(section: Section, o: Outcome, count: int) -> None:
    growth_kb = (o.known_rss - o.idle_rss) * 1024 / count
    marginal_kb = (o.known_rss - o.early_rss) * 1024 / max(count - o.early, 1)
    conversations = o.counts[0].get("POST /v1/conversations", 0)
    section.add("channels known (conversations created)", f"{conversations:,}  (all at the model after "
                f"{o.known_after:.1f} s: {count / o.known_after:,.0f} first messages/s)")
    section.add("bridge RSS after start-up (idle)", f"{o.idle_rss:.1f} MB")
    section.add(f"bridge RSS with {count:,} channels known", f"{o.known_rss:.1f} MB",
                f"{TARGET_CHANNELS:,} channels known in < {RSS_TARGET_MB:.0f} MB RSS",
                o.known_rss < RSS_TARGET_MB if count >= TARGET_CHANNELS else None)
    section.add("RSS growth per channel", f"{growth_kb:.2f} kB on average; {marginal_kb:.2f} kB per channel "
                f"after the first {o.early:,} ({o.early_rss:.1f} MB then)")
    if count < TARGET_CHANNELS:
        estimate = o.early_rss + marginal_kb * (TARGET_CHANNELS - o.early) / 1024
        section.add(f"estimate for {TARGET_CHANNELS:,} channels", f"{estimate:.1f} MB  (RSS after the first "
                    f"{o.early:,} + the per-channel growth after them; only a full run measures it)")
    section.add("answers in Slack", f"{o.answered:,} of {count:,} after {o.drained_after:.1f} s; RSS then "
                f"{o.final_rss:.1f} MB, peak (VmHWM) {o.hwm:.1f} MB")
    section.add("SQLite database on disk (with WAL)", f"{o.database_mb:.1f} MB")
    section.add("model requests per user message", per_message(o.counts[0], count))  # type: ignore[arg-type]
    section.add("Slack API calls per user message", per_message(o.counts[1], count))  # type: ignore[arg-type]
    add_cpu(section, o.usage, count)


def _size_mb(workdir: Path) -> float:
    return sum(p.stat().st_size for p in workdir.glob("bridge.sqlite3*")) / 2**20
