"""Whether Slack takes the bot's token: a workspace-wide fact, not one channel's.

When Slack refuses the token (`token_revoked`, `invalid_auth`, `account_inactive`, `not_authed`,
`missing_scope` …) nothing can be written anywhere until an admin acts. The gate remembers it: the
operator is told once what to do; replies already paid for and new messages wait (no new model turns
are started meanwhile); a cheap `auth.test`, at most every few seconds, tells when the token works again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.outbound.slack_errors import SLACK_FAILURES, reason

log = logging.getLogger(__name__)

PROBE_INTERVAL = 10.0  # seconds between two looks at whether the token works again
AUTH_RETRY_DELAY = 15.0  # at most this long between two tries of a step that waits for the token

AuthTest = Callable[[], Awaitable[object]]
SCOPE_REFUSALS = frozenset({"missing_scope", "no_permission_for_app"})  # the token works, one write does not


class SlackAuthGate:
    """Open while Slack takes the token; closed from the first refusal until a probe (or a write) works."""

    def __init__(self, auth_test: AuthTest, *, probe_interval: float = PROBE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._auth_test = auth_test
        self._probe_interval = probe_interval
        self._clock = clock
        self.refusal: str | None = None  # Slack's error code while the token is refused
        self._told: str | None = None  # the refusal the operator was told about (once per outage)
        self._last_probe = float("-inf")
        self._probing: asyncio.Future[bool] | None = None

    @property
    def open(self) -> bool:
        return self.refusal is None

    def refused(self, code: str) -> None:
        """Slack refused the token: say once what to do."""
        if self._told != code:
            self._told = code
            log.error("Slack refuses the bot's token (%s): nothing can be written to Slack. Reinstall the app to "
                      "the workspace (or give it the missing scope) and set the new SLACK_BOT_TOKEN; every reply "
                      "and message waits and is delivered once the token works again.", code)
        self.refusal = code
        self._last_probe = self._clock()

    def accepted(self) -> None:
        """A call with the token worked (a probe: worth trying the writes again)."""
        self.refusal = None

    def delivered(self) -> None:
        """A reply was written: the outage, if there was one, is over."""
        if self._told is not None:
            log.warning("Slack takes the bot's token again; what waited is being delivered")
        self.refusal = self._told = None

    async def usable(self) -> bool:
        """Is the token worth using now? While refused, ask Slack again at most every `probe_interval`."""
        if self.refusal is None:
            return True
        if self._probing is None and self._clock() - self._last_probe < self._probe_interval:
            return False
        if self._probing is None:
            self._probing = asyncio.ensure_future(self._probe())
        probing = self._probing
        try:
            return await asyncio.shield(probing)
        finally:
            if probing.done() and self._probing is probing:
                self._probing = None

    async def _probe(self) -> bool:
        self._last_probe = self._clock()
        if self.refusal in SCOPE_REFUSALS:
            # auth.test passes for a token that lacks a scope: only a write can tell. Let one try (the
            # refusal stays until a reply is delivered, so no new model turn starts meanwhile).
            return True
        try:
            await self._auth_test()
        except SLACK_FAILURES as exc:
            log.info("Slack still refuses the bot's token (%s)", reason(exc))
            return False
        self.accepted()
        return True
