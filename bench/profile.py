"""Optional: where the bridge's CPU time goes under the burst, sampled with py-spy (`pip install py-spy`)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.report import Section
from bench.scenarios import inject
from bench.world import BenchError, Setup, World

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
LAYERS = (  # (substring of the file path as py-spy prints it, layer), first match wins
    ("slack_bolt", "slack_bolt"), ("slack_sdk", "slack_sdk"), ("openai", "openai SDK"),
    ("httpx", "httpx/httpcore"), ("httpcore", "httpx/httpcore"), ("aiohttp", "aiohttp"),
    ("sqlite3", "SQLite (on the event loop; checkpoints in a thread)"),
    ("pydantic", "pydantic"), ("json", "json"), ("logging", "logging"), ("typing", "typing"),
    ("selectors", "event-loop I/O (selectors, sockets)"), ("socket", "event-loop I/O (selectors, sockets)"),
    ("ssl", "event-loop I/O (selectors, sockets)"), ("asyncio", "asyncio"),
)
TOP = 12
ENTRY = "bot/cli.py"  # main → asyncio.run: every event-loop sample, not a place where time goes


def find_py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_burst(setup: Setup, messages: int, channels: int, output: Path, rate: int = 200) -> Section:
    """The burst scenario again, with py-spy sampling the bridge; its figures are not reported (py-spy
    takes CPU from the same 2 cores), only where the bridge's time went."""
    exe = find_py_spy()
    if exe is None:
        raise BenchError("--profile needs py-spy: /tmp/venv/bin/pip install py-spy")
    section = Section(f"Profile: the bridge under a burst of {messages} messages over {channels} channels (py-spy)")
    with World(channels, setup) as world:
        world.warm_up(range(channels), 0)
        tokens = list(range(channels, channels + messages))
        spy = subprocess.Popen([exe, "record", "--pid", str(world.pid), "--rate", str(rate), "--format", "raw",
                                "--output", str(output), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # let py-spy attach before the burst
        inject(world, tokens, channels)
        world.wait_all(tokens)
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=30)
    if not output.exists():
        raise BenchError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")
    summarize(output, section)
    section.note(f"py-spy record --pid <bridge> --rate {rate} --format raw --nonblocking, from the burst's start to "
                 f"its last answer; raw collapsed stacks in {output}. py-spy leaves out threads it sees idle, so "
                 "the counts approximate CPU samples (its idle test is a heuristic: a thread just woken, e.g. the "
                 "the checkpoint thread returning from a wait, or select() returning, still shows up). "
                 "'self' = the line on top of the stack; 'bridge code, inclusive' = a bot/ function anywhere in the "
                 "stack; 'calls out of bot/' = the first library function called from bot/ code, inclusive. "
                 "For a flame graph: py-spy record ... -o profile.svg (see bench/README.md).")
    return section


def summarize(path: Path, section: Section) -> None:
    own, layers, outward, inclusive = Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        n = int(count)
        total += n
        own[stack.rsplit(";", 1)[-1]] += n
        layers[_layer(frames)] += n
        for name in {name for name, file in frames if _is_bot(file) and file != ENTRY}:
            inclusive[name] += n
        for name in {inner[0] for outer, inner in zip(frames, frames[1:], strict=False)
                     if _is_bot(outer[1]) and outer[1] != ENTRY and not _is_bot(inner[1])}:
            outward[name] += n
    if not total:
        raise BenchError(f"the profile {path} holds no samples")
    section.add("samples", f"{total:,}")
    section.add("self time by layer", ", ".join(f"{k} {v / total:.0%}" for k, v in layers.most_common()))
    _top(section, "self", own, total)
    _top(section, "bridge code, inclusive", inclusive, total)
    _top(section, "calls out of bot/, inclusive", outward, total)


def _top(section: Section, kind: str, counts: Counter[str], total: int) -> None:
    for name, n in counts.most_common(TOP):
        section.add(f"{kind} {n / total:6.1%}", name)


def _is_bot(path: str) -> bool:
    return path.startswith("bot/") or "/bot/" in path


def _frame(text: str) -> tuple[str, str]:
    """('function (path.py)', path) of one collapsed-stack frame (py-spy already shortens paths)."""
    match = FRAME.match(text)
    if match is None:
        return text, ""
    path = match["file"]
    return f"{match['func']} ({path})", path


def _layer(frames: list[tuple[str, str]]) -> str:
    """The layer of a sample: its innermost frame's library (native/unknown frames: the next one out)."""
    for _name, path in reversed(frames):
        if _is_bot(path):
            return "bridge code (bot/)"
        for marker, layer in LAYERS:
            if marker in path:
                return layer
        if path and not path.startswith("<"):
            return "other Python"
    return "other"
