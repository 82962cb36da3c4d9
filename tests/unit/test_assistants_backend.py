"""The pure parts of the `assistants` backend: finding a turn in a thread, how run failures and SDK
errors are classified, the text shown across messages, and which messages a resent turn still adds.
(The backend against the emulated Assistants API: tests/backends/test_assistants.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx2
import openai
import pytest

from bot.backends.assistants import (
    AssistantsBackend,
    _Progress,
    _sdk_error,
    run_failure,
)
from bot.backends.assistants_thread import TurnInThread, locate_turn
from bot.backends.base import CONVERSATION_GONE, BackendError, FailureKind
from bot.backends.errors import failure_kind

REQUEST = httpx2.Request("POST", "https://api.openai.com/v1/threads/thread_1/runs")


def user(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "role": "user", "text": text, "status": "completed", "reason": None}


def said(item_id: str, text: str, status: str = "completed", reason: str | None = None) -> dict[str, Any]:
    return {"id": item_id, "role": "assistant", "text": text, "status": status, "reason": reason}


THREAD = [user("m1", "[Alice] hi"), said("m2", "Hi Alice"), user("m3", "[Bob] a"), user("m4", "[Cy] b"),
          said("m5", "Part one"), said("m6", "part two")]


# --- locate_turn ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("items", "messages", "after", "expected"), [
    (THREAD, ["[Bob] a", "[Cy] b"], "m2", TurnInThread(("[Bob] a", "[Cy] b"), True, "Part one\n\npart two", "m6")),
    (THREAD, ["[Alice] hi"], None, None),  # not the newest user messages
    (THREAD, ["[Cy] b"], "m2", None),  # after m2 come two messages, not one
    (THREAD, ["[Bob] a", "[Cy] b"], "msg_gone", TurnInThread(("[Bob] a", "[Cy] b"), True, "Part one\n\npart two",
                                                              "m6")),
    (THREAD, ["[Cy] b"], "msg_gone", TurnInThread(("[Cy] b",), True, "Part one\n\npart two", "m6")),
    (THREAD, ["[Alice] hi"], "m0", None),
    (THREAD[:2], ["[Alice] hi"], None, TurnInThread(("[Alice] hi",), True, "Hi Alice", "m2")),
    (THREAD[:1], ["[Alice] hi"], None, TurnInThread(("[Alice] hi",), True, "", "m1")),  # no answer (yet)
    ([], ["[Alice] hi"], None, None),
    (THREAD, [], None, None),
])
def test_locate_turn(items: list[dict[str, Any]], messages: list[str], after: str | None,
                     expected: TurnInThread | None) -> None:
    assert locate_turn(items, messages, after) == expected


def test_messages_cut_short_by_their_run_are_not_the_answer() -> None:
    items = [user("m1", "[Alice] hi"), said("m2", "Hel", "incomplete", "run_failed"), said("m3", "Hello there"),
             said("m4", "Trunc", "incomplete", "max_tokens"), said("m5", "wri", "in_progress")]
    assert locate_turn(items, ["[Alice] hi"], None).answer == "Hello there\n\nTrunc"


@pytest.mark.parametrize(("items", "after", "whole", "expected"), [
    (THREAD[:2] + [user("m3", "[Bob] a")], "m2", False, TurnInThread(("[Bob] a",), False, "", "m3")),
    ([user("m1", "[Bob] a")], None, True, TurnInThread(("[Bob] a",), False, "", "m1")),
    ([user("m1", "[Bob] a")], None, False, None),  # older messages may be beyond the page: cannot tell
    (THREAD[:2] + [user("m3", "[Bob] a"), said("m4", "?")], "m2", False, None),  # answered: not a context turn
    (THREAD[:2] + [user("m3", "[Cy] b")], "m2", False, None),  # not the first of the turn's messages
])
def test_a_context_turn_cut_short(items: list[dict[str, Any]], after: str | None, whole: bool,
                                  expected: TurnInThread | None) -> None:
    assert locate_turn(items, ["[Bob] a", "[Cy] b", "[Dee] c"], after, whole_thread=whole) == expected


# --- failures -----------------------------------------------------------------------------------------

def run(status: str, code: str | None = None, reason: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(id="run_1", status=status,
                           last_error=SimpleNamespace(code=code, message="Sorry") if code else None,
                           incomplete_details=SimpleNamespace(reason=reason) if reason else None)


@pytest.mark.parametrize(("failed", "kind", "code"), [
    (run("failed", "rate_limit_exceeded"), FailureKind.TRANSIENT, "rate_limit_exceeded"),
    (run("failed", "server_error"), FailureKind.TRANSIENT, "server_error"),
    (run("failed", "invalid_prompt"), FailureKind.REQUEST, "invalid_prompt"),
    (run("failed", "something_new"), FailureKind.TRANSIENT, "something_new"),
    (run("failed"), FailureKind.TRANSIENT, None),
    (run("cancelled"), FailureKind.TRANSIENT, None),
    (run("expired"), FailureKind.TRANSIENT, None),
    (run("incomplete", reason="max_completion_tokens"), FailureKind.TRANSIENT, "incomplete:max_completion_tokens"),
])
def test_run_failures(failed: SimpleNamespace, kind: FailureKind, code: str | None) -> None:
    error = run_failure(failed, "the model failed to answer")
    assert (error.kind, error.code, error.outcome_unknown, error.request_id) == (kind, code, True, "run_1")
    assert error.message.startswith("the model failed to answer (")


@pytest.mark.parametrize(("code", "kind"), [
    ("invalid_prompt", FailureKind.REQUEST), ("insufficient_quota", FailureKind.ACCOUNT),
    ("server_error", FailureKind.TRANSIENT), (None, FailureKind.TRANSIENT)])
def test_failure_kind(code: str | None, kind: FailureKind) -> None:
    assert failure_kind(code) is kind


def status_error(cls: type[openai.APIStatusError], status: int, message: str) -> openai.APIStatusError:
    body = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return cls(message, response=httpx2.Response(status, request=REQUEST), body=body)


@pytest.mark.parametrize("message", [
    "Thread thread_abc already has an active run run_xyz.",
    "Can't add messages to thread_abc while a run run_xyz is active.",
])
def test_the_active_run_rule_is_conversation_locked(message: str) -> None:
    error = _sdk_error(status_error(openai.BadRequestError, 400, message), in_thread=False)
    assert (error.kind, error.code, error.outcome_unknown, error.status) == (
        FailureKind.TRANSIENT, "conversation_locked", True, 400)


def test_sdk_errors() -> None:
    gone = _sdk_error(status_error(openai.NotFoundError, 404, "No thread found with id 'thread_abc'."), in_thread=False)
    assert (gone.code, gone.kind) == (CONVERSATION_GONE, FailureKind.TRANSIENT)
    in_stream = _sdk_error(openai.APIError("Sorry", REQUEST, body={"code": "invalid_prompt"}), in_thread=True)
    assert (in_stream.kind, in_stream.code, in_stream.outcome_unknown) == (FailureKind.REQUEST, "invalid_prompt", True)
    cut = _sdk_error(httpx2.RemoteProtocolError("peer closed connection", request=REQUEST), in_thread=True)
    assert (cut.code, cut.outcome_unknown) == ("stream_cut", True)
    refused = status_error(openai.BadRequestError, 400, "Invalid value")
    assert _sdk_error(refused, in_thread=False).outcome_unknown is False  # turned away: nothing stored
    lost = status_error(openai.InternalServerError, 500, "The server had an error")
    assert _sdk_error(lost, in_thread=False).outcome_unknown is True  # a 5xx may come after the write
    assert _sdk_error(refused, in_thread=True).outcome_unknown is True  # its messages may be in the thread
    same = BackendError("x", kind=FailureKind.REQUEST)
    assert _sdk_error(same, in_thread=True) is same


# --- what is shown, what is sent ----------------------------------------------------------------------------

def test_text_of_two_messages_is_separated() -> None:
    progress = _Progress()
    shown = [progress.add("msg_1", "Let me "), progress.add("msg_1", "look."), progress.add("msg_1", ""),
             progress.add("msg_2", "It is noon.")]
    assert shown == ["Let me ", "look.", "", "\n\nIt is noon."]
    assert (progress.text, progress.newest) == ("Let me look.\n\nIt is noon.", "msg_2")
    assert _Progress().add("msg_1", "First") == "First"


@pytest.fixture
async def backend() -> AsyncIterator[AssistantsBackend]:
    backend = AssistantsBackend(openai.AsyncOpenAI(api_key="sk-unused", base_url="http://127.0.0.1:9/v1"),
                                assistant_id="asst_1")
    yield backend
    await backend.aclose()


async def test_a_resent_turn_adds_only_what_the_thread_lacks(backend: AssistantsBackend) -> None:
    assert backend.name == "assistants" and backend.model == "the assistant's model"
    assert backend._unsent("thread_1", ["a", "b"]) == ("a", "b")
    backend._present["thread_1"] = ("a", "b")
    assert backend._unsent("thread_1", ["a", "b", "c"]) == ("c",)
    assert backend._unsent("thread_1", ["a", "b"]) == ("a", "b")  # used once
    backend._present["thread_1"] = ("a", "b", "c")
    assert backend._unsent("thread_1", ["a"]) == ()  # a shorter turn (one message at a time) ...
    assert backend._unsent("thread_1", ["b"]) == ()  # ... and the next one
    assert backend._unsent("thread_1", ["c", "d"]) == ("d",)
    backend._present["thread_1"] = ("a",)
    assert backend._unsent("thread_1", ["x", "a"]) == ("x", "a")  # another turn: nothing to skip
    assert backend._unsent("thread_2", []) == ()
