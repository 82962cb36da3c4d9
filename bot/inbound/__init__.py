"""Inbound: Slack → inbox. Thin Bolt listeners, event → `IncomingMessage`, the slash command, and the
intake that stores every item durably before Slack gets its ack (then wakes the channel's worker
through a callback the wiring hands in); the access rules decide first who may talk and who may reset."""
