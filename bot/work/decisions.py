"""The runner's decisions, as pure functions over values: what a channel does next, what a failure
means, what a reply that Slack would not take means, and what an unfinished turn's lookup means.

Nothing here reads the store, calls a service or sleeps; the runner gathers the values, asks, and
performs the answer. So every row of every table is a unit test (tests/unit/test_decisions.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from bot.backends.base import CONVERSATION_GONE, SLACK_FILES_DOWN, BackendError, FailureKind
from bot.messages import InboxItem, ItemKind
from bot.outbound import sentences
from bot.outbound.slack_auth import AUTH_RETRY_DELAY
from bot.outbound.slack_errors import SLACK_AUTH, SLACK_PERMANENT
from bot.store import OpenTurn, TurnState
from bot.work.retry import CONTINUE, WAIT, RetryPolicy, Step, retry_in

MAX_DELIVERY_ATTEMPTS = 12  # tries to write an answer to Slack (about 20 minutes with backoff) before giving up
CONVERSATION_GONE_RETRIES = 2  # attempts after which a conversation that keeps vanishing is an ordinary failure
# Not the messages' fault: wait however long it takes (a busy conversation; Slack not handing over a file).
PATIENT_CODES = frozenset({"conversation_locked", SLACK_FILES_DOWN})

Jitter = Callable[[], float]


# --- the next step of a channel ----------------------------------------------------------------------


class Do(Enum):
    """What the runner does with a channel next."""

    DELIVER = "deliver"  # the open turn was answered: write its reply
    RESOLVE = "resolve"  # the open turn's outcome is unknown: look for its answer in the conversation
    RESET = "reset"  # the first pending item is a reset: forget the conversation
    LISTEN = "listen"  # add the items to the conversation as context, without an answer
    TURN = "turn"  # send the items to the model and write its answer
    WAIT = "wait"  # nothing to do until new work arrives


@dataclass(frozen=True, slots=True)
class Action:
    """One step: `do` with `items`; `reuse` is the open turn whose Slack messages the reply rewrites,
    `discard` the open turn whose messages go first (the new reply cannot reuse them)."""

    do: Do
    items: tuple[InboxItem, ...] = ()
    thread_ts: str | None = None
    reuse: OpenTurn | None = None
    discard: OpenTurn | None = None


def next_step(turn: OpenTurn | None, pending: Sequence[InboxItem], *, own: Sequence[InboxItem] | None = None,
              solo: bool = False, mentions_only: bool = False, reply_in_thread: bool = False,
              followups: frozenset[str] = frozenset()) -> Action:
    """The channel's next step, from its open turn (None when none is left — or the channel is settled),
    its pending items, and — for a `started` turn the conversation showed no answer for — the turn's
    `own` items. `solo`: take one message (a refused one is being hunted); `mentions_only`: only a mention
    asks for an answer (a direct message always does) — or a reply in one of the `followups` threads
    (those the assistant answered in, when follow-ups are on)."""
    if turn is not None and turn.state is TurnState.ANSWERED:
        return Action(Do.DELIVER, reuse=turn)
    if turn is not None and turn.state is TurnState.STARTED:
        if own is None:
            return Action(Do.RESOLVE, reuse=turn)
        if own:  # it never completed: exactly its messages again (newer ones wait for the next turn)
            return _answer_or_listen(tuple(own), turn, silent=turn.silent, reply_in_thread=reply_in_thread)
    if not pending:
        return Action(Do.WAIT, discard=turn)
    if pending[0].kind is ItemKind.RESET:
        return Action(Do.RESET, items=(pending[0],))
    batch = tuple(next_batch(pending, solo=solo))
    silent = mentions_only and not any(addressed(item, followups) for item in batch)
    return _answer_or_listen(batch, turn, silent=silent, reply_in_thread=reply_in_thread)


def _answer_or_listen(batch: tuple[InboxItem, ...], earlier: OpenTurn | None, *, silent: bool,
                      reply_in_thread: bool) -> Action:
    if silent:
        return Action(Do.LISTEN, items=batch, discard=earlier)
    return place_turn(batch, earlier, reply_in_thread=reply_in_thread)


def place_turn(batch: Sequence[InboxItem], earlier: OpenTurn | None, *, reply_in_thread: bool) -> Action:
    """A turn's place in Slack: its thread, and whether it rewrites the earlier attempt's messages (same
    place) or removes them first (another thread)."""
    thread_ts = batch[0].thread_ts or (batch[0].ts if reply_in_thread else None)
    same = earlier is not None and earlier.thread_ts == thread_ts
    return Action(Do.TURN, items=tuple(batch), thread_ts=thread_ts, reuse=earlier if same else None,
                  discard=None if same else earlier)


def next_batch(items: Sequence[InboxItem], *, solo: bool = False) -> list[InboxItem]:
    """The leading run of messages in one place (the channel, or one thread), up to the next reset."""
    batch: list[InboxItem] = []
    for item in items:
        if item.kind is not ItemKind.MESSAGE or item.thread_ts != items[0].thread_ts:
            break
        batch.append(item)
        if solo:
            break
    return batch


def addressed(item: InboxItem, followups: frozenset[str]) -> bool:
    """Does the message ask the assistant for an answer in a mention-only channel: it mentions the bot,
    or it is a reply in a thread the assistant answered in (`followups`, when follow-ups are on)?"""
    return item.mentions_bot or (item.thread_ts is not None and item.thread_ts in followups)


def followup_threads(pending: Sequence[InboxItem], *, mentions_only: bool, followups_on: bool) -> list[str]:
    """The threads of `pending` whose replies may be follow-ups: the ones the runner asks the store about
    (none when every message is answered anyway, or follow-ups are off)."""
    if not mentions_only or not followups_on:
        return []
    return list(dict.fromkeys(item.thread_ts for item in pending if item.thread_ts is not None))


def mentions_only(respond_to: str, channel: str) -> bool:
    """Whether only a mention asks for an answer in `channel` (never so in a direct message)."""
    return respond_to == "mentions" and not channel.startswith("D")


# --- after a failed turn -----------------------------------------------------------------------------


class TurnEffect(Enum):
    """What a failed attempt's journal entry becomes."""

    ABANDON = "abandon"  # finished as failed; its Slack messages stay (an account notice is for people)
    RETRY = "retry"  # the next attempt rewrites its Slack messages


@dataclass(frozen=True, slots=True)
class AfterFailure:
    """Everything the runner does after a failed attempt, in this order: the journal `effect`, a
    `reset` of the conversation, the `solo` hunt switched on or off, the `skip`ped items, `quiet`
    (remove what the attempt's reply showed), the `note` posted where the skipped items were, `tell`
    (the attempt's reply ends with it), the account failure now `reported`; then `step`."""

    step: Step
    effect: TurnEffect | None = None
    reset: bool = False
    solo: bool | None = None
    skip: tuple[InboxItem, ...] = ()
    quiet: bool = False
    note: str | None = None
    tell: str | None = None
    reported: str | None = None


def attempt_of(batch: Sequence[InboxItem]) -> int:
    """The attempt (1-based) a batch's turn is: one more than its most-tried item's."""
    return max(item.attempts for item in batch) + 1


def after_failure(error: BackendError, batch: Sequence[InboxItem], *, policy: RetryPolicy, journalled: bool,
                  silent: bool = False, reported: str | None = None,
                  jitter: Jitter = random.random) -> AfterFailure:
    """What a failed attempt means. `journalled`: the attempt has a journal entry (it failed after
    `start_turn`); `silent`: context nobody asked about; `reported`: the account failure already told."""
    attempt = attempt_of(batch)
    effect = None
    if journalled and not error.outcome_unknown:  # not in the conversation: this attempt is over
        effect = TurnEffect.ABANDON if error.kind is FailureKind.ACCOUNT else TurnEffect.RETRY
    if error.code == CONVERSATION_GONE and attempt <= CONVERSATION_GONE_RETRIES:
        return AfterFailure(CONTINUE, effect, reset=True, quiet=True)
    delay = policy.delay(attempt, error.retry_after, jitter=jitter)
    if silent:
        if error.kind is FailureKind.ACCOUNT:
            return AfterFailure(WAIT, effect)
        if error.kind is FailureKind.REQUEST or (policy.exhausted(attempt) and error.code not in PATIENT_CODES):
            return AfterFailure(CONTINUE, effect, skip=tuple(batch))
        return AfterFailure(retry_in(delay), effect)
    if error.kind is FailureKind.TRANSIENT:
        patient = error.code in PATIENT_CODES
        exhausted = tuple(item for item in batch if not patient and policy.exhausted(item.attempts + 1))
        if exhausted:
            note = sentences.gave_up([i.user for i in exhausted], error.message, attempt)
            return AfterFailure(CONTINUE, effect, skip=exhausted, quiet=True, note=note)
        if attempt == 1:  # said once; later attempts stay quiet
            return AfterFailure(retry_in(delay), effect, tell=sentences.model_trouble(error.message))
        return AfterFailure(retry_in(delay), effect, quiet=True)
    if error.kind is FailureKind.REQUEST:
        if len(batch) > 1:  # which message is refused? one at a time until it is found
            return AfterFailure(CONTINUE, effect, solo=True, quiet=True)
        note = sentences.refused([batch[0].user], error.message)
        return AfterFailure(CONTINUE, effect, solo=False, skip=tuple(batch), quiet=True, note=note)
    key = error.code or error.message
    if reported == key:  # already told; the messages wait for the next try
        return AfterFailure(WAIT, effect, quiet=True)
    return AfterFailure(WAIT, effect, tell=sentences.model_failed(error.message), reported=key)


# --- after Slack would not take a reply --------------------------------------------------------------


class Undelivered(Enum):
    """What a reply Slack would not take means for its turn."""

    CANNOT_WRITE = "cannot_write"  # the channel refuses the bot until someone acts: skip the turn
    PAUSED = "paused"  # Slack refuses the bot's token, everywhere: keep the answer, try again later
    GAVE_UP = "gave_up"  # every attempt failed: skip the turn
    RETRY = "retry"  # try writing it again after `AfterUndelivered.step`'s delay


@dataclass(frozen=True, slots=True)
class AfterUndelivered:
    """What a reply Slack would not take means, and what the worker does next."""

    outcome: Undelivered
    step: Step


def after_undelivered(slack_error: str | None, attempt: int, *, policy: RetryPolicy,
                      jitter: Jitter = random.random) -> AfterUndelivered:
    """`slack_error`: Slack's error code (None when Slack could not be reached); `attempt`: 1-based. A
    refused token is an outage of the whole workspace, not this reply's fault: it never uses up attempts."""
    if slack_error in SLACK_AUTH:
        return AfterUndelivered(Undelivered.PAUSED, retry_in(min(policy.delay(attempt, jitter=jitter),
                                                                 AUTH_RETRY_DELAY)))
    if slack_error in SLACK_PERMANENT:
        return AfterUndelivered(Undelivered.CANNOT_WRITE, CONTINUE)
    if attempt >= MAX_DELIVERY_ATTEMPTS:
        return AfterUndelivered(Undelivered.GAVE_UP, CONTINUE)
    return AfterUndelivered(Undelivered.RETRY, retry_in(policy.delay(attempt, jitter=jitter)))


# --- an unfinished turn, looked up in the conversation -----------------------------------------------


def after_lookup_failure(error: BackendError, tries: int, *, policy: RetryPolicy,
                         jitter: Jitter = random.random) -> Step:
    """The conversation could not be asked about an unfinished turn (`tries` failed looks so far)."""
    if error.kind is FailureKind.ACCOUNT:
        return WAIT  # nothing works until an admin acts; the next message tries again
    return retry_in(policy.delay(tries, error.retry_after, jitter=jitter))


class Found(Enum):
    """What the conversation showed about an unfinished turn."""

    RESEND = "resend"  # no answer: send its messages again
    CONTINUE_TOOLS = "continue_tools"  # interrupted between tool calls and their results: carry on
    FINISH = "finish"  # answered, and nobody asked (context): finish the turn
    DELIVER = "deliver"  # answered: write the answer to Slack


def after_lookup(*, answered: bool, pending_calls: bool, has_items: bool, silent: bool) -> Found:
    """`answered`: the conversation holds the turn; `pending_calls`: tool calls without results there;
    `has_items`: the journal still knows the turn's items (needed to carry on)."""
    if not answered:
        return Found.RESEND
    if pending_calls and has_items:
        return Found.CONTINUE_TOOLS
    return Found.FINISH if silent else Found.DELIVER
