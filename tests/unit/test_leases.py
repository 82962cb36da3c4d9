"""Channel leases and replica heartbeats: one replica per channel, a dead one's channels taken over after
its lease expires, and Slack's workspace budgets divided among the replicas alive."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.outbound.pacing import Pacer
from bot.store import Store
from bot.store.leases import ChannelLeases, Claim, Replicas


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path):
    """(On SQLite the rows work the same, though one process owns the file and never needs them.)"""
    target = tmp_path / "bridge.sqlite3" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened = await Store.open(target)
    yield opened
    await opened.close()


async def test_one_replica_holds_a_channel_until_it_lets_go(store: Store) -> None:
    a = ChannelLeases(store.db, owner="a", ttl=30)
    b = ChannelLeases(store.db, owner="b", ttl=30)
    assert (await a.claim("C1")).claim is Claim.TAKEN  # new to a
    assert (await b.claim("C1")).claim is Claim.REFUSED
    assert (await b.claim("C2")).claim is Claim.TAKEN  # another channel is free
    assert (await a.claim("C1")).claim is Claim.KEPT  # a renewal by a claim: nobody else had it meanwhile
    assert await a.holder("C1") == "a"
    await a.release("C1")
    assert await a.holder("C1") is None
    assert (await b.claim("C1")).claim is Claim.TAKEN
    await b.release("C1")
    assert (await a.claim("C1")).claim is Claim.TAKEN  # b had it since: what a remembers of C1 is stale
    await a.release("C1")
    assert (await a.claim("C1")).claim is Claim.KEPT  # released and taken back with nobody in between


async def test_the_next_holder_goes_on_from_the_posting_budget_left(store: Store) -> None:
    a = ChannelLeases(store.db, owner="a", ttl=30)
    b = ChannelLeases(store.db, owner="b", ttl=30)
    await a.claim("C1")
    await a.release("C1", post_tokens=0.25)
    granted = await b.claim("C1")
    assert granted.claim is Claim.TAKEN and granted.post_tokens == 0.25
    assert granted.idle_for is not None and 0 <= granted.idle_for < 5
    now = [0.0]
    pacer = Pacer(per_minute=60, burst=3, clock=lambda: now[0])
    pacer.resume_from(granted.post_tokens, 0.5)  # a quarter call left, half a second ago (less a margin)
    assert not pacer.try_acquire()
    now[0] += 0.3
    assert not pacer.try_acquire()  # 0.25 - 0.3 → 0, + 0.5 + 0.3 < 1
    now[0] += 0.2
    assert pacer.try_acquire()


async def test_an_expired_lease_is_taken_over_and_its_renewal_fails(store: Store) -> None:
    dead = ChannelLeases(store.db, owner="dead", ttl=0.3)
    alive = ChannelLeases(store.db, owner="alive", ttl=30)
    assert (await dead.claim("C1")).claim is Claim.TAKEN
    assert await dead.renew(["C1"]) == {"C1"}
    assert (await alive.claim("C1")).claim is Claim.REFUSED
    await asyncio.sleep(0.5)  # (the database's clock moves on: the lease expires)
    assert (await alive.claim("C1")).claim is Claim.TAKEN
    assert await dead.renew(["C1"]) == set()  # the old holder learns it lost the channel
    assert await alive.renew(["C1", "C9"]) == {"C1"}  # (C9 was never held)


async def test_release_all_frees_every_channel_of_a_stopping_replica(store: Store) -> None:
    a = ChannelLeases(store.db, owner="a", ttl=30)
    b = ChannelLeases(store.db, owner="b", ttl=30)
    for channel in ("C1", "C2", "C3"):
        assert (await a.claim(channel)).claim is Claim.TAKEN
    await a.release_all()
    assert [(await b.claim(c)).claim for c in ("C1", "C2", "C3")] == [Claim.TAKEN] * 3


async def test_heartbeats_count_the_replicas_alive(store: Store) -> None:
    one, two = Replicas(store.db, replica_id="one"), Replicas(store.db, replica_id="two")
    assert await one.beat(alive_within=10) == 1
    assert await two.beat(alive_within=10) == 2
    assert await one.beat(alive_within=10) == 2  # (a beat refreshes, not adds)
    await two.leave()
    assert await one.beat(alive_within=10) == 1
    await two.beat(alive_within=10)
    await asyncio.sleep(0.3)
    assert await one.beat(alive_within=0.2) == 1  # two has not beaten for longer than that: gone


async def test_replicas_hear_each_other_on_postgresql(postgres_url: str) -> None:
    one, other = await Store.open(postgres_url), await Store.open(postgres_url)
    heard: list[str] = []
    try:
        await other.db.subscribe("bridge_inbox", heard.append)
        await one.db.publish("bridge_inbox", "C42")
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
        assert heard == ["C42"]
    finally:
        await one.close()
        await other.close()


async def test_a_shared_pacer_keeps_to_its_share() -> None:
    now = [0.0]
    pacer = Pacer(per_minute=60, burst=4, clock=lambda: now[0])
    pacer.share(0.5)  # two replicas: half the rate, half the burst
    assert [pacer.try_acquire() for _ in range(3)] == [True, True, False]
    now[0] += 1.0
    assert not pacer.try_acquire()  # half a call a second
    now[0] += 1.0
    assert pacer.try_acquire()
    pacer.share(1.0)  # the other replica is gone: the whole budget again
    now[0] += 4.0
    assert [pacer.try_acquire() for _ in range(5)] == [True] * 4 + [False]
