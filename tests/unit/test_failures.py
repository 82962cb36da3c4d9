import pytest

from bot.backends.responses import answer_after
from bot.work.retry import RetryPolicy


def user(text: str, item_id: str) -> dict:
    return {"id": item_id, "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def bot(text: str, item_id: str) -> dict:
    return {"id": item_id, "type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


HISTORY = [user("[Alice] hi", "u1"), bot("Hello Alice", "a1")]
CALL = {"id": "fc1", "type": "function_call", "call_id": "call_1", "name": "get_time", "arguments": "{}"}
OUTPUT = {"id": "fo1", "type": "function_call_output", "call_id": "call_1", "output": "12:00"}


@pytest.mark.parametrize(
    ("items", "messages", "after", "found"),
    [
        # The unfinished turn completed: its messages are the newest, then the answer.
        (HISTORY + [user("[Bob] q", "u2"), bot("answer", "a2")], ["[Bob] q"], "a1", ("answer", "a2")),
        (HISTORY + [user("[Bob] q", "u2"), user("[Bob] r", "u3"), bot("x", "a2"), bot("y", "a3")],
         ["[Bob] q", "[Bob] r"], "a1", ("x\n\ny", "a3")),
        # Not completed: nothing after the previous turn.
        (HISTORY, ["[Bob] q"], "a1", None),
        # The same words said before are not this turn: only what follows the previous turn counts.
        (HISTORY, ["[Alice] hi"], "a1", None),
        # The conversation's first turn (no previous item).
        ([user("[Bob] q", "u1"), bot("answer", "a1")], ["[Bob] q"], None, ("answer", "a1")),
        ([], ["[Bob] q"], None, None),
        # Completed with a tool call only: found, with no text (the call's pending: see below).
        (HISTORY + [user("[Bob] q", "u2"), CALL], ["[Bob] q"], "a1", ("", "fc1")),
        # Previous item scrolled out of the window: the newest user messages must match.
        ([user("[Bob] q", "u2"), bot("answer", "a2")], ["[Bob] q"], "gone", ("answer", "a2")),
        ([user("[Bob] q", "u2"), bot("answer", "a2"), user("[Carol] z", "u3")], ["[Bob] q"], "gone", None),
    ],
)
def test_answer_after(items, messages, after, found) -> None:
    result = answer_after(items, messages, after)
    assert (None if result is None else (result.text, result.last_item_id)) == found


def test_tool_calls_left_without_output_are_pending() -> None:
    found = answer_after(HISTORY + [user("[Bob] q", "u2"), CALL], ["[Bob] q"], "a1")
    assert [(c.call_id, c.name) for c in found.pending_calls] == [("call_1", "get_time")]
    found = answer_after(HISTORY + [user("[Bob] q", "u2"), CALL, OUTPUT, bot("It is noon", "a2")], ["[Bob] q"], "a1")
    assert (found.text, found.pending_calls, found.last_item_id) == ("It is noon", (), "a2")


@pytest.mark.parametrize(
    ("attempt", "jitter", "retry_after", "delay"),
    [(1, 0.0, None, 1.0), (1, 1.0, None, 2.0), (2, 1.0, None, 4.0), (3, 0.5, None, 6.0),
     (10, 1.0, None, 120.0), (1, 0.0, 30.0, 30.0), (4, 1.0, 3.0, 16.0)],
)
def test_backoff_is_capped_exponential_with_jitter_and_honours_retry_after(attempt, jitter, retry_after,
                                                                           delay) -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=120.0)
    assert policy.delay(attempt, retry_after, jitter=lambda: jitter) == pytest.approx(delay)


def test_exhausted() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
