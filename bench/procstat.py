"""CPU time and memory of a process, or of one thread of this process, read from /proc (Linux)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self", tid: int | None = None) -> float:
    """utime + stime of a process (all its threads, live and exited) or of one of its threads."""
    path = Path(f"/proc/{pid}/task/{tid}/stat") if tid else Path(f"/proc/{pid}/stat")
    # Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mb(pid: int | str) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB: resident memory now, and its peak over the process's life."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB
    return values["VmRSS"], values["VmHWM"]


@dataclass(frozen=True)
class Snapshot:
    wall: float
    bridge_cpu: float
    bench_cpu: float
    threads: dict[str, float]


@dataclass(frozen=True)
class Usage:
    """CPU used between two snapshots; `share()` is CPU seconds per wall second (1.0 = one core)."""

    wall: float
    bridge_cpu: float
    bench_cpu: float
    threads: dict[str, float]

    def share(self, cpu: float) -> float:
        return cpu / self.wall if self.wall > 0 else 0.0


class Meter:
    """Samples the bridge process, this benchmark process, and named threads of this process."""

    def __init__(self, bridge_pid: int, threads: dict[str, int]) -> None:
        self.bridge_pid = bridge_pid
        self.threads = threads  # label -> native thread id (an emulator's event-loop thread)

    def snapshot(self) -> Snapshot:
        return Snapshot(wall=time.monotonic(), bridge_cpu=cpu_seconds(self.bridge_pid), bench_cpu=cpu_seconds(),
                        threads={label: cpu_seconds("self", tid) for label, tid in self.threads.items()})

    @staticmethod
    def usage(before: Snapshot, after: Snapshot) -> Usage:
        return Usage(wall=after.wall - before.wall, bridge_cpu=after.bridge_cpu - before.bridge_cpu,
                     bench_cpu=after.bench_cpu - before.bench_cpu,
                     threads={k: after.threads[k] - before.threads[k] for k in before.threads})

    def memory(self) -> tuple[float, float]:
        return memory_mb(self.bridge_pid)
