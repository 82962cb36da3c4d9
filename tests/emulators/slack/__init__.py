"""A Slack emulator: Web API, Socket Mode and signed HTTP events, checked against Slack's specs.

    from tests.emulators.slack import SlackEmulator

Module map: `emulator` (the thread-safe facade), `core` (workspace state and event emission on the
emulator loop), `web_api` (request parsing, auth, spec check, faults, rate limits), `methods_*`
(Web API methods), `socket_mode` / `http_events` (delivery), `events` (payload shapes),
`rate_limits`, `spec_check`, `state`, `fixtures` (pytest fixtures `slack`, `slack_factory`).
"""

from .emulator import CommandHandle, SlackEmulator
from .envelopes import Envelope
from .rate_limits import RateLimitPolicy
from .web_api import Call

__all__ = ["Call", "CommandHandle", "Envelope", "RateLimitPolicy", "SlackEmulator"]
