"""manifest.yml creates the app the code needs: valid for Slack, and no event, command or scope missing."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.inbound.listeners import EVENTS
from bot.settings import DEFAULT_COMMAND
from tests.emulators.specs import SLACK_EVENTS, SLACK_MANIFEST_SCHEMAS, SLACK_METHODS_DIR

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text())
BOT_EVENTS = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
BOT_SCOPES = set(MANIFEST["oauth_config"]["scopes"]["bot"])
EVENT_SPECS = {entry["name"]: entry for entry in json.loads(SLACK_EVENTS.read_text())}
# The message events the bridge serves: public and private channels and DMs.
MESSAGE_EVENTS = {"message.channels", "message.groups", "message.im"}


def _scope(name: str) -> str:
    # slack-events.json writes one scope as "app_mentions.read"; Slack's scope is "app_mentions:read".
    return name if ":" in name else name[::-1].replace(".", ":", 1)[::-1]


@pytest.mark.parametrize("schema_path", SLACK_MANIFEST_SCHEMAS, ids=lambda p: p.name)
def test_manifest_validates_against_slack_schema(schema_path: Path) -> None:
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(MANIFEST, schema)


def test_socket_mode_on() -> None:
    assert MANIFEST["settings"]["socket_mode_enabled"] is True


def test_every_event_listened_for_is_subscribed_and_vice_versa() -> None:
    others = {"app_mention", "user_change", "subteam_members_changed", "member_joined_channel", "channel_rename",
              "group_rename"}
    assert set(EVENTS) == {"message"} | others
    assert BOT_EVENTS == others | MESSAGE_EVENTS
    for event in BOT_EVENTS:
        assert event in EVENT_SPECS, f"{event} is not a Slack event"


# An event about conversations of several kinds lists each kind's read scope; the app needs those of the
# kinds it serves (member_joined_channel: channels:read and groups:read here; mpim:read only with message.mpim).
KIND_SCOPES = {"channels:read": "message.channels", "groups:read": "message.groups", "im:read": "message.im",
               "mpim:read": "message.mpim"}


def test_event_scopes_declared() -> None:
    for event in BOT_EVENTS:
        needed = {_scope(s) for s in EVENT_SPECS[event]["scopes"]}
        needed = {s for s in needed if s not in KIND_SCOPES or KIND_SCOPES[s] in BOT_EVENTS} or needed
        assert needed <= BOT_SCOPES, f"{event} needs {needed - BOT_SCOPES}"


def test_slash_command_matches_default() -> None:
    commands = [c["command"] for c in MANIFEST["features"]["slash_commands"]]
    assert commands == [DEFAULT_COMMAND]
    assert "commands" in BOT_SCOPES


def _methods_called_by_the_bot() -> set[str]:
    """Web API methods the bot's code calls through slack_sdk (`client.chat_postMessage(…)` …)."""
    families = "chat|users|usergroups|conversations|reactions|assistant|apps|auth|files"
    pattern = re.compile(rf"(?:client|slack)\.((?:{families})_[A-Za-z_]+)\b")
    methods = set()
    for path in (ROOT / "bot").rglob("*.py"):
        for name in pattern.findall(path.read_text()):
            methods.add(name.replace("_", "."))
    return methods


def test_every_method_called_has_a_declared_scope() -> None:
    methods = _methods_called_by_the_bot()
    assert {"chat.postMessage", "chat.update", "users.info", "conversations.info", "auth.test", "files.info",
            "chat.postEphemeral", "usergroups.users.list"} <= methods
    for method in methods:
        spec = json.loads((SLACK_METHODS_DIR / f"{method}.json").read_text())
        bot_scopes = set(spec.get("scope", {}).get("bot", []))
        if bot_scopes:
            assert bot_scopes & BOT_SCOPES, f"{method} needs one of {bot_scopes}"


def test_files_read_is_declared_for_the_downloads() -> None:
    # url_private / url_private_download are not Web API methods, yet need files:read as files.info does.
    assert "files:read" in BOT_SCOPES
