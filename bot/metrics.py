"""What an operator watches: the bridge's Prometheus metrics, and the web endpoints that report them.

Every stage records into the instruments below (prometheus-client: counters, histograms and gauges
with its text exposition; nothing hand-written). They live in one registry of their own, so a process
that builds the bridge twice (the tests) or embeds it never collides with the library's default one.

`operations_routes()` adds `GET /healthz` (the process is alive), `GET /readyz` (it can do its work: the
database answers, Slack takes the token, the model service is usable and the process is not stopping —
a load balancer drains a replica that says no) and `GET /metrics` to an aiohttp application: the HTTP
server in `serve`, or a small server of its own on METRICS_PORT in Socket Mode.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
# Latency buckets (seconds): our own overhead is milliseconds; a model turn or a paced reply, seconds.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

TURNS = Counter("bridge_turns", "Model turns finished, by outcome (answered, context, undelivered, failed).",
                ["outcome"], registry=REGISTRY)
EVENT_TO_REQUEST = Histogram("bridge_event_to_model_request_seconds",
                             "From a message's arrival (stored in the inbox) to its model request being sent, "
                             "first attempts only.", buckets=FAST_BUCKETS, registry=REGISTRY)
MODEL_TO_SLACK = Histogram("bridge_model_done_to_slack_seconds",
                           "From the model's finished answer to its final text written to Slack.",
                           buckets=FAST_BUCKETS, registry=REGISTRY)
FAILURES = Counter("bridge_turn_failures", "Failed model turns, by class (transient, account, request).",
                   ["kind"], registry=REGISTRY)
RETRIES = Counter("bridge_turn_retries", "Failed turns that will be tried again later.", registry=REGISTRY)
UNDELIVERED = Counter("bridge_replies_undelivered", "Replies Slack would not take, by what happens next "
                      "(retry, paused, cannot_write, gave_up).", ["outcome"], registry=REGISTRY)
SLACK_RATE_LIMITED = Counter("bridge_slack_rate_limited", "Slack calls answered 429 (rate limited), by method.",
                             ["method"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("bridge_queue_depth", "Messages stored and not yet answered, in every channel.",
                    registry=REGISTRY)
CHANNELS_ACTIVE = Gauge("bridge_channels_active", "Channels this process is working on now.", registry=REGISTRY)
LEASES_HELD = Gauge("bridge_leases_held", "Channel leases this replica holds (several replicas on PostgreSQL).",
                    registry=REGISTRY)
READY = Gauge("bridge_ready", "1 when /readyz says ready.", registry=REGISTRY)


@dataclass(frozen=True)
class Readiness:
    """The answer of /readyz: `ready`, and each check by name (True = fine) with a word on what is wrong."""

    checks: Mapping[str, bool]
    reasons: Mapping[str, str]

    @property
    def ready(self) -> bool:
        return all(self.checks.values())


Probe = Callable[[], Awaitable[Readiness]]
Refresh = Callable[[], Awaitable[None]]  # brings the gauges up to date just before a scrape
Health = Callable[[], Mapping[str, object]]


def operations_routes(app: web.Application, *, health: Health, readiness: Probe, refresh: Refresh) -> None:
    """Add /healthz, /readyz and /metrics to `app`."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, **health()})

    async def readyz(_request: web.Request) -> web.Response:
        answer = await readiness()
        READY.set(1 if answer.ready else 0)
        body = {"ready": answer.ready, "checks": dict(answer.checks), "reasons": dict(answer.reasons)}
        return web.json_response(body, status=200 if answer.ready else 503)

    async def metrics(_request: web.Request) -> web.Response:
        try:
            await refresh()
        except Exception as exc:  # a scrape still answers with what it has (the database may be down)
            log.warning("metrics: could not refresh the gauges (%s)", exc)
        response = web.Response(body=generate_latest(REGISTRY))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
