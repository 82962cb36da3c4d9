"""Overhead as a ratio to a minimal app on the same libraries and emulators, measured in the same run.

The bridge and `bench/minimal_app.py` (Bolt over Socket Mode → the OpenAI SDK's streamed Responses call →
`chat.postMessage`, nothing else) each get a fresh world and the same messages, one at a time, over warmed
channels; each leg is timed from the emulators' records as in the overhead scenario. A ratio of two
figures taken minutes apart on the same machine is what a noisy machine cannot fake; the absolute times
are printed beside it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench.report import Section
from bench.timeline import collect, dist
from bench.world import Setup, World

MINIMAL_APP = [sys.executable, str(Path(__file__).with_name("minimal_app.py"))]  # (run from its work dir)
TARGETS = {"a": 1.2, "b": 0.5}  # event → model request ≤ 1.2× the minimal app; model done → final write ≤ 0.5×
COLD_TARGET = 1.5  # a channel's first message (conversation created, names, channel looked up): p95 ≤ 1.5× warm


def reference(setup: Setup, messages: int, channels: int, gap: float) -> Section:
    section = Section(f"Overhead against a minimal app: {messages} messages one at a time over {channels} "
                      "warmed channels, each app in its own world")
    legs = {name: _legs(setup, program, messages, channels, gap)
            for name, program in (("bridge", None), ("minimal app", MINIMAL_APP))}
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
    ours_cpu, theirs_cpu = legs["bridge"]["cpu"], legs["minimal app"]["cpu"]
    section.add("CPU time per turn (the app's process): bridge / minimal app",
                f"{ours_cpu / theirs_cpu:.2f}×  ({ours_cpu:.2f} ms / {theirs_cpu:.2f} ms per message)")
    section.note(__doc__.split("\n\n", 1)[1].replace("\n", " "))
    section.note("The bridge stores each message durably before the ack, journals each turn, keeps the "
                 "channel's conversation, looks up names and streams a live reply; the minimal app does none of "
                 "that. (b) for the minimal app includes assembling the whole answer from the stream.")
    return section


def _legs(setup: Setup, program: list[str] | None, messages: int, channels: int, gap: float) -> dict[str, Any]:
    """(a), (b) and, for the first message of each channel, (a) cold; the app's CPU ms per message."""
    with World(channels, setup, program=program) as world:
        cold_tokens = world.warm_up(range(channels), 0, one_at_a_time=True)
        tokens = list(range(channels, channels + messages))
        before = world.meter.snapshot()
        for i, token in enumerate(tokens):
            channel = i % channels
            world.say(channel, token)
            world.wait(lambda c=channel, t=token: world.channel_answered(c, t), 30, f"the reply to {token}", 0.005)
            time.sleep(gap)
        usage = world.meter.usage(before, world.meter.snapshot())
        collected = collect(world, [*cold_tokens, *tokens])
        traces = [collected[t] for t in tokens]
    return {"a": dist((t.delivered, t.model_received) for t in traces),
            "b": dist((t.model_done, t.answered) for t in traces),
            "cold": dist((t.delivered, t.model_received) for t in (collected[c] for c in cold_tokens)),
            "cpu": usage.bridge_cpu / messages * 1000}
