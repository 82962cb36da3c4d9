"""A tools module for the end-to-end tests (BRIDGE_TOOLS_MODULE=tests.e2e.tools_for_tests)."""

import time


def explode(reason: str = "boom") -> str:
    """Always fails."""
    raise RuntimeError(f"the tool blew up: {reason}")


def sleepy(seconds: float = 5.0) -> str:
    """Takes its time."""
    time.sleep(seconds)
    return f"slept {seconds}s"
