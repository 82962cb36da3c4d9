"""Overhead on a lightly loaded bridge, and the helpers every scenario shares."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bench.report import Section, add_cpu, add_memory
from bench.timeline import Trace, collect, dist, model_calls, per_message, slack_calls
from bench.world import Setup, World

OVERHEAD_TARGET_MS = 5.0
CLOCK_NOTE = ("All timestamps are the emulators' own time.time() readings, taken in this benchmark process on "
              "the same machine (one clock) as the bridge's requests arrive or its calls are answered.")


def inject(world: World, tokens: Sequence[int], channels: int, rate: float | None = None) -> float:
    """Message i goes to channel i % channels; as fast as possible, or paced at `rate` per second.
    Returns the achieved injection rate."""
    start = time.perf_counter()
    for i, token in enumerate(tokens):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        world.say(i % channels, token)
    return len(tokens) / max(time.perf_counter() - start, 1e-9)


# -- overhead, lightly loaded ------------------------------------------------------------------------
def latency(setup: Setup, messages: int, channels: int, gap: float) -> Section:
    section = Section(f"Overhead, lightly loaded: {messages} messages one at a time over {channels} warmed "
                      f"channels, {gap * 1000:.0f} ms after each reply")
    with World(channels, setup) as world:
        cold = world.warm_up(range(channels), 0, one_at_a_time=True)
        tokens = list(range(channels, channels + messages))
        before, start = world.meter.snapshot(), time.time()
        for i, token in enumerate(tokens):
            channel = i % channels
            world.say(channel, token)
            world.wait(lambda t=token: world.reply_written(t), 30, f"the reply to {token}", 0.005)
            time.sleep(gap)
        usage, end = world.meter.usage(before, world.meter.snapshot()), time.time()
        traces = collect(world, [*cold, *tokens])
        counts = (model_calls(world, start, end), slack_calls(world, start, end))
        memory, violations = world.meter.memory(), world.violations()
    overhead_rows(section, [traces[t] for t in tokens], target=True)
    section.add("cold: first message in a channel, (a)", str(dist((t.delivered, t.model_received)
                                                                  for t in (traces[c] for c in cold))))
    section.add("cold: first message in a channel, (b)", str(dist((t.model_done, t.answered)
                                                                  for t in (traces[c] for c in cold))))
    count_rows(section, *counts, messages)
    add_cpu(section, usage, messages)
    add_memory(section, *memory)
    health_row(section, world.health, violations)
    section.note(CLOCK_NOTE)
    section.note("(a) = model request received by the OpenAI emulator − event delivered by the Slack emulator "
                 "over Socket Mode; (b) = the Slack emulator answering the write (chat.postMessage, or chat.update "
                 "of a reply posted while still growing) that made the message show the complete answer − the "
                 "OpenAI emulator finishing the streamed response. Each message is sent only after the previous "
                 f"reply arrived, plus {gap * 1000:.0f} ms, so turns never overlap: the figures are overhead, not "
                 "queueing. Channels were warmed one message each (conversation created, names and channel info "
                 "cached) — the 'cold' rows are those first messages.")
    return section


def overhead_rows(section: Section, traces: list[Trace], *, target: bool) -> None:
    goal = f"p95 ≤ {OVERHEAD_TARGET_MS:.0f} ms" if target else ""
    a = dist((t.delivered, t.model_received) for t in traces)
    b = dist((t.model_done, t.answered) for t in traces)
    section.add("(a) event delivered → model request received", str(a), goal,
                a.p95 <= OVERHEAD_TARGET_MS if target else None)
    # (The channel's turn starts as soon as the message is stored; the ack waits for it to be on the disk,
    # so the ack often comes after the model request: the second row is then negative.)
    section.add("    beside it: event → ack (the message on the disk)",
                str(dist((t.delivered, t.acked) for t in traces)))
    section.add("    ack → model request (< 0: the request went first)",
                str(dist((t.acked, t.model_received) for t in traces)))
    section.add("(b) model response done → answer in Slack", str(b), goal,
                b.p95 <= OVERHEAD_TARGET_MS if target else None)
    updated = [t for t in traces if t.by_update]
    section.add("    answers completed by chat.update",
                f"{len(updated)} of {len(traces)} (the rest: by one chat.postMessage)")
    if updated:
        section.add("    for those, model done → answer", str(dist((t.model_done, t.answered) for t in updated)))
    section.add("end to end: event delivered → answer in Slack", str(dist((t.delivered, t.answered) for t in traces)))


def count_rows(section: Section, model: dict[str, int], slack: dict[str, int], messages: int) -> None:
    responses = model.get("POST /v1/responses", 0)
    section.add("model requests per user message", per_message(model, messages),  # type: ignore[arg-type]
                "≤ 1 model request (POST /v1/responses) per user message, fewer under bursts",
                responses <= messages)
    section.add("Slack API calls per user message", per_message(slack, messages))  # type: ignore[arg-type]
    section.note("Requests counted from the emulators' logs over the measured phase only (warm-up excluded); "
                 "Slack calls by Web API method, model requests by HTTP method and path.")


def health_row(section: Section, health: str, violations: list[str]) -> None:
    section.add("sanity", f"{health}; emulator spec violations: {len(violations)}")
    for violation in violations[:5]:
        section.note(f"violation: {violation}")
