"""Channel leases on a real PostgreSQL: one replica per channel, taken over when its holder's session
dies, and the channel workers of two replicas on one database never step one channel at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.messages import IncomingMessage
from bot.store import Store
from bot.work.retry import WAIT
from bot.work.workers import ChannelWorkers


@pytest.fixture
async def replicas(postgres_url: str):
    """Two stores on one database, as two bridge processes would open it."""
    opened = [await Store.open(postgres_url), await Store.open(postgres_url)]
    yield opened
    for store in opened:
        await store.close()


async def kill_session(store: Store) -> None:
    """What the server sees when a replica dies: its lease session ends."""
    await store.db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE application_name = 'assistant-bridge leases' AND pid <> pg_backend_pid()")


async def test_one_replica_per_channel(replicas: list[Store]) -> None:
    a, b = replicas
    assert await a.leases.claim("C1") and await a.leases.claim("C1")  # (claiming again is a no-op)
    assert not await b.leases.claim("C1")
    assert await b.leases.claim("C2") and not await a.leases.claim("C2")
    await a.leases.release("C1")
    assert await b.leases.claim("C1") and b.leases.holds("C1") and not a.leases.holds("C1")


async def test_a_dead_replicas_channels_are_free_at_once_and_it_knows(replicas: list[Store]) -> None:
    a, b = replicas
    assert await a.leases.claim("C1")
    await a.leases.close()  # (its session gone; the store's other connections live on for the test)
    assert await b.leases.claim("C1")


async def test_a_replica_cut_off_stops_holding(replicas: list[Store]) -> None:
    a, b = replicas
    assert await a.leases.claim("C1") and await b.leases.claim("C2")
    await kill_session(b)  # every lease session but the one running this … is a's and b's: both ended
    async with asyncio.timeout(a.leases.heartbeat * 3):
        await until(lambda: not a.leases.holds("C1") and not b.leases.holds("C2"))
    assert await b.leases.claim("C1")  # a new session, and the channel free


async def test_sqlite_grants_every_claim(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bridge.sqlite3")
    try:
        assert not store.leases.shared and await store.leases.claim("C1") and store.leases.holds("C1")
    finally:
        await store.close()


class Answering:
    """A runner that answers the channel's pending items at each step, and records who stepped when."""

    def __init__(self, store: Store, name: str, log: list[str], gate: asyncio.Event | None = None) -> None:
        self.store, self.name, self.log, self.gate = store, name, log, gate

    async def step(self, channel: str):
        self.log.append(f"{self.name} starts")
        items = await self.store.inbox.pending(channel)
        if self.gate is not None:
            await self.gate.wait()  # (the model at work)
        await self.store.inbox.mark_done([item.id for item in items])
        self.log.append(f"{self.name} answered {len(items)}")
        return WAIT


def message(ts: str) -> IncomingMessage:
    return IncomingMessage(channel="C1", ts=ts, user="U1", text="hi")


async def test_two_replicas_never_step_one_channel_and_hand_over_what_arrives(replicas: list[Store]) -> None:
    a, b = replicas
    log: list[str] = []
    gate = asyncio.Event()
    workers = [ChannelWorkers(inbox=a.inbox, runner=Answering(a, "A", log, gate), leases=a.leases, poll=0.1),
               ChannelWorkers(inbox=b.inbox, runner=Answering(b, "B", log), leases=b.leases, poll=0.1)]
    await a.inbox.add_message(message("1.0"))
    workers[0].notify("C1")
    await until(lambda: log == ["A starts"])
    await b.inbox.add_message(message("2.0"))  # stored by the other replica while A answers the first
    workers[1].notify("C1")
    await asyncio.sleep(0.2)
    assert log == ["A starts"]  # B left the channel to A …
    gate.set()
    await until(lambda: "A answered 1" in log and not workers[0].active_channels)
    # … and A, letting the channel go, found the message B had stored, and answered it too.
    assert log == ["A starts", "A answered 1", "A starts", "A answered 1"]
    assert await a.inbox.pending("C1") == [] and not workers[1].active_channels
    for worker in workers:
        await worker.stop(grace=1.0)


async def test_a_dead_replicas_channel_is_taken_over(replicas: list[Store]) -> None:
    a, b = replicas
    log: list[str] = []
    stuck = ChannelWorkers(inbox=a.inbox, runner=Answering(a, "A", log, asyncio.Event()), leases=a.leases)
    taker = ChannelWorkers(inbox=b.inbox, runner=Answering(b, "B", log), leases=b.leases, poll=0.1)
    await taker.resume()  # (starts its look for channels nobody serves)
    await a.inbox.add_message(message("1.0"))
    stuck.notify("C1")
    await until(lambda: log == ["A starts"])
    await asyncio.sleep(0.3)
    assert log == ["A starts"]  # B's look found the channel taken
    await a.leases.close()  # A dies mid-turn
    await until(lambda: "B answered 1" in log)
    await taker.stop(grace=1.0)
    await stuck.stop(grace=0.1)


POLL = 0.02  # seconds between looks at what the workers did
PATIENCE = 10.0  # seconds a test waits for it


async def until(predicate) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(PATIENCE / POLL)):
        if predicate():
            return True
        await asyncio.sleep(POLL)
    raise AssertionError(f"still not true after {PATIENCE} s")


async def test_the_server_ends_a_silent_replicas_session_within_the_lease_timeout(postgres_url: str) -> None:
    store = await Store.open(postgres_url, lease_timeout=6.0)
    try:
        session = store.leases._connection
        shown = [await session.fetchval(f"SHOW {name}") for name in
                 ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout")]
        assert shown == ["2", "1", "3", "4000"]  # 2 s idle + 3 probes 1 s apart < 6 s; unacknowledged data: 4 s
        assert store.leases.heartbeat == 6.0 / 5
    finally:
        await store.close()
