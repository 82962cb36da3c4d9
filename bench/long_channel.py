"""A channel used for a year costs what a channel used for a day costs, per turn (chat backend).

Two channels on the `chat` backend (Chat Completions, the history in the bridge's own store): one fresh,
one whose conversation already holds `stored` messages in the store, written before the bridge starts
(alternating people and answers of about 200 characters). Then `turns` messages one at a time in each,
answered before the next: the time from the event to the model request (where the history window is
read), the bridge's CPU per turn, the input the model was sent and the time to the answer in Slack —
the fresh channel's figures beside the long one's.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.report import Section
from bench.timeline import collect, dist
from bench.world import Setup, World
from bot.store import Store

CHANNELS = ("fresh", "long")
SEED_BATCH = 5_000  # stored messages per transaction while seeding
SEED_TEXT = "a fairly ordinary remark about the project plan, the next release and who owns which part of it"
CONVERSATION = "chat_benchlongchannel000000"  # the long channel's conversation (the chat backend's id form)
SLOWER_AT_MOST = 2.0  # the long channel's p50 cost per turn may be at most this many times the fresh one's


def long_channel(setup: Setup, stored: int, turns: int) -> Section:
    section = Section(f"A long-lived channel: {turns} turns after {stored:,} stored messages, beside a fresh "
                      "channel (chat backend)")
    seeded: dict[str, float] = {}

    def seed(world: World) -> None:
        began = time.perf_counter()
        asyncio.run(_seed(world.workdir / "bridge.sqlite3", world.channel_ids[1], stored))
        seeded["seconds"] = time.perf_counter() - began
        seeded["mb"] = (world.workdir / "bridge.sqlite3").stat().st_size / 1e6

    with World(len(CHANNELS), setup, env={"ASSISTANT_BACKEND": "chat"}, before_start=seed) as world:
        world.warm_up([0, 1], 0, one_at_a_time=True)
        figures = {name: _turns(world, channel, 100 + 1000 * channel, turns) for channel, name in enumerate(CHANNELS)}
        memory = world.meter.memory()
    for name in CHANNELS:
        prepare, cpu, inputs, answered = figures[name]
        section.add(f"{name}: event → model request (history read)", str(prepare))
        section.add(f"{name}: bridge CPU per turn", f"{cpu:.2f} ms")
        section.add(f"{name}: input tokens the model was sent, p50", f"{inputs:.0f}")
        section.add(f"{name}: event → answer in Slack", str(answered))
    fresh, long = figures["fresh"][0], figures["long"][0]
    ratio = long.p50 / fresh.p50 if fresh.p50 else float("nan")
    section.add("long / fresh, event → model request p50", f"{ratio:.2f}×", f"≤ {SLOWER_AT_MOST:.0f}×",
                ratio <= SLOWER_AT_MOST)
    section.add("seeding", f"{stored:,} messages in {seeded.get('seconds', 0):.1f} s; database "
                           f"{seeded.get('mb', 0):.0f} MB; bridge RSS now / peak {memory[0]:.1f} / {memory[1]:.1f} MB")
    section.note(__doc__.split("\n\n", 1)[1].replace("\n", " "))
    return section


def _turns(world: World, channel: int, first: int, turns: int) -> tuple:
    """One message at a time in `channel`: (event → model request, CPU ms per turn, input tokens p50,
    event → answer)."""
    tokens = list(range(first, first + turns))
    seen_before = len(world.openai.model.seen)
    before = world.meter.snapshot()
    for token in tokens:
        world.say(channel, token)
        world.wait(lambda t=token: world.channel_answered(channel, t), world.setup.timeout, f"the reply to {token}",
                   0.005)
        time.sleep(0.05)
    usage = world.meter.usage(before, world.meter.snapshot())
    traces = collect(world, tokens)
    inputs = sorted(request.input_tokens for request in world.openai.model.seen[seen_before:])
    return (dist((traces[t].delivered, traces[t].model_received) for t in tokens), usage.bridge_cpu / turns * 1000,
            inputs[len(inputs) // 2] if inputs else 0, dist((traces[t].delivered, traces[t].answered) for t in tokens))


async def _seed(path: Path, channel: str, stored: int) -> None:
    """`stored` messages in `channel`'s conversation, written as the chat backend writes them."""
    store = await Store.open(path)
    try:
        await store.conversations.set_conversation(channel, "chat", CONVERSATION)
        for start in range(0, stored, SEED_BATCH):
            batch = [{"role": "user", "content": f"[User {n % 3}] {SEED_TEXT} ({n})", "name": f"User_{n % 3}"}
                     if n % 2 == 0 else {"role": "assistant", "content": f"Noted: {SEED_TEXT} ({n})"}
                     for n in range(start, min(start + SEED_BATCH, stored))]
            await store.chat.append_chat(CONVERSATION, batch)
    finally:
        await store.close()
