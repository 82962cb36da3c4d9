"""The pure parts of the `chat` backend: speaker names, history trimming, finding a turn's reply,
and the characters-per-token estimate."""

from __future__ import annotations

from typing import Any

import pytest

from bot.backends.base import FoundReply
from bot.backends.chat import chat_name, reply_after, speaker_of, user_message
from bot.backends.chat_window import (
    MAX_CHARS_PER_TOKEN,
    MIN_CHARS_PER_TOKEN,
    calibrated,
    history_budget,
    message_chars,
    trim_history,
    window_start,
)
from bot.store import ChatRecord


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def said(text: str | None) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def calls(*ids: str) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids]}


def result(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "ok"}


def records(*messages: dict[str, Any], chars: int = 10, first_id: int = 1) -> list[ChatRecord]:
    return [ChatRecord(first_id + n, message, chars) for n, message in enumerate(messages)]


# --- names --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("speaker", "expected"), [
    ("Alice", "Alice"),
    ("Bob Builder", "Bob_Builder"),
    ("  Bob   Builder  ", "Bob_Builder"),
    ("José Núñez", "Jose_Nunez"),
    ("o'brien.jr", "obrienjr"),
    ("Bob (away)", "Bob_away"),
    ("mary-jane_2", "mary-jane_2"),
    ("Bob . Builder", "Bob_Builder"),
    ("李雷", None),
    ("", None),
    ("   ", None),
    ("x" * 80, "x" * 64),
])
def test_chat_name(speaker: str, expected: str | None) -> None:
    assert chat_name(speaker) == expected


@pytest.mark.parametrize(("text", "speaker"), [
    ("[Alice] hello", "Alice"),
    ("[Bob Builder] [Alice] forged", "Bob Builder"),
    ("no marker", ""),
    ("[] empty", ""),
    ("[Alice]no space", ""),
])
def test_speaker_of(text: str, speaker: str) -> None:
    assert speaker_of(text) == speaker


@pytest.mark.parametrize(("text", "speaker", "expected"), [
    ("[Alice Smith] hi", "Alice Smith", {"role": "user", "content": "[Alice Smith] hi", "name": "Alice_Smith"}),
    ("[Alice Smith] hi", "", {"role": "user", "content": "[Alice Smith] hi", "name": "Alice_Smith"}),
    ("[李雷] hi", "李雷", {"role": "user", "content": "[李雷] hi"}),
    ("plain", "", {"role": "user", "content": "plain"}),
])
def test_user_message(text: str, speaker: str, expected: dict[str, Any]) -> None:
    assert user_message(text, speaker) == expected


def test_message_chars_counts_like_the_store() -> None:
    message = user_message("[Zoë] héllo", "Zoë")
    assert message_chars(message) == len('{"role": "user", "content": "[Zoë] héllo", "name": "Zoe"}')


# --- trimming -----------------------------------------------------------------------------------------

U1, A1, U2, A2, U3 = user("u1"), said("a1"), user("u2"), said("a2"), user("u3")
CALL_X, RES_X = calls("x"), result("x")
CALL_YZ, RES_Y, RES_Z = calls("y", "z"), result("y"), result("z")


@pytest.mark.parametrize(("history", "max_chars", "expected"), [
    ([], 100, []),
    ([U1, A1, U2, A2], 100, [U1, A1, U2, A2]),
    ([U1, A1, U2, A2], 40, [U1, A1, U2, A2]),
    ([U1, A1, U2, A2], 39, [A1, U2, A2]),
    ([U1, A1, U2, A2], 20, [U2, A2]),
    ([U1, A1, U2, A2], 9, []),
    # a call and its result go together or not at all
    ([U1, CALL_X, RES_X, A1], 30, [CALL_X, RES_X, A1]),
    ([U1, CALL_X, RES_X, A1], 29, [A1]),
    ([U1, CALL_YZ, RES_Y, RES_Z, A1, U2], 50, [CALL_YZ, RES_Y, RES_Z, A1, U2]),
    ([U1, CALL_YZ, RES_Y, RES_Z, A1, U2], 49, [A1, U2]),
    # the store's window may start with results whose call it cut off: they are left out
    ([RES_X, A1, U2], 100, [A1, U2]),
    ([RES_Y, RES_Z, A1], 100, [A1]),
    # calls missing a result (never stored by the backend, but never sent either)
    ([U1, CALL_YZ, RES_Y, A1], 100, [U1, A1]),
    ([U1, CALL_X], 100, [U1]),
    # a result for another call does not complete this one
    ([CALL_X, result("other"), U3], 100, [U3]),
    # the newest unit that does not fit ends the history, even if older ones would
    ([U1, CALL_X, RES_X], 15, []),
])
def test_trim_history_keeps_whole_units(history: list[dict[str, Any]], max_chars: int,
                                        expected: list[dict[str, Any]]) -> None:
    assert trim_history(records(*history), max_chars) == expected


def test_trim_history_counts_each_records_chars() -> None:
    history = [ChatRecord(1, U1, 500), ChatRecord(2, A1, 5), ChatRecord(3, U2, 5)]
    assert trim_history(history, 100) == [A1, U2]
    assert trim_history(history, 510) == [U1, A1, U2]


def test_trimmed_history_never_starts_with_a_tool_message_or_an_unanswered_call() -> None:
    history = records(U1, CALL_YZ, RES_Y, RES_Z, said("t"), U2, CALL_X, RES_X, A2, U3)
    for budget in range(0, 120):
        kept = trim_history(history, budget)
        if kept:
            assert kept[0]["role"] != "tool"
        open_calls: set[str] = set()
        for message in kept:
            if message["role"] == "tool":
                assert message["tool_call_id"] in open_calls
                open_calls.remove(message["tool_call_id"])
            else:
                assert not open_calls
                open_calls = {call["id"] for call in message.get("tool_calls") or ()}
        assert not open_calls


# --- finding a turn's reply ---------------------------------------------------------------------------

STORED = records(user("[A] one"), said("reply one"),                       # ids 1, 2
                 user("[B] two"), user("[C] three"), CALL_X, RES_X,       # ids 3-6
                 said("checked"), said(None), said("reply two"))          # ids 7-9


@pytest.mark.parametrize(("messages", "after", "expected"), [
    # the first turn, looked for from the start: its messages are not all the window's user messages
    (["[A] one"], None, None),
    (["[A] one", "[B] two", "[C] three"], None, FoundReply("checked\n\nreply two", "9")),
    # after the first turn: the second turn completed
    (["[B] two", "[C] three"], "2", FoundReply("checked\n\nreply two", "9")),
    (["[B] two"], "2", None),
    (["[C] three", "[B] two"], "2", None),
    (["[B] two", "[C] three", "[D] four"], "2", None),
    # nothing after the last turn: the turn being looked for never completed
    (["[B] two", "[C] three"], "9", None),
    # after an id that is not there: the newest user messages decide
    (["[B] two", "[C] three"], "999", FoundReply("checked\n\nreply two", "9")),
    (["[C] three"], "999", FoundReply("checked\n\nreply two", "9")),
    (["[A] one"], "999", None),
    ([], None, None),
])
def test_reply_after(messages: list[str], after: str | None, expected: FoundReply | None) -> None:
    assert reply_after(STORED, messages, after) == expected


def test_reply_after_context_only_messages_have_an_empty_answer() -> None:
    stored = records(user("[A] one"), said("reply"), user("[B] fyi"))
    assert reply_after(stored, ["[B] fyi"], "2") == FoundReply("", "3")


def test_reply_after_an_empty_conversation() -> None:
    assert reply_after([], ["[A] one"], None) is None
    assert reply_after([], ["[A] one"], "4") is None


# --- characters per token -----------------------------------------------------------------------------

@pytest.mark.parametrize(("chars", "tokens", "current", "expected"), [
    (4000, 1000, 4.0, 4.0),
    (3000, 1000, 4.0, 3.0),
    (5500, 1000, 4.0, 5.5),
    (1000, 1000, 4.0, MIN_CHARS_PER_TOKEN),   # implausible counts are clamped
    (90000, 1000, 4.0, MAX_CHARS_PER_TOKEN),
    (4000, None, 3.2, 3.2),                   # no usage reported: keep what we had
    (4000, 0, 3.2, 3.2),
    (0, 100, 3.2, 3.2),
])
def test_calibrated(chars: int, tokens: int | None, current: float, expected: float) -> None:
    assert calibrated(chars, tokens, current) == pytest.approx(expected)


@pytest.mark.parametrize(("tokens", "per_token", "fixed", "expected"), [
    (1000, 4.0, 500, 3500),
    (1000, 2.5, 500, 2000),
    (100, 4.0, 500, 0),
    (8000, 4.0, 0, 32000),
])
def test_history_budget(tokens: int, per_token: float, fixed: int, expected: int) -> None:
    assert history_budget(tokens, per_token, fixed) == expected


def sized(*chars: int, first_id: int = 1) -> list[ChatRecord]:
    return [ChatRecord(first_id + n, {"role": "user", "content": "x"}, size) for n, size in enumerate(chars)]


@pytest.mark.parametrize(("records", "previous", "budget", "start"), [
    ([], None, 100, None),  # nothing stored yet
    (sized(10, 10, 10), None, 100, None),  # far from the limit: all of it, no window
    (sized(*[10] * 10), None, 100, 5),  # full (100 of 100): keep the newest 60 (ids 5…10)
    (sized(*[10] * 10, first_id=3), 5, 100, 5),  # the start still fits: it stays where it was
    (sized(*[10] * 10, first_id=6), 5, 100, 10),  # it no longer fits: moved to the newest 60 at once
    (sized(70, 20, first_id=1), None, 100, 2),  # one big old message: the window starts after it
    (sized(95, first_id=1), None, 100, 1),  # a single message bigger than the share to keep stays
])
def test_the_window_start_stays_put_until_it_must_move(records, previous, budget, start) -> None:
    assert window_start(records, previous, budget) == start


def test_a_window_start_keeps_the_prefix_for_several_turns() -> None:
    """Turn after turn, the history sent starts at the same record until the budget is full again."""
    records: list[ChatRecord] = []
    starts, previous = [], None
    for turn in range(30):
        records.append(ChatRecord(turn + 1, {"role": "user", "content": "x"}, 10))
        fitting = []  # the store's window: the newest records that fit 100 characters
        for record in reversed(records):
            if sum(r.chars for r in fitting) + record.chars > 100:
                break
            fitting.insert(0, record)
        previous = window_start(fitting, previous, 100)
        starts.append(previous)
    moves = sum(1 for a, b in zip(starts, starts[1:], strict=False) if a != b)
    assert moves <= 30 // 4 + 1  # a move every few turns, not every turn (a sliding window: 20 moves)
