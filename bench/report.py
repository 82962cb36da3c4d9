"""Plain-text report: each scenario is a section of figures, each beside its target, then how it was measured."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from bench.procstat import Usage

LABEL_WIDTH = 44


@dataclass
class Row:
    label: str
    value: str
    target: str = ""
    ok: bool | None = None  # None: no target to meet

    def render(self) -> str:
        line = f"  {self.label:<{LABEL_WIDTH}} {self.value}"
        if self.target:
            verdict = "" if self.ok is None else ("  [met]" if self.ok else "  [MISSED]")
            line += f"\n  {'':<{LABEL_WIDTH}} target: {self.target}{verdict}"
        return line


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, label: str, value: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(label, value, target, ok))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        lines = [f"== {self.title} =="]
        lines += [row.render() for row in self.rows]
        if self.notes:
            lines.append("  how:")
            for note in self.notes:
                lines.append(textwrap.fill(note, width=110, initial_indent="    - ", subsequent_indent="      "))
        return "\n".join(lines)


def add_cpu(section: Section, usage: Usage, messages: int) -> None:
    """Bridge CPU per message, and who used the 2 cores: the bridge, each emulator, the driver."""
    section.add("bridge CPU time per user message",
                f"{usage.bridge_cpu / messages * 1000:.2f} ms  ({usage.bridge_cpu:.2f} s for {messages})"
                if messages else "n/a")
    shares = [f"bridge {usage.share(usage.bridge_cpu):.0%}"]
    shares += [f"{label} {usage.share(cpu):.0%}" for label, cpu in usage.threads.items()]
    rest = usage.bench_cpu - sum(usage.threads.values())
    shares.append(f"driver+rest of bench process {usage.share(rest):.0%}")
    section.add("CPU share (100% = one core; 2 cores)", ", ".join(shares) + f"  over {usage.wall:.2f} s")
    section.note("CPU time from /proc/<pid>/stat utime+stime (10 ms ticks) before and after the measured phase; "
                 "the emulators' event-loop threads from /proc/self/task/<tid>/stat. An emulator thread near "
                 "100% (or bridge + emulators near 200%) means the machine, not the bridge, bounds the figure.")


def add_memory(section: Section, rss: float, hwm: float) -> None:
    section.add("bridge RSS now / peak (VmRSS / VmHWM)", f"{rss:.1f} MB / {hwm:.1f} MB")
