"""Faults the tests inject: error answers, delays, streams that break or fail, answers lost after the write.

Each fault applies to the next `times` requests whose path starts with its `path` (and, for stream
faults, that are streamed); a lost answer to the next `times` requests whose whole path matches its
pattern. Tests add faults from their own thread while the emulator loop takes them, so the plan is
guarded by a lock.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass

ANY_STREAM = "/v1/"


@dataclass
class HttpFault:
    status: int
    code: str | None
    message: str | None
    retry_after: float | None
    error_type: str | None
    path: str
    method: str | None
    times: int


@dataclass
class StreamFault:
    kind: str  # "cut": connection dropped | "fail": the stream reports a failure and ends
    #            | "lose_completion": the response completes, then the connection drops before it says so
    after_chars: int
    code: str
    message: str
    path: str
    times: int


@dataclass
class LostAnswer:
    """The request is carried out — whatever it writes is stored — and then its answer is lost: `how`
    "status" answers `status` instead (a proxy's 502 after the backend committed), "drop" closes the
    connection without a word. `path` is a pattern over the whole path (`*` for an id)."""

    how: str
    status: int
    path: str
    method: str
    times: int


@dataclass
class Delay:
    seconds: float
    path: str
    times: int


class FaultPlan:
    """Queues of faults; `take_*` consume one use of the first fault that applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: list[HttpFault] = []
        self._streams: list[StreamFault] = []
        self._delays: list[Delay] = []
        self._lost: list[LostAnswer] = []

    def add_http(self, fault: HttpFault) -> None:
        with self._lock:
            self._http.append(fault)

    def add_stream(self, fault: StreamFault) -> None:
        with self._lock:
            self._streams.append(fault)

    def add_delay(self, delay: Delay) -> None:
        with self._lock:
            self._delays.append(delay)

    def add_lost(self, fault: LostAnswer) -> None:
        with self._lock:
            self._lost.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._http.clear()
            self._streams.clear()
            self._delays.clear()
            self._lost.clear()

    def take_http(self, method: str, path: str) -> HttpFault | None:
        with self._lock:
            return _take(self._http, lambda f: path.startswith(f.path) and f.method in (None, method))

    def take_stream(self, path: str) -> StreamFault | None:
        with self._lock:
            return _take(self._streams, lambda f: path.startswith(f.path))

    def take_delay(self, path: str) -> float:
        with self._lock:
            found = _take(self._delays, lambda d: path.startswith(d.path))
        return found.seconds if found else 0.0

    def take_lost(self, method: str, path: str) -> LostAnswer | None:
        with self._lock:
            return _take(self._lost, lambda f: f.method == method and fnmatch.fnmatchcase(path, f.path))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._http) + len(self._streams) + len(self._delays) + len(self._lost)


def _take(queue: list, applies) -> object | None:  # type: ignore[type-arg]
    for index, fault in enumerate(queue):
        if applies(fault):
            fault.times -= 1
            if fault.times <= 0:
                del queue[index]
            return fault
    return None
