"""UnderWay: one lookup per key at a time, shared by every caller; one started ahead serves the next.
Kept: what the lookups found, given without asking for its time, and past it while it is asked again."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound.people import NameDirectory
from bot.outbound.under_way import Found, Kept, UnderWay
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


class Directory:
    """A lookup of what `answers` holds (a stand-in for a key it lacks, as after a failure), kept by `Kept`
    as the name and channel directories keep theirs."""

    def __init__(self, ttl: float, *, limit: int | None = None, retry_after: float = 60) -> None:
        self.asked: list[str] = []
        self.answers: dict[str, str] = {}
        self.hold = asyncio.Event()
        self.hold.set()
        self.ttl = ttl
        self.kept: Kept[str, str] = Kept(self.look_up, retry_after=retry_after, limit=limit)

    async def look_up(self, key: str) -> Found[str]:
        self.asked.append(key)
        await self.hold.wait()
        await asyncio.sleep(0)
        if key not in self.answers:
            return Found(f"({key})", self.ttl, from_slack=False)
        if self.answers[key] == "raise":
            raise RuntimeError("a bug")
        return Found(self.answers[key], self.ttl)


async def test_a_kept_value_is_given_without_asking_until_its_time_is_up() -> None:
    directory = Directory(ttl=60)
    directory.answers["a"] = "Alice"
    assert directory.kept.now("a") is None and directory.kept.ahead("a") is True
    assert await directory.kept.get("a") == "Alice" and directory.asked == ["a"]
    assert directory.kept.now("a") == "Alice" and directory.kept.ahead("a") is False
    assert await directory.kept.get("a") == "Alice" and directory.asked == ["a"]


async def test_a_value_past_its_time_is_given_while_it_is_asked_again() -> None:
    directory = Directory(ttl=0.01)
    directory.answers["a"] = "Alice"
    await directory.kept.get("a")
    await asyncio.sleep(0.02)
    directory.answers["a"] = "Alice L."
    assert directory.kept.fresh("a") is None  # (not for a permission)
    assert directory.kept.now("a") == "Alice" and directory.kept.now("a") == "Alice"  # (no wait)
    await asyncio.sleep(0)
    assert directory.asked == ["a", "a"]  # (one lookup again, for both)
    await asyncio.sleep(0.005)
    assert directory.kept.now("a") == directory.kept.fresh("a") == "Alice L."


async def test_after_a_failed_lookup_the_next_caller_past_its_time_asks_again() -> None:
    directory = Directory(ttl=0.01)
    assert await directory.kept.get("a") == "(a)" and directory.kept.now("a") == "(a)"
    assert "a" not in directory.kept  # (a stand-in is not Slack's)
    await asyncio.sleep(0.02)
    assert directory.kept.now("a") is None  # (a stand-in is not given past its time)
    directory.answers["a"] = "Alice"
    assert await directory.kept.get("a") == "Alice" and directory.asked == ["a", "a"]


async def test_a_failed_lookup_keeps_the_value_slack_gave_before_and_waits_to_ask_again() -> None:
    directory = Directory(ttl=0.01, retry_after=60)
    directory.answers["a"] = "Alice"
    await directory.kept.get("a")
    await asyncio.sleep(0.02)
    directory.answers["a"] = "raise"  # (a failure a lookup does not catch: a bug, the session closed…)
    assert directory.kept.now("a") == "Alice"
    await asyncio.sleep(0.005)
    del directory.answers["a"]  # (and one it catches: its stand-in)
    directory.kept.again("a")
    await asyncio.sleep(0.005)
    assert directory.kept.now("a") == "Alice" and directory.kept.now("a") == "Alice"
    await asyncio.sleep(0.005)
    assert directory.asked == ["a", "a", "a"]  # (not asked at every call meanwhile)


async def test_a_value_an_event_brings_while_a_lookup_runs_is_not_overwritten_by_it() -> None:
    directory = Directory(ttl=60)
    directory.answers["c"] = "old-name"
    directory.hold.clear()
    directory.kept.again("c")  # (the bot joins: a lookup starts)
    await asyncio.sleep(0)
    directory.kept.put("c", "new-name", 60)  # (a rename event, while Slack answers with the old name)
    directory.hold.set()
    await asyncio.sleep(0.005)
    assert directory.kept.now("c") == "new-name"


async def test_at_most_limit_values_are_kept_the_longest_without_a_fresh_one_going_first() -> None:
    directory = Directory(ttl=60, limit=2)
    directory.answers.update(a="A", b="B", c="C", d="D")
    for key in "abc":
        await directory.kept.get(key)
    assert "a" not in directory.kept and "b" in directory.kept and "c" in directory.kept
    directory.kept.put("b", "B2", 60)  # (a key kept already takes no one's place…)
    assert "c" in directory.kept and directory.kept.now("b") == "B2"
    await directory.kept.get("d")  # (…and, fresh again, is not the next to go)
    assert "c" not in directory.kept and "b" in directory.kept and "d" in directory.kept


async def test_a_name_past_its_hour_is_given_while_it_is_asked_again(slack: SlackEmulator) -> None:
    names = NameDirectory(AsyncWebClient(token=slack.bot_token, base_url=slack.base_url), ttl=0.05)
    alice = slack.users["alice"]
    assert await names.name(alice) == "Alice"
    slack.update_user(alice, display_name="Ally")  # (its user_change is not heard here)
    await asyncio.sleep(0.1)
    assert names.known([alice]) == {alice: "Alice"}  # no wait…
    for _ in range(300):
        if names.known([alice]) == {alice: "Ally"}:
            break
        await asyncio.sleep(0.01)
    assert names.known([alice]) == {alice: "Ally"} and len(slack.calls("users.info")) == 2  # …asked again


async def test_a_demoted_admin_is_asked_of_slack_once_the_flag_is_past_its_hour(slack: SlackEmulator) -> None:
    names = NameDirectory(AsyncWebClient(token=slack.bot_token, base_url=slack.base_url), ttl=0.05)
    alice = slack.users["alice"]
    slack.update_user(alice, is_admin=True)
    assert await names.is_admin(alice) is True
    slack.update_user(alice, is_admin=False)  # (its user_change is not heard here)
    await asyncio.sleep(0.1)
    assert await names.is_admin(alice) is False  # (a permission waits for Slack's answer)
