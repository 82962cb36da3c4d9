"""The safety_identifier end to end: salted with this installation's random salt (kept in its store), the
same for a person on every turn, sent on every API that takes it (Responses and Chat Completions; the
Assistants API's runs have no such field — the spec says so, and the emulator refuses unknown fields)."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import BridgeProcess
from tests.e2e.model_view import ENDPOINTS
from tests.e2e.replies import wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

SPEC = Path(__file__).resolve().parents[1] / "specs" / "openai-openapi.yaml"


def salt_of(workdir: Path) -> str:
    with contextlib.closing(sqlite3.connect(workdir / "bridge.sqlite3")) as db:
        (salt,) = db.execute("SELECT value FROM installation WHERE name = 'safety_identifier_salt'").fetchone()
    return salt


def hashed(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@pytest.mark.parametrize("backend", ["responses", "chat", "assistants"])
def test_safety_identifier_is_salted_and_sent_where_the_api_takes_it(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess, tmp_path: Path, backend: str) -> None:
    slack.user_says("general", "alice", "one")
    wait_replies(slack, "general")
    slack.user_says("general", "bob", "two")
    wait_replies(slack, "general", 2)
    slack.user_says("general", "alice", "three")
    wait_replies(slack, "general", 3)
    sent = [r.json.get("safety_identifier") for r in model_api.requests(ENDPOINTS[backend])
            if r.method == "POST" and isinstance(r.json, dict) and ("input" in r.json or "messages" in r.json
                                                                    or "assistant_id" in r.json)]
    if backend == "assistants":
        assert len(sent) == 3 and sent == [None, None, None]
        return
    salt = salt_of(tmp_path)
    assert len(salt) >= 32
    alice, bob = slack.users["alice"], slack.users["bob"]
    assert sent == [hashed(f"{salt}:{alice}"), hashed(f"{salt}:{bob}"), hashed(f"{salt}:{alice}")]
    assert hashed(f"slack-assistant-bridge:{alice}") not in sent  # (the unsalted hash it used to send)


def test_the_salt_is_kept_across_restarts(slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess,
                                          tmp_path: Path) -> None:
    first = salt_of(tmp_path)
    bridge.restart()
    assert salt_of(tmp_path) == first


def test_the_spec_says_which_apis_take_it() -> None:
    schemas = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    assert "safety_identifier" in schemas["ModelResponseProperties"]["properties"]  # Responses and Chat
    assert {"$ref": "#/components/schemas/ModelResponseProperties"} in \
        schemas["CreateModelResponseProperties"]["allOf"]
    run = schemas["CreateRunRequest"]
    assert run.get("additionalProperties") is False and "safety_identifier" not in run["properties"]
