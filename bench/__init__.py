"""Benchmarks of the real `assistant-bridge` process against the emulators (see bench/README.md)."""
