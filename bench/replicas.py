"""Several replicas on one PostgreSQL: messages/s and overhead, each way, for one process on SQLite and
for 1, 2 and 3 replicas on PostgreSQL — in one run, on the same emulators (Slack spreads the events over
the replicas' Socket Mode connections, as it does)."""

from __future__ import annotations

from bench.report import Section
from bench.throughput import run_loaded
from bench.timeline import dist
from bench.world import BenchError, Setup
from tests.postgres.fixtures import admin_sql
from tests.postgres.server import HOW_TO_GET_IT, find_binaries, running_server


def replicas(setup: Setup, messages: int, channels: int, drain: float) -> Section:
    section = Section(f"Replicas: {messages} messages at once over {channels} warmed channels, one process on "
                      "SQLite, then 1, 2 and 3 replicas on one PostgreSQL")
    bin_dir = find_binaries()
    if bin_dir is None:
        raise BenchError(HOW_TO_GET_IT)
    with running_server(bin_dir) as server:
        runs = [("1 process, SQLite", 1, None)]
        for count in (1, 2, 3):
            name = f"bench_replicas_{count}"
            admin_sql(server, f"CREATE DATABASE {name}")
            runs.append((f"{count} replica{'s' if count > 1 else ''}, PostgreSQL", count, server.url(name)))
        for label, count, url in runs:
            run = run_loaded(setup, channels, messages, None, drain, replicas=count,
                             env={"DATABASE_URL": url} if url else None)
            answered = run.answered
            elapsed = max(t.answered for t in answered) - run.first if answered else float("nan")
            a = dist((t.delivered, t.model_received) for t in run.traces)
            b = dist((t.model_done, t.answered) for t in run.traces)
            section.add(f"{label}: messages answered per second",
                        f"{len(answered) / elapsed:,.0f} /s  ({len(answered)} of {messages}"
                        f"{'' if run.complete else ', not all within the drain'})")
            section.add(f"{label}: event → model request", f"p50 {a.p50:6.1f} ms  p95 {a.p95:6.1f} ms")
            section.add(f"{label}: model done → answer in Slack", f"p50 {b.p50:6.1f} ms  p95 {b.p95:6.1f} ms")
    section.note("Each configuration gets fresh emulators, a fresh database and a warm-up message per channel; "
                 "then every message is sent at once. With PostgreSQL each message is stored by whichever "
                 "replica Slack handed it to, and the replica holding its channel's lease answers it. On this "
                 "2-core machine the replicas, PostgreSQL and both emulators share two cores, so more replicas "
                 "cannot add throughput here: the figures show what the database round trips and the lease "
                 "hand-overs cost. On separate machines each replica brings its own cores; the bound is then "
                 "the model service and Slack's per-workspace limits, divided among the replicas. Under a "
                 "burst the tail of 'model done → answer' is that limit: replies finished by chat.update queue "
                 "for the workspace's ~40 a minute (each of n replicas keeps 1/n of it), so that tail, and "
                 "messages/s (counted to the last answer), swing from run to run with how the burst is batched.")
    return section
