"""A channel used for a year costs what a channel used for a day costs, per turn (chat backend).

Three channels on the `chat` backend (Chat Completions, the history in the bridge's own store): a fresh
one, a "day" whose conversation holds 1,000 stored messages, a "year" holding `stored` (100,000), written
into the store before the bridge starts (people and answers alternating, about 100 characters each).
Then `turns` messages one at a time in each, answered before the next: the time from the event to the
model request (where the history window is read backwards, a page at a time), the bridge's CPU per turn,
the input the model was sent, and the time to the answer in Slack. The day's and the year's prompts both
fill the context budget; the fresh channel's show the floor.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.report import Section
from bench.timeline import collect, dist
from bench.world import Setup, World, tokens_in
from bot.store import Store

CHANNELS = ("fresh", "day", "year")
DAY = 1_000  # stored messages of the "day" channel
SEED_BATCH = 5_000  # stored messages per transaction while seeding
SEED_TEXT = "a fairly ordinary remark about the project plan, the next release and who owns which part of it"
SLOWER_AT_MOST = 1.5  # the year's p50 event → model request may be at most this many times the day's


def long_channel(setup: Setup, stored: int, turns: int) -> Section:
    section = Section(f"A long-lived channel: {turns} turns each in channels with 0, {DAY:,} and {stored:,} "
                      "stored messages (chat backend)")
    seeded: dict[str, float] = {}

    def seed(world: World) -> None:
        began = time.perf_counter()
        asyncio.run(_seed(world.workdir / "bridge.sqlite3", {world.channel_ids[1]: DAY, world.channel_ids[2]: stored}))
        seeded["seconds"] = time.perf_counter() - began
        seeded["mb"] = (world.workdir / "bridge.sqlite3").stat().st_size / 1e6

    with World(len(CHANNELS), setup, env={"ASSISTANT_BACKEND": "chat"}, before_start=seed) as world:
        world.warm_up(range(len(CHANNELS)), 0, one_at_a_time=True)
        figures = {name: _turns(world, channel, 100 + 1000 * channel, turns) for channel, name in enumerate(CHANNELS)}
        memory = world.meter.memory()
    for name in CHANNELS:
        prepare, cpu, inputs, answered = figures[name]
        section.add(f"{name}: event → model request (history read)", str(prepare))
        section.add(f"{name}: bridge CPU per turn", f"{cpu:.2f} ms")
        section.add(f"{name}: input tokens the model was sent, p50", f"{inputs:.0f}")
        section.add(f"{name}: event → answer in Slack", str(answered))
    day, year = figures["day"][0], figures["year"][0]
    ratio = year.p50 / day.p50 if day.p50 else float("nan")
    section.add("year / day, event → model request p50", f"{ratio:.2f}×", f"≤ {SLOWER_AT_MOST}×",
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
    received = _chat_requests(world)
    inputs = sorted(request.input_tokens for request in world.openai.model.seen[seen_before:])
    return (dist((traces[t].delivered, received.get(t)) for t in tokens), usage.bridge_cpu / turns * 1000,
            inputs[len(inputs) // 2] if inputs else 0, dist((traces[t].delivered, traces[t].answered) for t in tokens))


def _chat_requests(world: World) -> dict[int, float]:
    """token → when the Chat Completions request whose newest user message carries it was received."""
    received: dict[int, float] = {}
    for request in world.openai.requests("/v1/chat/completions"):
        users = [m for m in (request.json or {}).get("messages", ()) if m.get("role") == "user"]
        for token in tokens_in(str(users[-1].get("content"))) if users else ():
            received.setdefault(token, request.time_received)
    return received


async def _seed(path: Path, stored: dict[str, int]) -> None:
    """channel → that many messages in its conversation, written as the chat backend writes them."""
    store = await Store.open(path)
    try:
        for number, (channel, count) in enumerate(stored.items()):
            conversation = f"chat_benchlongchannel{number:06d}"  # (the chat backend's id form)
            await store.conversations.set_conversation(channel, "chat", conversation)
            for start in range(0, count, SEED_BATCH):
                batch = [{"role": "user", "content": f"[User {n % 3}] {SEED_TEXT} ({n})", "name": f"User_{n % 3}"}
                         if n % 2 == 0 else {"role": "assistant", "content": f"Noted: {SEED_TEXT} ({n})"}
                         for n in range(start, min(start + SEED_BATCH, count))]
                await store.chat.append_chat(conversation, batch)
    finally:
        await store.close()
