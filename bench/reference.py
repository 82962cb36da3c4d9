"""Overhead as a ratio to a minimal app on the same libraries and emulators, measured in the same run.

The bridge and `bench/minimal_app.py` (Bolt over Socket Mode → the OpenAI SDK's streamed Responses call →
`chat.postMessage`, nothing else) each get a fresh world and the same messages, one at a time, over warmed
channels, the two alternating (bridge, minimal app, bridge, minimal app); each leg is timed from the
emulators' records as in the overhead scenario, over the rounds together. A ratio of two figures taken
minutes apart on the same machine, alternating, is what a noisy machine cannot fake; the absolute times
are printed beside it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import Section
from bench.timeline import Trace, collect, dist
from bench.world import Setup, World

MINIMAL_APP = [sys.executable, str(Path(__file__).with_name("minimal_app.py"))]  # (run from its work dir)
TARGETS = {"a": 1.2, "b": 0.5}  # event → model request ≤ 1.2× the minimal app; model done → final write ≤ 0.5×
COLD_TARGET = 1.5  # a channel's first message (conversation created, names, channel looked up): p95 ≤ 1.5× warm
ROUNDS = 4  # each app's world, alternating
UNSEEN = 5  # channels per round the bridge never heard of (their first messages look the channel up)


def reference(setup: Setup, messages: int, channels: int, gap: float, rounds: int = ROUNDS) -> Section:
    section = Section(f"Overhead against a minimal app: {messages} messages one at a time over {channels} "
                      f"warmed channels, each app in its own world, the two apps alternating over {rounds} rounds")
    runs: dict[str, list[Run]] = {"bridge": [], "minimal app": []}
    for _ in range(rounds):  # (alternating: a machine slowing down meanwhile slows both)
        for name, program in (("bridge", None), ("minimal app", MINIMAL_APP)):
            runs[name].append(_run(setup, program, max(1, messages // rounds), channels, gap))
    legs = {name: _legs(done) for name, done in runs.items()}
    for leg, title in (("a", "(a) event delivered → model request received"),
                       ("b", "(b) model response done → answer in Slack")):
        ours, theirs = legs["bridge"][leg], legs["minimal app"][leg]
        for stat in ("p50", "p95"):
            ratio = getattr(ours, stat) / getattr(theirs, stat)
            section.add(f"{title}, {stat}: bridge / minimal app",
                        f"{ratio:.2f}×  ({getattr(ours, stat):.2f} ms / {getattr(theirs, stat):.2f} ms)",
                        f"≤ {TARGETS[leg]}×", ratio <= TARGETS[leg])
    cold, warm = legs["bridge"]["cold"], legs["bridge"]["a"]
    section.add("bridge, a channel's first message (a), p95: cold / warm",
                f"{cold.p95 / warm.p95:.2f}×  ({cold.p95:.2f} ms / {warm.p95:.2f} ms, n={cold.n})",
                f"≤ {COLD_TARGET}×", cold.p95 / warm.p95 <= COLD_TARGET)
    unseen = legs["bridge"]["unseen"]
    section.add("bridge, a first message whose channel is looked up on the way (a), p95: unseen / warm",
                f"{unseen.p95 / warm.p95:.2f}×  ({unseen.p95:.2f} ms / {warm.p95:.2f} ms, n={unseen.n})")
    ours_cpu, theirs_cpu = legs["bridge"]["cpu"], legs["minimal app"]["cpu"]
    section.add("CPU time per turn (the app's process): bridge / minimal app",
                f"{ours_cpu / theirs_cpu:.2f}×  ({ours_cpu:.2f} ms / {theirs_cpu:.2f} ms per message)")
    section.note(__doc__.split("\n\n", 1)[1].replace("\n", " "))
    section.note("The bridge stores each message durably before the ack, journals each turn, keeps the "
                 "channel's conversation, looks up names and streams a live reply; the minimal app does none of "
                 "that. (b) for the minimal app includes assembling the whole answer from the stream.")
    section.note("Cold: the first message of each of the channels, in each round (n above), written after the bot "
                 "was invited to the channel (the bridge looks a channel up as the bot joins it, so what is left "
                 "is its conversation and, for a speaker not seen before, the name); each app's own first "
                 "message goes to a channel of its own before them, so cold is a channel's first message in a "
                 "running app, not the process's first. Unseen: after the warm messages, a first message in "
                 f"each of {UNSEEN} channels the bot was added to without the bridge hearing of it, so the "
                 "channel is looked up on the way (conversations.info), as every first message once was.")
    return section


@dataclass
class Run:
    """One app's world: its warm and cold traces, and its CPU seconds over the warm messages."""

    warm: list[Trace]
    cold: list[Trace]
    cpu: float
    unseen: list[Trace]


def _run(setup: Setup, program: list[str] | None, messages: int, channels: int, gap: float) -> Run:
    with World(1, setup, program=program) as world:
        # The process's own first message (its first request on each connection, its first statements)
        # goes to a channel of its own: the cold figure is a channel's first message in a running app.
        world.warm_up([0], channels + messages, one_at_a_time=True)
        invited = world.add_channels(channels)  # (the bot invited to each, then people write)
        cold_tokens = world.warm_up(invited, 0, one_at_a_time=True)
        tokens = list(range(channels, channels + messages))
        before = world.meter.snapshot()
        for i, token in enumerate(tokens):
            world.say(invited[i % channels], token)
            world.wait(lambda t=token: world.reply_written(t), 30, f"the reply to {token}", 0.005)
            time.sleep(gap)
        usage = world.meter.usage(before, world.meter.snapshot())
        unseen_tokens = []
        if program is None:  # a first message whose channel the bridge has not heard of (a join it missed)
            unseen = world.add_channels(UNSEEN, invited=False)
            unseen_tokens = world.warm_up(unseen, channels + messages + 1, one_at_a_time=True)
        collected = collect(world, [*cold_tokens, *tokens, *unseen_tokens])
    return Run([collected[t] for t in tokens], [collected[t] for t in cold_tokens], usage.bridge_cpu,
               [collected[t] for t in unseen_tokens])


def _legs(runs: list[Run]) -> dict[str, Any]:
    """(a), (b) and, for the first message of each channel, (a) cold; the app's CPU ms per message."""
    warm = [t for run in runs for t in run.warm]
    cold = [t for run in runs for t in run.cold]
    return {"a": dist((t.delivered, t.model_received) for t in warm),
            "b": dist((t.model_done, t.answered) for t in warm),
            "cold": dist((t.delivered, t.model_received) for t in cold),
            "unseen": dist((t.delivered, t.model_received) for run in runs for t in run.unseen)
            if any(run.unseen for run in runs) else None,
            "cpu": sum(run.cpu for run in runs) / len(warm) * 1000}
