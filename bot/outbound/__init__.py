"""Outbound: everything written to Slack and everything looked up there — live replies (edited or
streamed), the writer and its pacing under Slack's shared budgets, rendering and splitting, the
user, user-group and channel directories, Slack markup, broadcast mentions made harmless, and every
sentence users read."""
