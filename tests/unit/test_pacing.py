"""The shared Slack budgets: a token bucket served by priority, then first come first served."""

import asyncio

import pytest

from bot.outbound.pacing import Pacer, Priority


async def test_burst_then_rate() -> None:
    pacer = Pacer(per_minute=600, burst=3)  # 10 a second
    started = asyncio.get_running_loop().time()
    for _ in range(5):
        assert await pacer.acquire()
    elapsed = asyncio.get_running_loop().time() - started
    assert 0.15 <= elapsed < 1.0  # 3 at once, then two more at ~0.1 s each


async def test_final_writes_go_before_progress_and_first_come_first_served() -> None:
    pacer = Pacer(per_minute=1200, burst=1)
    assert await pacer.acquire()  # the bucket is empty now
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        await pacer.acquire(priority)
        order.append(name)

    tasks = [asyncio.create_task(take(n, p)) for n, p in
             [("progress-a", Priority.PROGRESS), ("first-b", Priority.FIRST), ("final-c", Priority.FINAL),
              ("progress-d", Priority.PROGRESS), ("final-e", Priority.FINAL)]]
    await asyncio.gather(*tasks)
    assert order == ["final-c", "final-e", "first-b", "progress-a", "progress-d"]


async def test_giving_up_a_wait_takes_no_turn() -> None:
    pacer = Pacer(per_minute=60, burst=1)
    assert await pacer.acquire()
    done = asyncio.Event()
    waiting = asyncio.create_task(pacer.acquire(Priority.PROGRESS, unless=done))
    await asyncio.sleep(0.01)
    done.set()  # e.g. the reply's final text arrived: the progress write is pointless now
    assert await waiting is False
    assert pacer.waiting == 0


async def test_pause_after_429_holds_everyone() -> None:
    pacer = Pacer(per_minute=6000, burst=5)
    pacer.pause(0.3)
    started = asyncio.get_running_loop().time()
    assert await pacer.acquire(Priority.FINAL)
    assert asyncio.get_running_loop().time() - started >= 0.28


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Pacer(per_minute=0, burst=1)


async def test_try_acquire_takes_only_a_free_turn_and_put_back_returns_it() -> None:
    pacer = Pacer(per_minute=60, burst=2)
    assert pacer.try_acquire() and pacer.try_acquire()
    assert not pacer.try_acquire()  # the bucket is empty: do something else than wait
    pacer.put_back()  # (taken for a call that was not made after all)
    assert pacer.try_acquire()


async def test_delay_says_how_long_a_call_would_wait_behind_its_equals_only() -> None:
    now = [0.0]
    pacer = Pacer(per_minute=60, burst=1, clock=lambda: now[0])  # one a second
    assert pacer.delay(Priority.FINAL) == 0
    assert pacer.try_acquire()
    assert pacer.delay(Priority.FINAL) == pytest.approx(1.0)
    progress = [asyncio.create_task(pacer.acquire(Priority.PROGRESS)) for _ in range(3)]
    final = asyncio.create_task(pacer.acquire(Priority.FINAL))
    await asyncio.sleep(0)
    assert pacer.delay(Priority.FINAL) == pytest.approx(2.0)  # behind the one final, ahead of the progress
    assert pacer.delay(Priority.PROGRESS) == pytest.approx(5.0)
    now[0] = 0.5
    assert pacer.delay(Priority.FINAL) == pytest.approx(1.5)
    pacer.pause(10)
    assert pacer.delay(Priority.FINAL) == pytest.approx(10.0)  # Slack said to wait
    for task in (*progress, final):
        task.cancel()


async def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    pacer = Pacer(per_minute=60, burst=1)
    assert await pacer.acquire()
    waiting = asyncio.create_task(pacer.acquire(Priority.PROGRESS, unless=asyncio.Event()))
    await asyncio.sleep(0.01)
    waiting.cancel()  # e.g. the reply was cancelled while its write waited for the budget
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pacer.waiting == 0


async def test_a_turn_granted_to_a_cancelled_waiter_goes_back_to_the_bucket() -> None:
    now = [0.0]
    pacer = Pacer(per_minute=60, burst=1, clock=lambda: now[0])
    assert await pacer.acquire()  # the bucket is empty
    waiting = asyncio.create_task(pacer.acquire(Priority.FINAL))
    await asyncio.sleep(0)  # it waits for its turn
    now[0] += 1.0  # a token has refilled …
    pacer._grant()  # … its turn comes …
    waiting.cancel()  # … and it is cancelled before it could use it
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pacer.try_acquire()  # the token was not lost


async def test_progress_leaves_the_calls_held_for_finals_to_come() -> None:
    now = [0.0]
    pacer = Pacer(per_minute=60, burst=3, clock=lambda: now[0])
    pacer.hold()
    pacer.hold()  # two replies will need a final edit
    assert await pacer.acquire(Priority.PROGRESS)  # a full bucket: progress takes what is beyond those two
    waiting = asyncio.create_task(pacer.acquire(Priority.PROGRESS))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # two calls left, both held
    assert await pacer.acquire(Priority.FINAL) and await pacer.acquire(Priority.FINAL)  # at once, no queue
    now[0] = 1.0  # a call refilled
    pacer.release()
    pacer.release()  # both finals written: progress may have the calls again
    assert await asyncio.wait_for(waiting, 1.0)
