"""slack-assistant-bridge: one shared AI assistant per Slack channel.

The package is laid out as the flow a message takes, one folder per stage:

    inbound/       Slack events and the slash command → the inbox
    store/         the durable state: inbox, turn journal, conversation map, chat history
    work/          one worker per busy channel: what to do next, the turn, recovery, retries
    conversation/  the channel's conversation, what a turn sends, the operator's tools
    backends/      the model APIs (Responses, Chat Completions, Assistants) behind one protocol
    outbound/      everything written to Slack (live replies, pacing) and looked up there

`wiring/` builds every client and service once (`serving.py` runs them) and is the only code that knows
every stage; `settings/` is the only one that reads the environment; `metrics.py` holds what an operator watches
(Prometheus instruments, /healthz /readyz /metrics). A stage imports only the stages below it:
settings/logs/messages/metrics, then store, backends and outbound (independent of each other), then
conversation, work and inbound (tests/unit/test_layout.py keeps it so).
"""

__version__ = "0.1.0"
