"""Channel workers: a channel's steps run one at a time, and no notify is ever lost."""

import asyncio

from bot.work.retry import CONTINUE, WAIT, retry_in
from bot.work.workers import ChannelWorkers


class NoStore:
    async def channels_with_pending(self) -> list[str]:
        return []


class ScriptedRunner:
    """Plays back steps per channel; records how many ran at once."""

    def __init__(self, steps: list) -> None:
        self.steps = list(steps)
        self.calls = 0
        self.running = 0
        self.most_at_once = 0

    async def step(self, channel: str):
        self.calls += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            outcome = self.steps.pop(0) if self.steps else WAIT
            if isinstance(outcome, asyncio.Future):
                return await outcome
            await asyncio.sleep(0)
            return outcome
        finally:
            self.running -= 1


async def settle_loop() -> None:
    for _ in range(10):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)


async def test_a_notify_while_the_worker_is_ending_is_not_lost() -> None:
    gate = asyncio.get_running_loop().create_future()
    runner = ScriptedRunner([gate])
    workers = ChannelWorkers(inbox=NoStore(), runner=runner)
    workers.notify("C1")
    await asyncio.sleep(0)
    # The step ends and a new message is stored (and notified) in the same pass of the loop.
    gate.set_result(WAIT)
    asyncio.get_running_loop().call_soon(workers.notify, "C1")
    await settle_loop()
    assert runner.calls == 2, "the new message was stored but no worker looked at it"
    assert workers.active_channels == 0


async def test_one_step_at_a_time_per_channel_and_notifies_coalesce() -> None:
    runner = ScriptedRunner([CONTINUE, CONTINUE, WAIT])
    workers = ChannelWorkers(inbox=NoStore(), runner=runner)
    for _ in range(5):
        workers.notify("C1")
    await settle_loop()
    assert runner.most_at_once == 1
    assert runner.calls == 3
    assert workers.active_channels == 0


async def test_retry_waits_then_steps_again_and_stop_cuts_the_wait_short() -> None:
    runner = ScriptedRunner([retry_in(60.0), WAIT])
    workers = ChannelWorkers(inbox=NoStore(), runner=runner)
    workers.notify("C1")
    await settle_loop()
    assert runner.calls == 1 and workers.active_channels == 1  # waiting out the retry delay
    await asyncio.wait_for(workers.stop(grace=5.0), timeout=2.0)
    assert workers.active_channels == 0


async def test_an_unexpected_error_does_not_kill_the_channel(caplog) -> None:
    class Failing(ScriptedRunner):
        async def step(self, channel: str):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("bug")
            return WAIT

    runner = Failing([])
    workers = ChannelWorkers(inbox=NoStore(), runner=runner)
    workers.notify("C1")
    await settle_loop()
    assert "unexpected error" in caplog.text
    await workers.stop(grace=1.0)


async def test_a_database_failure_is_one_line_and_the_channel_carries_on(caplog) -> None:
    import asyncpg

    class LosingTheDatabase(ScriptedRunner):
        async def step(self, channel: str):
            self.calls += 1
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    workers = ChannelWorkers(inbox=NoStore(), runner=LosingTheDatabase([]))
    workers.notify("C1")
    await settle_loop()
    assert "channel C1: the database failed (connection was closed in the middle of operation)" in caplog.text
    assert "Traceback" not in caplog.text and workers.active_channels == 1  # waiting to try again
    await workers.stop(grace=1.0)
