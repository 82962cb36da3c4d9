"""`OpenAIEmulator`: the public face of the emulator, safe to use from any thread."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from ..server import BackgroundServer, wait_until
from . import assistants, catalog, chat, conversations, files, responses, runs
from .app import API_PATHS, Platform, build_app
from .faults import ANY_STREAM, Delay, FaultPlan, HttpFault, LostAnswer, StreamFault
from .model import ScriptedModel
from .spec_check import spec_checker
from .state import PlatformState, Recorded

T = TypeVar("T")
DEFAULT_MODELS = ("gpt-4.1-mini", "gpt-4.1", "gpt-4.1-nano", "gpt-4o-mini", "gpt-4o", "gpt-5-mini", "gpt-5")
DEFAULT_API_KEY = "sk-test-key"
ENDPOINT_MODULES = (catalog, conversations, responses, chat, assistants, runs, files)


class OpenAIEmulator:
    """An OpenAI platform on a loopback port: Responses + Conversations, Chat Completions, Assistants.

    Construct it, `start()` it (or use it as a context manager), point a client at `base_url` with
    `api_key`. Script the model through `.model`, inject faults with `fail_next()` and friends, and
    inspect `requests()`, `violations`, `conversations` afterwards.
    """

    def __init__(self, *, api_key: str = DEFAULT_API_KEY, models: tuple[str, ...] = DEFAULT_MODELS,
                 model: ScriptedModel | None = None, self_check: bool = False, port: int = 0) -> None:
        self.api_key = api_key
        self.model = model if model is not None else ScriptedModel()
        self.faults = FaultPlan()
        self._state = PlatformState(tuple(models))
        self._state.api_key = api_key
        self.platform = Platform(self._state, self.model, self.faults, spec_checker(), self_check)
        self.server = BackgroundServer(build_app(self.platform, [m.register for m in ENDPOINT_MODULES]),
                                       port=port)
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> OpenAIEmulator:
        self.server.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.server.stop()

    def __enter__(self) -> OpenAIEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL / `base_url=` should be: http://127.0.0.1:PORT/v1"""
        return self.server.url + "/v1"

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run `fn` where the state lives: on the emulator loop once started, inline before."""
        if self._started and self.server.loop is not None:
            return self.server.call(fn)
        return fn()

    # -- inspection ----------------------------------------------------------------------------
    def requests(self, path_prefix: str | None = None) -> list[Recorded]:
        """Every request so far (copies), optionally only those whose path starts with `path_prefix`."""
        def pick() -> list[Recorded]:
            return [copy.copy(r) for r in self._state.requests
                    if path_prefix is None or r.path.startswith(path_prefix)]
        return self._on_loop(pick)

    @property
    def violations(self) -> list[str]:
        """Spec violations and platform-rule breaches seen in requests (strings, readable)."""
        return self._on_loop(lambda: list(self._state.violations))

    def clear_violations(self) -> None:
        self._on_loop(self._state.violations.clear)

    @property
    def self_violations(self) -> list[str]:
        """Where the emulator's own answers disagreed with the spec (only with `self_check=True`)."""
        return self._on_loop(lambda: list(self._state.self_violations))

    @property
    def conversations(self) -> dict[str, list[dict[str, Any]]]:
        """Snapshot: conversation id → its items (as the Conversations API would list them, oldest first)."""
        return self._on_loop(lambda: {cid: copy.deepcopy(c.items) for cid, c in self._state.conversations.items()})

    def conversation_items(self, conv_id: str) -> list[dict[str, Any]]:
        return self._on_loop(lambda: copy.deepcopy(self._state.conversations[conv_id].items))

    @property
    def threads(self) -> dict[str, list[dict[str, Any]]]:
        """Snapshot: Assistants thread id → its messages, oldest first."""
        return self._on_loop(lambda: {tid: copy.deepcopy(t.messages) for tid, t in self._state.threads.items()})

    def uploaded_files(self) -> dict[str, dict[str, Any]]:
        """Snapshot: file id → the upload (`filename`, `purpose`, `bytes`, and its `content`)."""
        return self._on_loop(lambda: copy.deepcopy(self._state.files))

    def run(self, run_id: str) -> dict[str, Any]:
        return self._on_loop(lambda: copy.deepcopy(self._state.runs[run_id].body))

    @property
    def max_concurrent_per_conversation(self) -> int:
        """Most POST /v1/responses ever in flight at once naming one conversation, refused ones included."""
        return self._on_loop(lambda: max((n for k, n in self._state.max_in_flight.items()
                                          if k.startswith("conv_")), default=0))

    @property
    def max_concurrent_per_thread(self) -> int:
        """Most run creations ever in flight at once on one Assistants thread, refused ones included."""
        return self._on_loop(lambda: max((n for k, n in self._state.max_in_flight.items()
                                          if k.startswith("thread_")), default=0))

    # -- control -------------------------------------------------------------------------------
    def set_api_key(self, key: str) -> None:
        """Accept only `key` from now on (simulates a rotated or revoked key)."""
        def apply() -> None:
            self._state.api_key = key
        self._on_loop(apply)

    def set_missing_apis(self, *apis: str, status: int = 404) -> None:
        """Serve as a server without these API families ("conversations", "responses", "assistants",
        "chat"): their paths answer 404 `{"detail": "Not Found"}`, like LiteLLM's or vLLM's — or, with
        `status=200`, 200 with an error text, like LM Studio's."""
        unknown = set(apis) - set(API_PATHS)
        if unknown:
            raise ValueError(f"unknown API families: {sorted(unknown)}")

        def apply() -> None:
            self._state.missing_apis = frozenset(apis)
            self._state.missing_status = status
        self._on_loop(apply)

    def set_text_only(self, *models: str) -> None:
        """These models take no images or files: a request showing them one is refused with OpenAI's
        400 for a text-only model (see vision.py). An Assistants run names no model: while any model is
        text-only, runs are refused too."""
        def apply() -> None:
            self._state.text_only_models = set(models)
        self._on_loop(apply)

    def set_models(self, models: tuple[str, ...]) -> None:
        def apply() -> None:
            self._state.models = list(models)
        self._on_loop(apply)

    def fail_next(self, status: int = 500, code: str | None = None, message: str | None = None, *,
                  times: int = 1, path: str = "/v1/responses", method: str | None = None,
                  retry_after: float | None = None, error_type: str | None = None) -> None:
        """The next `times` requests to `path` (prefix) are answered with this error, OpenAI-style."""
        self.faults.add_http(HttpFault(status, code, message, retry_after, error_type, path, method, times))

    def cut_stream_next(self, after_chars: int = 20, *, times: int = 1, path: str = ANY_STREAM) -> None:
        """The next streamed answer drops its connection after about `after_chars` characters."""
        self.faults.add_stream(StreamFault("cut", after_chars, "", "", path, times))

    def lose_completion_next(self, *, times: int = 1, path: str = ANY_STREAM) -> None:
        """The next streamed answer completes on the server (its items join the conversation), but the
        connection drops before `response.completed` reaches the client: the client can't know."""
        self.faults.add_stream(StreamFault("lose_completion", 10**9, "", "", path, times))

    def fail_stream_next(self, *, times: int = 1, after_chars: int = 10, code: str = "server_error",
                         message: str | None = None, path: str = ANY_STREAM) -> None:
        """The next streamed answer reports a failure (Responses: `error` + `response.failed`;
        Chat: an in-band error chunk; Assistants: `thread.run.failed`) after about `after_chars`."""
        self.faults.add_stream(StreamFault("fail", after_chars, code, message or "", path, times))

    def lose_answer_next(self, path: str, *, how: str = "status", status: int = 502, method: str = "POST",
                         times: int = 1) -> None:
        """The next `times` requests whose whole path matches `path` (a pattern: `*` stands for an id,
        e.g. "/v1/conversations/*/items") are carried out — what they write is stored, a streamed
        response or run goes on to its end — and then their answer is lost: `how="status"` answers
        `status` instead (a proxy's 502 after the backend committed), `how="drop"` closes the
        connection without an answer. The client cannot tell whether anything was stored."""
        if how not in ("status", "drop"):
            raise ValueError(f"how must be 'status' or 'drop', not {how!r}")
        self.faults.add_lost(LostAnswer(how, status, path, method, times))

    def delay_next(self, seconds: float, *, times: int = 1, path: str = "/v1/") -> None:
        """Hold the next `times` requests to `path` (prefix) for `seconds` before answering."""
        self.faults.add_delay(Delay(seconds, path, times))

    def wait_for(self, predicate: Callable[..., Any], timeout: float = 10.0, message: str = "condition") -> Any:
        """Poll `predicate()` (or `predicate(emulator)`) from the calling thread until it is truthy."""
        takes_arg = len(inspect.signature(predicate).parameters) == 1
        return wait_until((lambda: predicate(self)) if takes_arg else predicate, timeout, message=message)
