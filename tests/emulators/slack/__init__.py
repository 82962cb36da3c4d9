"""A Slack emulator: Web API, Socket Mode and signed HTTP events, checked against Slack's specs.

    from tests.emulators.slack import SlackEmulator

Pointing a separate bot process at it: SLACK_API_URL=emu.base_url, SLACK_BOT_TOKEN=emu.bot_token,
SLACK_APP_TOKEN=emu.app_token (Socket Mode: apps.connections.open hands out a ws:// URL on the same
port), SLACK_SIGNING_SECRET=emu.signing_secret. For HTTP mode call `emu.set_events_url(url)` once
the app listens (or pass `events_url=` up front). In-process Bolt apps take
`client=AsyncWebClient(token=emu.bot_token, base_url=emu.base_url)`.

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
