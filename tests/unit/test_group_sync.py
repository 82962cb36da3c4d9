"""GroupSync: callers close together share one fsync; none returns before a sync that began after it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.store.group_sync import GroupSync


class Disk:
    """A blocking `sync` that records when each call began and can be held until released."""

    def __init__(self) -> None:
        self.began: list[int] = []  # the number of callers that had asked when each sync began
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail: Exception | None = None
        self.asked = 0

    def sync(self) -> None:
        self.began.append(self.asked)
        self.started.set()
        self.release.wait(5)
        if self.fail is not None:
            raise self.fail


async def ask(group: GroupSync, disk: Disk) -> None:
    disk.asked += 1
    await group()


async def test_callers_before_a_sync_begins_share_it() -> None:
    disk = Disk()
    group = GroupSync(disk.sync, delay=0.01)
    await asyncio.gather(*(ask(group, disk) for _ in range(5)))
    assert disk.began == [5]  # one fsync for all five, begun after the last had asked


async def test_a_caller_during_a_sync_waits_for_the_next_one() -> None:
    disk = Disk()
    group = GroupSync(disk.sync, delay=0)
    disk.release.clear()
    first = asyncio.ensure_future(ask(group, disk))
    assert await asyncio.to_thread(disk.started.wait, 5)  # the first sync is under way (its commits only)
    second = asyncio.ensure_future(ask(group, disk))
    third = asyncio.ensure_future(ask(group, disk))
    await asyncio.sleep(0.02)
    assert not first.done() and not second.done()
    disk.release.set()
    await asyncio.gather(first, second, third)
    assert disk.began == [1, 3]  # the later two share a second sync, begun after the first ended


async def test_a_failed_sync_fails_its_callers_and_the_next_call_tries_again() -> None:
    disk = Disk()
    group = GroupSync(disk.sync, delay=0)
    disk.fail = OSError("disk full")
    results = await asyncio.gather(ask(group, disk), ask(group, disk), return_exceptions=True)
    assert [type(r) for r in results] == [OSError, OSError]
    disk.fail = None
    await ask(group, disk)
    assert len(disk.began) == 2


async def test_a_caller_giving_up_does_not_cancel_the_others_sync() -> None:
    disk = Disk()
    group = GroupSync(disk.sync, delay=0.01)
    impatient = asyncio.ensure_future(ask(group, disk))
    patient = asyncio.ensure_future(ask(group, disk))
    await asyncio.sleep(0)
    impatient.cancel()
    await patient
    assert disk.began == [2]
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_wait_idle_returns_once_no_sync_runs_or_waits() -> None:
    disk = Disk()
    group = GroupSync(disk.sync, delay=0.01)
    disk.release.clear()
    caller = asyncio.ensure_future(ask(group, disk))
    await asyncio.sleep(0)
    idle = asyncio.ensure_future(group.wait_idle())
    await asyncio.sleep(0.03)
    assert not idle.done()  # (the sync is held)
    disk.release.set()
    await asyncio.wait_for(idle, 5)
    assert caller.done() and disk.began == [1]


async def test_a_caller_asking_at_once_starts_the_waiting_sync_now() -> None:
    disk = Disk()
    group = GroupSync(disk.sync, delay=60)  # (nobody would wait that long)
    patient = asyncio.ensure_future(ask(group, disk))
    await asyncio.sleep(0.02)
    assert not patient.done() and not disk.began
    disk.asked += 1
    await asyncio.wait_for(group(at_once=True), 5)
    await asyncio.wait_for(patient, 5)
    assert disk.began == [2]  # one sync for both, begun when the second asked
    await asyncio.wait_for(group(at_once=True), 5)  # (alone, too)
    assert len(disk.began) == 2
