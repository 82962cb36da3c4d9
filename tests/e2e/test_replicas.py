"""Several replicas on one PostgreSQL (each test asks for `postgres_url` first: its database outlives the
replicas): events spread over their Socket Mode connections (or over their
HTTP ports, as a load balancer would), one replica works a channel at a time, a replica killed with
kill -9 or stopped with SIGTERM loses and doubles nothing, and Slack's real limits hold for all of them
together."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable

import asyncpg

from tests.e2e.accounting import Sent, Tally
from tests.e2e.harness import BridgeProcess, eventually, free_port
from tests.e2e.replies import wait_replies
from tests.e2e.test_faults import NAMES, check, say, settled
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

LEASE_SECONDS = 5  # (default 15: shortened so that a killed replica's channels are taken over quickly here)


def replicas(bridge_factory: Callable[..., BridgeProcess], postgres_url: str, count: int, *,
             command: str = "run") -> list[BridgeProcess]:
    made = []
    for _ in range(count):
        env = {"DATABASE_URL": postgres_url, "BRIDGE_LEASE_SECONDS": str(LEASE_SECONDS)}
        if command == "serve":
            env["PORT"] = str(free_port())
        made.append(bridge_factory(env=env, command=command))
    return made


def out_of_order(postgres_url: str, model_api: OpenAIEmulator, sent: list[Sent]) -> list[str]:
    """Messages whose conversation shows a later message of their channel first, although they were
    stored first. (A message stored after a later one — Slack delivered it late, over another replica's
    connection, or re-sent it after the replica holding it died — may miss that one's turn.)"""
    rows = query(postgres_url, "SELECT i.order_ts, i.received_at, i.turn_id, t.started_at, i.attempts FROM inbox i"
                 " LEFT JOIN turns t ON t.id = i.turn_id WHERE i.kind = 'message'")
    stored = {ts: received for ts, received, *_ in rows}
    detail = {ts: rest for ts, *rest in rows}
    index = {message.as_seen: message for message in sent}
    wrong = []
    for items in model_api.conversations.values():
        seen = [index[part["text"]] for item in items if item.get("type") == "message"
                and item.get("role") == "user" for part in item.get("content") or () if part.get("text") in index]
        for position, later in enumerate(seen):
            wrong += [f"{earlier.text} {detail[earlier.ts]} after {later.text} {detail[later.ts]}"
                      for earlier in seen[position + 1:]
                      if earlier.ts < later.ts and stored[earlier.ts] < stored[later.ts]]
    return wrong


def query(url: str, sql: str) -> list[tuple]:
    """Rows of one query on the replicas' database (from the test's thread)."""
    async def run() -> list[tuple]:
        connection = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(run())


def rate_limited(slack: SlackEmulator) -> list[str]:
    return [f"{call.method} {call.args.get('channel')} at {call.time:.2f}" for call in slack.calls()
            if call.response.get("error") == "ratelimited"]


def burst(slack: SlackEmulator, channels: list[str], count: int, sent: list[Sent], *,
          at: dict[int, Callable[[], None]]) -> None:
    rng = random.Random(11)
    for index in range(count):
        say(slack, rng.choice(channels), rng.choice(list(NAMES)), f"burst {index:03d}", sent)
        time.sleep(0.02)
        if index in at:
            at[index]()


def test_three_replicas_survive_a_kill_and_a_sigterm(postgres_url: str, slack: SlackEmulator, model_api: OpenAIEmulator,
                                                     bridge_factory,
                                                     fault_rows: list[Tally]) -> None:
    slack.set_rate_limits("real")
    users = [slack.users[name] for name in NAMES]
    channels = [slack.add_channel(f"load-{i}", members=users) for i in range(10)]
    model_api.model.ttft = 0.05
    model_api.model.chunk_delay = 0.01
    one, two, three = replicas(bridge_factory, postgres_url, 3)
    sent: list[Sent] = []
    burst(slack, channels, 120, sent, at={40: one.kill, 80: lambda: two.process.send_signal(signal.SIGTERM)})
    assert two.process.wait(15) == 0
    settled(slack, model_api, sent, timeout=120)
    check(fault_rows, "3 replicas: kill -9 one, SIGTERM one, 120 msgs / 10 channels", slack, model_api, sent)
    assert not out_of_order(postgres_url, model_api, sent)
    assert model_api.max_concurrent_per_conversation <= 1
    limited = rate_limited(slack)
    posts = [(round(c.time, 2), c.args.get("channel"), c.error) for c in slack.calls("chat.postMessage")]
    assert limited == [], (limited, posts)
    spread = {attempt["connection"] for e in slack.envelopes("events_api") for attempt in e.attempts}
    assert len(spread) >= 3  # Slack spread the events over every replica's connection
    assert "lease" in three.log or "replica" in three.log


def test_three_replicas_behind_a_load_balancer(postgres_url: str, slack: SlackEmulator, model_api: OpenAIEmulator,
                                               bridge_factory, fault_rows: list[Tally]) -> None:
    slack.set_rate_limits("real")
    users = [slack.users[name] for name in NAMES]
    channels = [slack.add_channel(f"http-{i}", members=users) for i in range(6)]
    model_api.model.ttft = 0.05
    servers = replicas(bridge_factory, postgres_url, 3, command="serve")
    slack.set_events_url(*(f"{s.http_url}/slack/events" for s in servers))
    sent: list[Sent] = []
    burst(slack, channels, 60, sent, at={30: servers[0].kill})
    settled(slack, model_api, sent, timeout=120)
    check(fault_rows, "3 HTTP replicas behind a balancer: kill -9 one, 60 msgs / 6 channels", slack, model_api, sent)
    assert not out_of_order(postgres_url, model_api, sent)
    assert model_api.max_concurrent_per_conversation <= 1
    assert rate_limited(slack) == []
    urls = {attempt["url"] for e in slack.envelopes("events_api") for attempt in e.attempts}
    assert len(urls) == 3


def test_replicas_starting_together_on_an_empty_database(postgres_url: str, slack: SlackEmulator,
                                                         model_api: OpenAIEmulator, bridge_factory) -> None:
    env = {"DATABASE_URL": postgres_url}
    pair = [bridge_factory(env=env, start=False) for _ in range(2)]
    for process in pair:
        process.start(wait=False)
    eventually(lambda: slack.connections_total >= 2 or not all(p.alive for p in pair), timeout=30,
               message="both replicas connected")
    assert all(p.alive for p in pair), "\n".join(p.log for p in pair)
    slack.user_says("general", "alice", "hello replicas")
    wait_replies(slack, "general")


def test_a_reset_on_any_replica_keeps_its_place(postgres_url: str, slack: SlackEmulator, model_api: OpenAIEmulator,
                                               bridge_factory) -> None:
    replicas(bridge_factory, postgres_url, 2)
    slack.user_says("general", "alice", "before the reset")
    wait_replies(slack, "general")
    for round_ in range(2):  # Slack sends the commands over either replica's connection
        slack.slash_command("general", "bob", "/assistant", "reset")
        wait_replies(slack, "general", 2 + 2 * round_)  # the announcement
        slack.user_says("general", "alice", "after a reset")
        wait_replies(slack, "general", 3 + 2 * round_)
    conversations = [items for items in model_api.conversations.values()
                     if any(i.get("role") == "user" for i in items)]
    assert len(conversations) == 3  # each reset started a new conversation, whoever received it
    assert [sum(i.get("role") == "user" for i in items) for items in conversations] == [1, 1, 1]
