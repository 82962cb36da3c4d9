"""The runner's decisions, one table row per case: the next step of a channel, what a failed turn
means, what a reply Slack would not take means, and what looking up an unfinished turn means."""

from __future__ import annotations

import pytest

from bot.backends.base import CONVERSATION_GONE, SLACK_FILES_DOWN, BackendError, FailureKind
from bot.messages import InboxItem, ItemKind
from bot.outbound import sentences
from bot.outbound.slack_auth import AUTH_RETRY_DELAY
from bot.store import OpenTurn, TurnState
from bot.work.decisions import (
    MAX_DELIVERY_ATTEMPTS,
    Action,
    AfterFailure,
    AfterUndelivered,
    Do,
    Found,
    TurnEffect,
    Undelivered,
    after_failure,
    after_lookup,
    after_lookup_failure,
    after_undelivered,
    attempt_of,
    mentions_only,
    next_batch,
    next_step,
    place_turn,
)
from bot.work.retry import CONTINUE, WAIT, RetryPolicy, retry_in

TRANSIENT, ACCOUNT, REQUEST = FailureKind.TRANSIENT, FailureKind.ACCOUNT, FailureKind.REQUEST
POLICY = RetryPolicy(max_attempts=3, base_delay=2.0, max_delay=120.0)


def no_jitter() -> float:
    """The top of the jitter range: a delay is exactly the capped backoff (2s, 4s, 8s …)."""
    return 1.0


def item(ts: str, *, user: str = "U1", thread_ts: str | None = None, mention: bool = False, attempts: int = 0,
         kind: ItemKind = ItemKind.MESSAGE, channel: str = "C1") -> InboxItem:
    return InboxItem(id=int(float(ts) * 10), channel=channel, kind=kind, order_ts=ts, user=user, text=f"text {ts}",
                     thread_ts=thread_ts, mentions_bot=mention, attempts=attempts)


def turn(state: TurnState, *, thread_ts: str | None = None, silent: bool = False) -> OpenTurn:
    return OpenTurn(id=7, channel="C1", thread_ts=thread_ts, state=state, reply_text="answer" if state is
                    TurnState.ANSWERED else None, conversation_id="conv", input_texts=("a",), messages=("9.0",),
                    silent=silent)


M1, M2, M3 = item("1.0"), item("2.0"), item("3.0")
MENTION = item("2.0", mention=True)
IN_THREAD = item("4.0", thread_ts="0.5")
RESET = item("1.5", kind=ItemKind.RESET)
ANSWERED, STARTED, RETRY = turn(TurnState.ANSWERED), turn(TurnState.STARTED), turn(TurnState.RETRY)
SILENT_STARTED = turn(TurnState.STARTED, silent=True)
RETRY_IN_THREAD = turn(TurnState.RETRY, thread_ts="0.5")


# --- the next step --------------------------------------------------------------------------------

# (case, open turn, pending items, own items, options, expected action)
NEXT_STEP = [
    ("nothing at all", None, [], None, {}, Action(Do.WAIT)),
    ("answered turn first, before pending items", ANSWERED, [M1], None, {}, Action(Do.DELIVER, reuse=ANSWERED)),
    ("started turn: look it up first", STARTED, [M1], None, {}, Action(Do.RESOLVE, reuse=STARTED)),
    ("started turn not found: its own items again, in its messages", STARTED, [M1, M2, M3], [M1, M2], {},
     Action(Do.TURN, items=(M1, M2), reuse=STARTED)),
    ("started silent turn not found: its own items again as context", SILENT_STARTED, [M1], [M1], {},
     Action(Do.LISTEN, items=(M1,), discard=SILENT_STARTED)),
    ("started turn not found, own items in another thread: its messages go", STARTED, [IN_THREAD], [IN_THREAD], {},
     Action(Do.TURN, items=(IN_THREAD,), thread_ts="0.5", discard=STARTED)),
    ("started turn without own items, nothing pending: its messages go", STARTED, [], [], {},
     Action(Do.WAIT, discard=STARTED)),
    ("started turn without own items: the pending ones, in its messages", STARTED, [M1], [], {},
     Action(Do.TURN, items=(M1,), reuse=STARTED)),
    ("retry turn, nothing pending: its messages go", RETRY, [], None, {}, Action(Do.WAIT, discard=RETRY)),
    ("a reset first", None, [RESET, M2], None, {}, Action(Do.RESET, items=(RESET,))),
    ("a reset first keeps a retry turn open", RETRY, [RESET, M2], None, {}, Action(Do.RESET, items=(RESET,))),
    ("messages up to a reset", None, [M1, M2, RESET, M3], None, {}, Action(Do.TURN, items=(M1, M2))),
    ("messages up to another thread", None, [M1, IN_THREAD], None, {}, Action(Do.TURN, items=(M1,))),
    ("a thread's messages answer in the thread", None, [IN_THREAD], None, {},
     Action(Do.TURN, items=(IN_THREAD,), thread_ts="0.5")),
    ("reply in thread: under the first message", None, [M1, M2], None, {"reply_in_thread": True},
     Action(Do.TURN, items=(M1, M2), thread_ts="1.0")),
    ("solo: one message", None, [M1, M2], None, {"solo": True}, Action(Do.TURN, items=(M1,))),
    ("retry turn in the same place: its messages are rewritten", RETRY_IN_THREAD, [IN_THREAD], None, {},
     Action(Do.TURN, items=(IN_THREAD,), thread_ts="0.5", reuse=RETRY_IN_THREAD)),
    ("retry turn in another place: its messages go", RETRY, [IN_THREAD], None, {},
     Action(Do.TURN, items=(IN_THREAD,), thread_ts="0.5", discard=RETRY)),
    ("mention-only channel, no mention: context", None, [M1, M3], None, {"mentions_only": True},
     Action(Do.LISTEN, items=(M1, M3))),
    ("mention-only channel, no mention, a retry turn: its messages go", RETRY, [M1], None, {"mentions_only": True},
     Action(Do.LISTEN, items=(M1,), discard=RETRY)),
    ("mention-only channel, one mention: the batch is answered", None, [M1, MENTION], None,
     {"mentions_only": True}, Action(Do.TURN, items=(M1, MENTION))),
]


@pytest.mark.parametrize(("open_turn", "pending", "own", "options", "expected"),
                         [row[1:] for row in NEXT_STEP], ids=[row[0] for row in NEXT_STEP])
def test_next_step(open_turn, pending, own, options, expected) -> None:
    assert next_step(open_turn, pending, own=own, **options) == expected


@pytest.mark.parametrize(("respond_to", "channel", "expected"), [
    ("mentions", "C1", True),
    ("mentions", "D1", False),  # a direct message always asks for an answer
    ("all", "C1", False),
    ("all", "D1", False),
])
def test_mentions_only(respond_to: str, channel: str, expected: bool) -> None:
    assert mentions_only(respond_to, channel) is expected


def test_place_turn_for_a_continuation_reuses_the_turns_messages() -> None:
    assert place_turn([M1], STARTED, reply_in_thread=False) == Action(Do.TURN, items=(M1,), reuse=STARTED)


def test_next_batch_of_solo_and_of_nothing() -> None:
    assert next_batch([M1, M2], solo=True) == [M1]
    assert next_batch([RESET, M1]) == []


@pytest.mark.parametrize(("batch", "expected"), [([M1], 1), ([item("1.0", attempts=2), M2], 3)])
def test_attempt_of(batch: list[InboxItem], expected: int) -> None:
    assert attempt_of(batch) == expected


# --- after a failed turn --------------------------------------------------------------------------

def error(kind: FailureKind, code: str | None = None, *, unknown: bool = False,
          retry_after: float | None = None) -> BackendError:
    return BackendError("the reason", kind=kind, code=code, outcome_unknown=unknown, retry_after=retry_after)


TRIED_TWICE = item("1.0", attempts=2)  # its next attempt is the policy's last
TRIED_ONCE = item("2.0", user="U2", attempts=1)
CONTEXT_GONE = AfterFailure(CONTINUE, TurnEffect.RETRY, reset=True, quiet=True)

# (case, error, batch, options, expected decision)
AFTER_FAILURE = [
    ("conversation gone: reset it and go again", error(TRANSIENT, CONVERSATION_GONE), [M1], {}, CONTEXT_GONE),
    ("conversation gone on the second attempt too", error(TRANSIENT, CONVERSATION_GONE), [TRIED_ONCE], {},
     CONTEXT_GONE),
    ("conversation gone a third time: an ordinary failure", error(TRANSIENT, CONVERSATION_GONE), [TRIED_TWICE], {},
     AfterFailure(CONTINUE, TurnEffect.RETRY, skip=(TRIED_TWICE,), quiet=True,
                  note=sentences.gave_up(["U1"], "the reason", 3))),
    ("conversation gone before the turn was journalled", error(REQUEST, CONVERSATION_GONE), [M1],
     {"journalled": False}, AfterFailure(CONTINUE, None, reset=True, quiet=True)),
    ("conversation gone, silent", error(ACCOUNT, CONVERSATION_GONE), [M1], {"silent": True},
     AfterFailure(CONTINUE, TurnEffect.ABANDON, reset=True, quiet=True)),
    ("outcome unknown: the journal entry stays started", error(TRANSIENT, unknown=True), [TRIED_ONCE], {},
     AfterFailure(retry_in(4.0), None, quiet=True)),
    ("silent, account: wait, quietly", error(ACCOUNT), [M1], {"silent": True}, AfterFailure(WAIT, TurnEffect.ABANDON)),
    ("silent, refused: skip, quietly", error(REQUEST), [M1, M2], {"silent": True},
     AfterFailure(CONTINUE, TurnEffect.RETRY, skip=(M1, M2))),
    ("silent, transient, attempts left: retry, quietly", error(TRANSIENT), [M1], {"silent": True},
     AfterFailure(retry_in(2.0), TurnEffect.RETRY)),
    ("silent, transient, Retry-After longer than the backoff", error(TRANSIENT, retry_after=30.0), [M1],
     {"silent": True, "journalled": False}, AfterFailure(retry_in(30.0), None)),
    ("silent, transient, the last attempt: skip, quietly", error(TRANSIENT), [TRIED_TWICE], {"silent": True},
     AfterFailure(CONTINUE, TurnEffect.RETRY, skip=(TRIED_TWICE,))),
    ("transient, first attempt: say so once, retry", error(TRANSIENT), [M1, M2], {},
     AfterFailure(retry_in(2.0), TurnEffect.RETRY, tell=sentences.model_trouble("the reason"))),
    ("transient, first attempt before the journal: said in the channel", error(TRANSIENT), [M1],
     {"journalled": False}, AfterFailure(retry_in(2.0), None, tell=sentences.model_trouble("the reason"))),
    ("transient, later attempt: quietly, retry", error(TRANSIENT), [TRIED_ONCE, M1], {},
     AfterFailure(retry_in(4.0), TurnEffect.RETRY, quiet=True)),
    ("transient, Retry-After longer than the backoff", error(TRANSIENT, retry_after=60.0), [TRIED_ONCE], {},
     AfterFailure(retry_in(60.0), TurnEffect.RETRY, quiet=True)),
    ("transient, one message out of attempts: it alone is skipped", error(TRANSIENT), [TRIED_TWICE, TRIED_ONCE], {},
     AfterFailure(CONTINUE, TurnEffect.RETRY, skip=(TRIED_TWICE,), quiet=True,
                  note=sentences.gave_up(["U1"], "the reason", 3))),
    ("busy conversation: never out of attempts", error(TRANSIENT, "conversation_locked"), [TRIED_TWICE], {},
     AfterFailure(retry_in(8.0), TurnEffect.RETRY, quiet=True)),
    ("Slack not handing over a file: never out of attempts", error(TRANSIENT, SLACK_FILES_DOWN), [TRIED_TWICE],
     {"journalled": False}, AfterFailure(retry_in(8.0), None, quiet=True)),
    ("Slack not handing over a file, silent: never skipped", error(TRANSIENT, SLACK_FILES_DOWN), [TRIED_TWICE],
     {"silent": True, "journalled": False}, AfterFailure(retry_in(8.0), None)),
    ("refused batch: hunt one message at a time", error(REQUEST), [M1, M2], {},
     AfterFailure(CONTINUE, TurnEffect.RETRY, solo=True, quiet=True)),
    ("refused single message: skip it, stop hunting", error(REQUEST), [M2], {},
     AfterFailure(CONTINUE, TurnEffect.RETRY, solo=False, skip=(M2,), quiet=True,
                  note=sentences.refused(["U1"], "the reason"))),
    ("account: tell once, the messages wait", error(ACCOUNT, "insufficient_quota"), [M1], {},
     AfterFailure(WAIT, TurnEffect.ABANDON, tell=sentences.model_failed("the reason"),
                  reported="insufficient_quota")),
    ("account, already told: quietly", error(ACCOUNT, "insufficient_quota"), [M1],
     {"reported": "insufficient_quota"}, AfterFailure(WAIT, TurnEffect.ABANDON, quiet=True)),
    ("account, another failure than the one told", error(ACCOUNT, "invalid_api_key"), [M1],
     {"reported": "insufficient_quota"},
     AfterFailure(WAIT, TurnEffect.ABANDON, tell=sentences.model_failed("the reason"), reported="invalid_api_key")),
    ("account without a code: known by its message", error(ACCOUNT), [M1], {"reported": "the reason"},
     AfterFailure(WAIT, TurnEffect.ABANDON, quiet=True)),
]


@pytest.mark.parametrize(("failure", "batch", "options", "expected"),
                         [row[1:] for row in AFTER_FAILURE], ids=[row[0] for row in AFTER_FAILURE])
def test_after_failure(failure: BackendError, batch: list[InboxItem], options: dict, expected: AfterFailure) -> None:
    options = {"journalled": True, **options}
    assert after_failure(failure, batch, policy=POLICY, jitter=no_jitter, **options) == expected


def test_after_failure_delays_are_jittered_within_half_to_full_backoff() -> None:
    low = after_failure(error(TRANSIENT), [TRIED_ONCE], policy=POLICY, journalled=True, jitter=lambda: 0.0)
    assert low.step == retry_in(2.0)


# --- after Slack would not take a reply ------------------------------------------------------------

# (case, Slack's error code, attempt, expected)
AFTER_UNDELIVERED = [
    ("the bot cannot write there", "not_in_channel", 1, AfterUndelivered(Undelivered.CANNOT_WRITE, CONTINUE)),
    ("cannot write there, even on the last attempt", "channel_not_found", MAX_DELIVERY_ATTEMPTS,
     AfterUndelivered(Undelivered.CANNOT_WRITE, CONTINUE)),
    ("Slack unreachable, the last attempt", None, MAX_DELIVERY_ATTEMPTS,
     AfterUndelivered(Undelivered.GAVE_UP, CONTINUE)),
    ("a Slack error, the first attempt", "internal_error", 1, AfterUndelivered(Undelivered.RETRY, retry_in(2.0))),
    ("Slack unreachable, a later attempt", None, 3, AfterUndelivered(Undelivered.RETRY, retry_in(8.0))),
    ("the backoff is capped", "ratelimited", MAX_DELIVERY_ATTEMPTS - 1,
     AfterUndelivered(Undelivered.RETRY, retry_in(120.0))),
    # The bot's token refused: the whole workspace waits for an admin; the answer is never given up.
    ("the token was revoked", "token_revoked", 1, AfterUndelivered(Undelivered.PAUSED, retry_in(2.0))),
    ("the token is not valid", "invalid_auth", 3, AfterUndelivered(Undelivered.PAUSED, retry_in(8.0))),
    ("the workspace's account is inactive", "account_inactive", 2, AfterUndelivered(Undelivered.PAUSED,
                                                                                      retry_in(4.0))),
    ("no token was sent", "not_authed", 1, AfterUndelivered(Undelivered.PAUSED, retry_in(2.0))),
    ("the app lacks the scope for the write", "missing_scope", 1, AfterUndelivered(Undelivered.PAUSED,
                                                                                     retry_in(2.0))),
    ("a refused token never uses up the attempts", "token_revoked", MAX_DELIVERY_ATTEMPTS + 5,
     AfterUndelivered(Undelivered.PAUSED, retry_in(AUTH_RETRY_DELAY))),
]


@pytest.mark.parametrize(("code", "attempt", "expected"), [row[1:] for row in AFTER_UNDELIVERED],
                         ids=[row[0] for row in AFTER_UNDELIVERED])
def test_after_undelivered(code: str | None, attempt: int, expected: AfterUndelivered) -> None:
    assert after_undelivered(code, attempt, policy=POLICY, jitter=no_jitter) == expected


# --- an unfinished turn, looked up -----------------------------------------------------------------

# (case, error, failed looks so far, expected step)
AFTER_LOOKUP_FAILURE = [
    ("account: wait for an admin", error(ACCOUNT), 1, WAIT),
    ("transient: back off", error(TRANSIENT), 1, retry_in(2.0)),
    ("transient, looked three times", error(TRANSIENT), 3, retry_in(8.0)),
    ("Retry-After longer than the backoff", error(TRANSIENT, retry_after=30.0), 2, retry_in(30.0)),
    ("refused: back off too", error(REQUEST), 2, retry_in(4.0)),
]


@pytest.mark.parametrize(("failure", "tries", "expected"), [row[1:] for row in AFTER_LOOKUP_FAILURE],
                         ids=[row[0] for row in AFTER_LOOKUP_FAILURE])
def test_after_lookup_failure(failure: BackendError, tries: int, expected) -> None:
    assert after_lookup_failure(failure, tries, policy=POLICY, jitter=no_jitter) == expected


# (answered, pending tool calls, the journal has its items, silent) → what to do
AFTER_LOOKUP = [
    (False, False, False, False, Found.RESEND),
    (False, False, True, True, Found.RESEND),
    (True, True, True, False, Found.CONTINUE_TOOLS),
    (True, True, True, True, Found.CONTINUE_TOOLS),
    (True, True, False, False, Found.DELIVER),  # nothing to carry on with: what it said so far
    (True, True, False, True, Found.FINISH),
    (True, False, True, False, Found.DELIVER),
    (True, False, True, True, Found.FINISH),
]


@pytest.mark.parametrize(("answered", "pending_calls", "has_items", "silent", "expected"), AFTER_LOOKUP)
def test_after_lookup(answered: bool, pending_calls: bool, has_items: bool, silent: bool, expected: Found) -> None:
    assert after_lookup(answered=answered, pending_calls=pending_calls, has_items=has_items,
                        silent=silent) is expected
