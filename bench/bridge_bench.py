"""Benchmark of the real `assistant-bridge run` process against the Slack and OpenAI emulators.

    python -m bench.bridge_bench            # the full run (a few minutes)
    python -m bench.bridge_bench --quick    # a smoke check, under ~30 s

Prints, scenario by scenario, each figure beside its target and how it was obtained. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.caching import caching
from bench.capacity import many_channels
from bench.files_scenario import files
from bench.live import MODES, LiveSetup
from bench.live_report import live
from bench.long_channel import long_channel
from bench.reference import reference
from bench.replicas import replicas
from bench.report import Section
from bench.scenarios import latency
from bench.throughput import burst, sustained
from bench.world import BenchError, Setup
from tests.e2e.harness import MODEL

SCENARIOS = ("latency", "reference", "burst", "sustained", "memory", "live", "caching", "files", "replicas",
             "long_channel", "profile")
DEFAULT_SCENARIOS = SCENARIOS[:10]
FULL = {"messages": 2000, "latency_messages": 200, "latency_channels": 20, "seconds": 5.0,
        "known_channels": 10_000, "drain": 600.0, "memory_drain": 30.0, "live_rounds": 5, "live_wide": 20,
        "live_reply_length": 3000, "caching_turns": 50, "file_pairs": 20,
        "replica_messages": 600}
QUICK = {"messages": 300, "latency_messages": 30, "latency_channels": 10, "seconds": 1.0, "known_channels": 300,
         "drain": 3.0, "memory_drain": 2.0, "live_rounds": 1, "live_wide": 0, "live_reply_length": 1500,
         "caching_turns": 12, "file_pairs": 5,
         "replica_messages": 100}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bridge_bench", description=__doc__.split("\n\n")[0],
        epilog="Defaults in brackets are for the full run; --quick shrinks each one.")
    parser.add_argument("--quick", action="store_true", help="a short run (under ~30 s) for a smoke check")
    parser.add_argument("--messages", type=int, help="messages in the burst [2000; quick 300]")
    parser.add_argument("--channels", type=int, default=100,
                        help="channels for the burst and the sustained run [100]")
    parser.add_argument("--latency-messages", type=int, help="messages in the overhead run [200; quick 30]")
    parser.add_argument("--latency-channels", type=int, help="channels in the overhead run [20; quick 10]")
    parser.add_argument("--gap", type=float, default=0.05, help="pause after each reply in the overhead run [0.05 s]")
    parser.add_argument("--rate", type=float, default=300.0, help="messages/s offered in the sustained run [300]")
    parser.add_argument("--seconds", type=float, help="length of the sustained run [5; quick 1]")
    parser.add_argument("--known-channels", type=int,
                        help="channels the bridge gets to know in the memory run [10000; quick 300]")
    parser.add_argument("--window", type=int, default=200,
                        help="memory run: most messages waiting for the model at once [200]")
    parser.add_argument("--drain", type=float,
                        help="burst and sustained runs: seconds to wait for the answers after the last message "
                             "was sent; answers still queued then are counted, not awaited [600; quick 3]")
    parser.add_argument("--memory-drain", type=float,
                        help="memory run: the same, once every channel is known [30; quick 2]")
    parser.add_argument("--ttft", type=float, default=0.0, help="the scripted model's time to first token [0 s]")
    parser.add_argument("--chunk-delay", type=float, default=0.0,
                        help="the scripted model's delay between 8-character chunks [0 s]")
    _live_args(parser)
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds any one wait may take before the run is declared stuck [900]")
    parser.add_argument("--only", default=",".join(DEFAULT_SCENARIOS),
                        help=f"comma-separated scenarios to run, of {', '.join(SCENARIOS)} "
                             f"[{','.join(DEFAULT_SCENARIOS)}]")
    parser.add_argument("--profile", type=Path, metavar="PATH",
                        help="also run the 'profile' scenario: the burst once more under py-spy (optional, "
                             "`pip install py-spy`), summarising where the bridge's CPU time went; raw stacks "
                             "go to PATH [with --only profile: /tmp/bridge-profile.txt]")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.profile is not None and "profile" not in args.only.split(","):
        args.only += ",profile"
    args.profile = args.profile or Path("/tmp/bridge-profile.txt")
    unknown = set(args.only.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    if not args.live_modes or set(args.live_modes.split(",")) - set(MODES):
        parser.error(f"--live-modes takes {', '.join(MODES)} (comma-separated)")
    return args


def _live_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the 'live' scenario (live replies under Slack's real rate limits)")
    group.add_argument("--live-rounds", type=int, help="rounds of one message per channel at once [5; quick 1]")
    group.add_argument("--live-channels", type=int, default=10, help="channels, one message each per round [10]")
    group.add_argument("--live-wide", type=int, help="then again with this many channels (0: not) [20; quick 0]")
    group.add_argument("--live-modes", default=",".join(MODES), help=f"BRIDGE_REPLY_IN modes [{','.join(MODES)}]")
    group.add_argument("--live-ttft", type=float, default=0.3, help="the model's time to first token [0.3 s]")
    group.add_argument("--live-chunk-delay", type=float, default=0.04, help="delay between chunks [0.04 s]")
    group.add_argument("--live-chunk-size", type=int, default=20, help="characters per chunk [20]")
    group.add_argument("--live-reply-length", type=int, help="characters per answer [3000; quick 1500]")
    group = parser.add_argument_group("the 'long_channel' scenario (a channel with a long stored history)")
    group.add_argument("--stored-messages", type=int, default=100_000,
                       help="messages already in the long channel's history [100000]")
    group.add_argument("--long-turns", type=int, default=20, help="turns measured per channel [20]")
    group = parser.add_argument_group("the 'caching' scenario (prompts the model service can cache)")
    group.add_argument("--caching-turns", type=int, help="turns of the conversation, per backend [50; quick 12]")
    group.add_argument("--caching-reply-length", type=int, default=300, help="characters per answer [300]")
    group = parser.add_argument_group("the 'files' scenario (what a shared image adds)")
    group.add_argument("--file-pairs", type=int, help="text messages, and as many with an image [20; quick 5]")
    group.add_argument("--image-kb", type=int, default=1024, help="size of the image [1024 KB]")
    group = parser.add_argument_group("the 'replicas' scenario (1 process on SQLite, 1-3 replicas on PostgreSQL)")
    group.add_argument("--replica-messages", type=int, help="messages in each burst [600; quick 100]")
    group.add_argument("--replica-channels", type=int, default=30, help="channels [30]")


def plan(args: argparse.Namespace) -> list[tuple[str, Callable[[], Section]]]:
    chosen = args.only.split(",")
    setup = Setup(ttft=args.ttft, chunk_delay=args.chunk_delay, timeout=args.timeout)
    steps: list[tuple[str, Callable[[], Section]]] = [
        ("latency", lambda: latency(setup, args.latency_messages, args.latency_channels, args.gap)),
        ("burst", lambda: burst(setup, args.messages, args.channels, args.drain)),
        ("sustained", lambda: sustained(setup, args.rate, args.seconds, args.channels, args.drain)),
        ("memory", lambda: many_channels(setup, args.known_channels, args.window, args.memory_drain)),
        ("live", lambda: live(live_setup(args))),
        ("caching", lambda: caching(setup, args.caching_turns, args.caching_reply_length)),
        ("files", lambda: files(setup, args.file_pairs, args.image_kb)),
        ("long_channel", lambda: long_channel(setup, args.stored_messages, args.long_turns)),
        ("reference", lambda: reference(setup, args.latency_messages, args.latency_channels, args.gap)),
        ("replicas", lambda: replicas(setup, args.replica_messages, args.replica_channels, args.drain)),
    ]
    if "profile" in chosen:
        from bench.profile import profile_burst

        steps.append(("profile", lambda: profile_burst(setup, args.messages, args.channels, args.profile)))
    return [(name, step) for name, step in steps if name in chosen]


def live_setup(args: argparse.Namespace) -> LiveSetup:
    return LiveSetup(rounds=args.live_rounds, channels=args.live_channels, wide=args.live_wide, ttft=args.live_ttft,
                     chunk_delay=args.live_chunk_delay, chunk_size=args.live_chunk_size,
                     reply_length=args.live_reply_length, timeout=args.timeout,
                     modes=tuple(args.live_modes.split(",")))


def header(args: argparse.Namespace) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"bridge benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}; {platform.python_implementation()} "
            f"{platform.python_version()} on {platform.system()} with {os.cpu_count()} CPU(s), load average {load}; "
            f"bot at {_commit()}\n"
            "The real `assistant-bridge run` process (Socket Mode, BRIDGE_REPLY_IN=channel, SQLite in a temporary "
            "directory, LOG_LEVEL=INFO) against the Slack emulator (rate limits off) and the OpenAI emulator "
            f"(model {MODEL}, scripted: ttft {args.ttft:g} s, chunk_delay {args.chunk_delay:g} s, 8-character "
            "chunks), both running in this process — except in 'live', whose title says how it differs. A fresh "
            "bridge, emulators and database per scenario.\n")


def _commit() -> str:
    """The commit the bridge runs from (it runs the working tree: say so if bot/ has uncommitted changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = _git(root, "log", "-1", "--format=%h %s")[:72] or "an unknown commit"
        dirty = _git(root, "status", "--porcelain", "--", "bot")
    except (OSError, subprocess.SubprocessError):
        return "an unknown commit"
    return head + (" + uncommitted changes in bot/" if dirty else "")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=root).stdout.strip()


def verdicts(sections: list[Section]) -> str:
    lines = ["== Targets =="]
    for section in sections:
        for row in section.rows:
            if row.ok is not None:
                lines.append(f"  {'met   ' if row.ok else 'MISSED'}  {row.target}  — {row.label.strip()}: "
                             f"{row.value.split('  (')[0].strip()}  [{section.title.split(':')[0]}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(header(args), flush=True)
    sections: list[Section] = []
    started, commit = time.monotonic(), _commit()
    for name, step in plan(args):
        began = time.monotonic()
        try:
            section = step()
        except BenchError as exc:
            print(f"== {name}: FAILED ==\n  {exc}\n", flush=True)
            return 1
        sections.append(section)
        now = _commit()  # each scenario starts its bridge from the working tree: say if bot/ changed
        changed = f"; bot/ changed since the run began, now at {now}" if now != commit else ""
        print(f"{section.render()}\n  (scenario took {time.monotonic() - began:.0f} s{changed})\n", flush=True)
    print(verdicts(sections))
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
