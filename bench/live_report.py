"""The `live` scenario's section: time to first visible text and Slack calls per reply, per reply mode."""

from __future__ import annotations

from collections import Counter

from bench.live import FINAL_TEXT_TARGET_MS, FIRST_TEXT_TARGET_MS, LiveSetup, ModeRun, run_mode
from bench.report import Section
from bench.scenarios import CLOCK_NOTE
from bench.timeline import dist, per_message
from bot.outbound import replies as reply
from bot.outbound import updating_reply, writer

TARGET_WHEN = {"channel": "in channel mode", "thread": "in thread mode"}
TARGETS_AT = 10  # the targets are set for this many replies streaming at once (more: figures and why)


def live(setup: LiveSetup) -> Section:
    counts = " then ".join(str(n) for n in (setup.channels, setup.wide) if n)
    section = Section(f"Live replies: {setup.rounds} round(s) of {counts} messages at once (one per "
                      f"channel), Slack's real rate limits on, model ttft {setup.ttft:g} s, "
                      f"{setup.chunk_size}-character chunks every {setup.chunk_delay:g} s, "
                      f"{setup.reply_length}-character answers; BRIDGE_REPLY_IN={'|'.join(setup.modes)}")
    for channels in (n for n in (setup.channels, setup.wide) if n):
        for mode in setup.modes:
            _mode_rows(section, run_mode(setup, mode, channels), channels)
    _notes(section, setup)
    return section


def _mode_rows(section: Section, run: ModeRun, channels: int) -> None:
    mode, traces = f"{run.mode} ×{channels}", run.traces
    target = FIRST_TEXT_TARGET_MS[run.mode]
    first_text = dist((t.first_token, t.first_text) for t in traces)
    complete = first_text.n == len(traces)
    targeted = channels <= TARGETS_AT  # (with more at once, the figures are reported without a target)
    section.add(f"{mode}: model's first token → first text in Slack", str(first_text),
                f"p95 ≤ {target:.0f} ms {TARGET_WHEN[run.mode]}" if targeted else "",
                complete and first_text.p95 <= target if targeted else None)
    methods = Counter(t.first_text_method for t in traces if t.first_text_method)
    section.add("    written by", _counts(methods) + (f"; {len(traces) - first_text.n} replies showed no text"
                                                     if not complete else ""))
    for number, seconds in enumerate(run.round_seconds, start=1):
        in_round = [t for t in traces if t.round == number]
        d = dist((t.first_token, t.first_text) for t in in_round)
        section.add(f"    round {number}", f"p50 {d.p50:7.0f} ms  max {d.max:7.0f} ms  (round took {seconds:.1f} s)")
    section.add("    first token: measured − (received + ttft)",
                str(dist((t.model_received + run.ttft, t.first_token) for t in traces
                         if t.model_received is not None)))
    section.add(f"{mode}: message delivered → first write (any)", str(dist((t.delivered, t.first_write)
                                                                           for t in traces)))
    indicators = sum(1 for t in traces if t.first_write is not None and t.first_write != t.first_text)
    section.add("    first writes without text (indicator)", f"{indicators} of {len(traces)}")
    final = dist((t.model_done, t.final_text) for t in traces)
    section.add(f"{mode}: model done → final text in Slack", str(final),
                f"p95 ≤ {FINAL_TEXT_TARGET_MS['p95']:.0f} ms, max ≤ {FINAL_TEXT_TARGET_MS['max']:.0f} ms"
                if targeted else "", final.n == len(traces) and final.p95 <= FINAL_TEXT_TARGET_MS["p95"]
                and final.max <= FINAL_TEXT_TARGET_MS["max"] if targeted else None)
    replaced = sum(t.replaced for t in traces)
    section.add("    final text posted anew (partial deleted)", f"{replaced} of {len(traces)}")
    section.add(f"{mode}: model done → reply's last write", str(dist((t.model_done, t.complete) for t in traces)))
    section.add(f"{mode}: Slack calls per reply", per_message(run.calls, len(traces)))
    throttled = sum(run.throttled.values())
    section.add(f"{mode}: Slack answered 429 (rate limited)", f"{throttled}" + (
        f"  ({_counts(run.throttled)})" if throttled else ""), "0", throttled == 0)
    exact = sum(t.exact for t in traces)
    single = sum(t.messages == 1 for t in traces)
    section.add(f"{mode}: replies ending with the model's exact text", f"{exact} of {len(traces)}  ({single} in "
                "one Slack message)", "every reply", exact == len(traces))
    shares = [f"bridge {run.usage.share(run.usage.bridge_cpu):.0%}"]
    shares += [f"{label} {run.usage.share(cpu):.0%}" for label, cpu in run.usage.threads.items()]
    section.add(f"{mode}: CPU share (100% = one core)", ", ".join(shares) + f"  over {run.usage.wall:.1f} s")
    section.add(f"{mode}: sanity", f"{run.health}; emulator spec violations: {len(run.violations)}")
    for violation in run.violations[:5]:
        section.note(f"violation ({mode} mode): {violation}")


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counter.most_common()) or "none"


def _notes(section: Section, setup: LiveSetup) -> None:
    section.note(f"Each mode gets a fresh world (bridge, emulators, database) with BRIDGE_REPLY_IN set and the "
                 f"Slack emulator's real tier limits on (rate_limits='real'). A round sends one message to each of "
                 f"the {setup.channels} channels at once; the next round starts once every reply of this one is a "
                 "whole answer (ends with the model's end marker and is no longer streaming). Round 1 is each "
                 "channel's first message (no warm-up: it would spend the same Slack budgets).")
    section.note("Model's first token = when the scripted model handed the OpenAI emulator the first text delta of "
                 "that answer (the emulator writes it to the SSE stream right after): the benchmark's TimedModel, "
                 "a ScriptedModel that notes time.time() before yielding its first delta. The emulator records no "
                 "such time itself; the row 'measured − (received + ttft)' compares it with the request's "
                 "time_received + the scripted ttft.")
    section.note(f"First text in Slack = when the Slack emulator answered the first successful write of that reply "
                 f"whose markdown_text is neither empty nor the working indicator '{reply.WORKING_TEXT}': in "
                 "channel mode a chat.postMessage (or a chat.update after an indicator), in thread mode a "
                 "chat.startStream with markdown_text or the first chat.appendStream. A reply's writes are grouped "
                 "by message (channel, ts) and matched to the user's message by the token the text carries. "
                 "'first write (any)' is measured from the Slack emulator's first Socket Mode delivery of the "
                 "user's message; 'reply complete' is the reply's last write (the final chat.update / "
                 "chat.postMessage, or chat.stopStream).")
    section.note("Slack calls and 429 answers: the Slack emulator's call log over the measured phase, by Web API "
                 "method (reads such as users.info included), divided by the replies. Exact text: after the last "
                 "round, the bot's message answering each user message is compared with the text the scripted "
                 "model answered (OpenAIEmulator.model.seen[i].reply.text).")
    section.note(f"The bridge's pacing (bot/outbound/: updating_reply.py, streaming_reply.py, writer.py): "
                 f"a working indicator if the model has "
                 f"written nothing {reply.INDICATOR_DELAY:g} s after the reply started; in channel mode the first "
                 f"text gathers {reply.FIRST_GATHER:g} s before it is posted, then at most one chat.update a "
                 f"second per reply ({reply.UPDATE_INTERVAL:g} s); in thread mode appends at most every "
                 f"{reply.APPEND_INTERVAL:g} s per reply. A final edit that would wait longer than "
                 f"{updating_reply.FINAL_EDIT_WAIT:g} s for the chat.update budget is a new message instead (the "
                 "partial one deleted); a stream is started only when its chat.stopStream's turn can be kept "
                 "for it, and the rest of its text goes with the stop. Budgets per process: chat.update "
                 f"{writer.UPDATE_PER_MINUTE}/min burst {writer.UPDATE_BURST}; chat.startStream and "
                 f"chat.stopStream together {writer.START_PER_MINUTE}/min burst {writer.START_BURST}; "
                 f"chat.appendStream {writer.APPEND_PER_MINUTE}/min burst {writer.APPEND_BURST}; chat.postMessage "
                 f"{writer.POST_PER_MINUTE}/min burst {writer.POST_BURST} per channel. Writes wait their turn by "
                 "priority (final text, then first text, then progress); a progress write still waiting "
                 "when the answer is complete is dropped.")
    section.note(CLOCK_NOTE)
