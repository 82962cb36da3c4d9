"""Where the official specs live (a copy of ../shared/specs kept in tests/specs)."""

from __future__ import annotations

from pathlib import Path

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"
OPENAI_OPENAPI = SPECS_DIR / "openai-openapi.yaml"
SLACK_METHODS_DIR = SPECS_DIR / "slack-methods"
SLACK_EVENTS = SPECS_DIR / "slack-events.json"
SLACK_MANIFEST_SCHEMAS = sorted(SPECS_DIR.glob("slack-manifest.schema.*.json"))
