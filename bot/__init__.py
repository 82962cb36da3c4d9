"""slack-assistant-bridge: one shared AI assistant per Slack channel."""

__version__ = "0.1.0"
