"""UnderWay: one lookup per key at a time, shared by every caller; one started ahead serves the next."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.people import NameDirectory
from bot.outbound.under_way import UnderWay
from tests.emulators.slack import SlackEmulator


class Source:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def look_up(self, key: str) -> str:
        self.asked.append(key)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return key.upper()


async def test_callers_at_once_share_one_lookup() -> None:
    source = Source()
    lookups = UnderWay(source.look_up)
    callers = [asyncio.ensure_future(lookups.get("a")) for _ in range(3)]
    await asyncio.sleep(0)
    source.release.set()
    assert await asyncio.gather(*callers) == ["A", "A", "A"]
    assert source.asked == ["a"]
    assert await lookups.get("a") == "A" and source.asked == ["a", "a"]  # (done: the next call asks again)


async def test_a_lookup_started_ahead_serves_the_caller_that_comes_later() -> None:
    source = Source()
    lookups = UnderWay(source.look_up)
    lookups.start("b")
    await asyncio.sleep(0)
    assert source.asked == ["b"]  # (under way before anyone awaits it)
    caller = asyncio.ensure_future(lookups.get("b"))
    source.release.set()
    assert await caller == "B" and source.asked == ["b"]


async def test_a_failure_reaches_every_caller_and_the_next_call_asks_again() -> None:
    source = Source()
    lookups = UnderWay(source.look_up)
    source.fail = RuntimeError("down")
    lookups.start("c")  # (ahead, and nobody awaits it: its failure is not left unretrieved)
    callers = [asyncio.ensure_future(lookups.get("c")) for _ in range(2)]
    source.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    source.fail = None
    assert await lookups.get("c") == "C" and source.asked == ["c", "c"]


async def test_a_caller_giving_up_does_not_stop_the_others_lookup() -> None:
    source = Source()
    lookups = UnderWay(source.look_up)
    impatient, patient = asyncio.ensure_future(lookups.get("d")), asyncio.ensure_future(lookups.get("d"))
    await asyncio.sleep(0)
    impatient.cancel()
    source.release.set()
    assert await patient == "D"
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_a_new_speaker_looked_up_ahead_and_by_the_turn_is_asked_of_slack_once(slack: SlackEmulator) -> None:
    user = slack.add_user("cy", display_name="Cy")
    names = NameDirectory(AsyncWebClient(token=slack.bot_token, base_url=slack.base_url))
    assert names.look_up_ahead(user)  # (at intake)
    assert await asyncio.gather(names.name(user), names.names([user, user])) == ["Cy", {user: "Cy"}]
    assert len(slack.calls("users.info")) == 1
    assert not names.look_up_ahead(user)  # (known now)
