"""The world one scenario runs in: both emulators in this process, one real `assistant-bridge run`."""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.procstat import Meter
from tests.e2e.harness import MODEL, REPO_ROOT, BridgeProcess
from tests.emulators.openai import ModelRequest, OpenAIEmulator, ScriptedModel
from tests.emulators.openai.model import default_reply
from tests.emulators.slack import SlackEmulator

T = TypeVar("T")
TOKEN = re.compile(r"bench-(\d{7})")
REPLY_METHODS = ("chat.update", "chat.postMessage")
PROGRESS_EVERY = 15.0  # seconds between progress notes on stderr while waiting
END = "END-OF-ANSWER"  # the scripted model ends every answer with this, so a complete answer is recognisable


class BenchError(Exception):
    """The run could not go on (a timeout, the bridge died); the message says what was awaited."""


class WaitTimeout(BenchError):
    """What was awaited did not happen in time."""


def token_text(token: int) -> str:
    return f"bench-{token:07d}"


def tokens_in(text: str) -> list[int]:
    return [int(t) for t in TOKEN.findall(text)]


def final_text(args: dict) -> str:
    """The text of a chat.postMessage/chat.update call (or a stored message) if it shows a complete
    answer, else '' (a working indicator, or a reply still growing)."""
    text = str(args.get("markdown_text") or args.get("text") or "").rstrip()
    return text if text.endswith(END) else ""


def marked_reply(request: ModelRequest) -> str:
    """The scripted model's usual echo of what it heard, plus the end marker."""
    return f"{default_reply(request)} {END}"


def _started(make: Callable[[], T]) -> tuple[T, threading.Thread]:
    """Build and start an emulator; also return the event-loop thread it started (for its CPU time)."""
    before = set(threading.enumerate())
    emulator = make()
    emulator.start()  # type: ignore[attr-defined]
    (thread,) = [t for t in threading.enumerate() if t not in before and t.name == "emulator"]
    return emulator, thread


@dataclass(frozen=True)
class Setup:
    """What every scenario shares: the model's timing (zero latency by default) and how long to wait."""

    ttft: float = 0.0
    chunk_delay: float = 0.0
    timeout: float = 900.0  # seconds any one wait may take before the run is declared stuck


class World:
    """Slack and OpenAI emulators (the scripted model timed by `setup`, Slack rate limits off), `channels`
    channels with `users` members each (and the bot), and the bridge connected over Socket Mode.
    A scenario may turn Slack's rate limits on (`rate_limits="real"`), add to the bridge's environment
    (`env`) or bring its own scripted `model`. A context manager."""

    def __init__(self, channels: int, setup: Setup, *, users: int = 3, rate_limits: str = "off",
                 env: Mapping[str, str] | None = None, model: ScriptedModel | None = None,
                 program: list[str] | None = None, replicas: int = 1,
                 before_start: Callable[[World], None] | None = None) -> None:
        self.before_start = before_start  # run once the emulators and work dir exist, before the bridge starts
        self.program = program  # None: the bridge; else the command line of another app (the reference)
        self.replicas = replicas  # bridge processes on one database (DATABASE_URL in `env`: PostgreSQL)
        self.others: list[BridgeProcess] = []
        self.setup = setup
        self.rate_limits = rate_limits
        # The bridge runs the `bot` package beside this benchmark (a checkout or worktree measures its own
        # code, whatever copy the Python's environment has installed).
        self.env = {"PYTHONPATH": str(REPO_ROOT), **(env or {})}
        self.model = model
        self.channel_count = channels
        self.user_count = users
        self._stack = contextlib.ExitStack()
        self._at_model: set[int] = set()
        self._seen_cursor = 0
        self._calls_cursor = 0  # (reply_written)
        self._written: set[int] = set()
        self.health = ""  # after exit: the bridge's exit status and what its log complained about
        self.abandoned = False  # answers were left queued: kill the bridge rather than wait for its grace

    def __enter__(self) -> World:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        self.slack, slack_thread = _started(lambda: SlackEmulator(rate_limits=self.rate_limits))
        self._stack.callback(self.slack.stop)
        model = self.model
        if model is None:
            model = ScriptedModel(ttft=self.setup.ttft, chunk_delay=self.setup.chunk_delay)
            model.reply_fn = marked_reply
        self.openai, openai_thread = _started(lambda: OpenAIEmulator(models=(MODEL,), model=model))
        self._stack.callback(self.openai.stop)
        self.user_ids = [self.slack.add_user(f"user{i}", display_name=f"User {i}") for i in range(self.user_count)]
        self.channel_ids = [self.slack.add_channel(f"bench-{i}", members=self.user_ids)
                            for i in range(self.channel_count)]
        self.workdir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="bridge-bench-")))
        self.bridge = BridgeProcess(self.slack, self.openai, self.workdir, env=self.env, program=self.program)
        self._stack.callback(self._stop_bridge)
        if self.before_start is not None:
            self.before_start(self)
        self.bridge.start()
        for _ in range(self.replicas - 1):
            other = BridgeProcess(self.slack, self.openai, self.workdir, env=self.env, program=self.program)
            self._stack.callback(lambda other=other: other.stop() if other.alive else None)
            self.others.append(other.start())
        assert self.bridge.process is not None
        self.pid = self.bridge.process.pid
        self.meter = Meter(self.pid, {"Slack emulator": slack_thread.native_id or 0,
                                      "OpenAI emulator": openai_thread.native_id or 0})

    def _stop_bridge(self) -> None:
        if self.bridge.process is None:
            return
        if self.abandoned and self.bridge.alive:
            self.bridge.kill()
            stopped = "bridge killed (answers were still queued; no clean stop awaited)"
        else:
            status = self.bridge.stop() if self.bridge.alive else self.bridge.process.returncode
            stopped = f"bridge exit status {status}"
        lines = self.bridge.log.splitlines()
        counts = {word: sum(word in line for line in lines) for word in (" WARNING ", " ERROR ", "Traceback")}
        self.health = f"{stopped}; log lines: " + ", ".join(f"{n} {word.strip()}" for word, n in counts.items())

    # -- driving ------------------------------------------------------------------------------------
    def add_channels(self, count: int, *, invited: bool = True) -> list[int]:
        """`count` more channels with the same members; their numbers. `invited`: the bot is then added to
        each as a person does it (`member_joined_channel`), and once the bridge has looked each up (as it
        does at a join) this returns — as when people write after the bot was invited. Else the bot is a
        member without the bridge hearing of it (a join it missed): the first message looks the channel
        up. (Another program gets no join: it would not subscribe to the event.)"""
        numbers = []
        for _ in range(count):
            numbers.append(len(self.channel_ids))
            joins = invited and self.program is None
            channel = self.slack.add_channel(f"bench-{numbers[-1]}", members=self.user_ids, bot_is_member=not joins)
            self.channel_ids.append(channel)
            if joins:
                self.slack.join_channel(channel, self.slack.bot_user_id)
        if invited and self.program is None:
            wanted = {self.channel_ids[n] for n in numbers}
            self.wait(lambda: wanted <= {c.args.get("channel") for c in self.slack.calls("conversations.info")},
                      30, "the invited channels looked up")
            time.sleep(0.05)  # (their answers taken in)
        return numbers

    def say(self, channel: int, token: int) -> None:
        """A member of channel number `channel` writes a message carrying `token`."""
        user = self.user_ids[token % self.user_count]
        self.slack.user_says(self.channel_ids[channel], user, f"question {token_text(token)}, please answer")

    # -- progress (cheap, polled while the bridge works) --------------------------------------------
    def at_model(self) -> set[int]:
        """Tokens the model has seen so far (read from the scripted model's record, incrementally)."""
        seen = self.openai.model.seen
        for request in seen[self._seen_cursor:]:
            self._at_model.update(tokens_in(repr(request.input)))
        self._seen_cursor = len(seen)
        return self._at_model

    def answered(self) -> set[int]:
        """Tokens in complete answers the Slack emulator received (copies its call log: poll slowly)."""
        found: set[int] = set()
        for method in REPLY_METHODS:
            for call in self.slack.calls(method):
                if call.ok:
                    found.update(tokens_in(final_text(call.args)))
        return found

    def channel_answered(self, channel: int, token: int) -> bool:
        """Whether a complete answer in that channel carries `token` (cheap for a small channel)."""
        text = token_text(token)
        return any(text in final_text(m) for m in self.slack.messages(self.channel_ids[channel])
                   if m.get("bot_id") == self.slack.bot_id)

    def reply_written(self, token: int) -> bool:
        """Whether a complete answer carrying `token` reached Slack — read from the emulator's call log
        from where the last look ended, without a hop onto its loop: polled every few milliseconds while a
        latency is measured, it must not take the emulator's time from the app it measures."""
        calls = self.slack.calls_from(self._calls_cursor)
        self._calls_cursor += len(calls)
        for call in calls:
            if call.method in REPLY_METHODS and call.ok:
                self._written.update(tokens_in(final_text(call.args)))
        return token in self._written

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05,
             progress: Callable[[], str] | None = None) -> None:
        """Poll `predicate` until true; a note on stderr every PROGRESS_EVERY seconds; BenchError on timeout."""
        started = time.monotonic()
        note_at = started + PROGRESS_EVERY
        while not predicate():
            now = time.monotonic()
            if not self.bridge.alive:
                raise BenchError(f"the bridge exited while waiting for {what}:\n{self.log_tail()}")
            if now > started + timeout:
                raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f" ({progress()})" if progress else "") + "; the bridge's log ends:\n"
                                 + self.log_tail(15))
            if now >= note_at:
                note_at += PROGRESS_EVERY
                print(f"  … {now - started:.0f} s waiting for {what}" + (f": {progress()}" if progress else ""),
                      file=sys.stderr, flush=True)
            time.sleep(interval)

    def wait_all(self, tokens: Collection[int], *, limit: float | None = None, interval: float = 0.1) -> bool:
        """Until every token reached the model (cheap to poll), then until every one is answered: True.
        With `limit`, give up after that many seconds and return False; without, WaitTimeout after the
        setup's timeout."""
        wanted = set(tokens)
        budget = self.setup.timeout if limit is None else limit
        deadline = time.monotonic() + budget
        answered: set[int] = set()

        def all_answered() -> bool:
            answered.clear()
            answered.update(wanted & self.answered())
            return answered == wanted

        try:
            self.wait(lambda: wanted <= self.at_model(), budget, f"{len(wanted)} messages at the model", interval,
                      lambda: f"{len(wanted & self._at_model)} there so far")
            self.wait(all_answered, max(0.0, deadline - time.monotonic()), f"{len(wanted)} answers",
                      max(interval, 0.2), lambda: f"{len(answered)} answered so far")
        except WaitTimeout:
            if limit is None:
                raise
            self.abandoned = True
            return False
        return True

    def warm_up(self, channels: Iterable[int], first_token: int, *, one_at_a_time: bool = False) -> list[int]:
        """One message in each channel, answered (creates its conversation, fills the name caches)."""
        tokens = []
        for offset, channel in enumerate(channels):
            token = first_token + offset
            tokens.append(token)
            self.say(channel, token)
            if one_at_a_time:
                self.wait(lambda t=token: self.reply_written(t), 30, "a warm-up reply", 0.005)
                time.sleep(0.05)
        self.wait_all(tokens)
        return tokens

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.bridge.log.splitlines()[-lines:])

    def violations(self) -> list[str]:
        return self.slack.violations + self.openai.violations
