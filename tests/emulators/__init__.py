"""Emulators of Slack and OpenAI that speak the real wire protocols.

They run in a background thread (each with its own event loop), so both synchronous tests, asyncio
tests and the real `assistant-bridge` process can talk to them over sockets.
"""
