"""Check requests against Slack's published method and event specs (tests/specs/slack-methods)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.emulators.specs import SLACK_EVENTS, SLACK_METHODS_DIR

# Arguments whose string form is JSON; a JSON request body may carry them as structures instead.
JSON_VALUED_ARGS = frozenset({
    "attachments", "blocks", "metadata", "unfurls", "user_auth_blocks", "chunks", "view",
    "loading_messages", "prompts", "unfurled_attachments", "file_ids",
})
BOOLEAN_STRINGS = frozenset({"true", "false", "1", "0"})
# Accepted by every method: slack_sdk sends `team_id` on all calls when a client is built with one
# (Bolt does so per request), and Slack reads it for org-wide installs.
UNIVERSAL_ARGS = frozenset({"team_id"})


@dataclass(frozen=True)
class MethodSpec:
    name: str
    rate_limit: str | None
    http_method: str
    json_input_supported: bool
    required: tuple[str, ...]
    properties: dict[str, Any]
    errors: frozenset[str]
    output_required: tuple[str, ...] = ()


@cache
def method_spec(name: str) -> MethodSpec | None:
    """The spec of one Web API method, or None if Slack has no such method."""
    if not name or "/" in name or name.startswith(".") or name == "methods":
        return None
    path: Path = SLACK_METHODS_DIR / f"{name}.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    args = raw.get("args") or {}
    return MethodSpec(
        name=name,
        rate_limit=raw.get("rate_limits"),
        http_method=raw.get("http_method", "POST"),
        json_input_supported=bool(raw.get("json_input_supported")),
        required=tuple(args.get("required") or ()),
        properties=dict(args.get("properties") or {}),
        errors=frozenset(raw.get("errors") or ()),
        output_required=tuple((raw.get("output") or {}).get("required") or ()),
    )


@cache
def event_types() -> frozenset[str]:
    """Every event type in slack-events.json (`message.channels` etc. collapse to `message`)."""
    names = {entry["name"] for entry in json.loads(SLACK_EVENTS.read_text(encoding="utf-8"))}
    return frozenset(names | {name.split(".")[0] for name in names})


def check_arguments(spec: MethodSpec, args: dict[str, Any], *, token_present: bool,
                    json_body: bool) -> tuple[list[str], list[str]]:
    """Return (missing required arguments, problems) for one call's arguments.

    Slack ignores arguments it does not know, so unknown arguments are problems to report, not
    reasons to refuse the call.
    """
    missing = [name for name in spec.required
               if not (name == "token" and token_present) and args.get(name) in (None, "")]
    problems: list[str] = []
    if json_body and not spec.json_input_supported:
        problems.append("sent a JSON body, which this method does not accept (form or query only)")
    for name, value in args.items():
        prop = spec.properties.get(name)
        if prop is None and name in UNIVERSAL_ARGS:
            continue
        if prop is None:
            problems.append(f"unknown argument {name}={_short(value)}")
            continue
        if not value_matches(prop, value, name=name):
            problems.append(f"argument {name}={_short(value)} does not match its type {_type_of(prop)}")
    return missing, problems


def check_answer(spec: MethodSpec, body: dict[str, Any]) -> list[str]:
    """Problems with the emulator's own answer: a success missing fields the spec promises."""
    if not body.get("ok"):
        return []
    return [f"answer lacks output field {name!r}" for name in spec.output_required if name not in body]


def value_matches(prop: dict[str, Any], value: Any, *, name: str = "") -> bool:
    """A loose type check: form values are strings, JSON values may be structures."""
    if "anyOf" in prop:
        return any(value_matches(option, value, name=name) for option in prop["anyOf"])
    kind = prop.get("type")
    if kind is None:
        kind = "ts" if prop.get("schema") == "ts" else "string" if prop.get("schema") else None
    if kind is None:
        return True
    if value is None:
        return kind == "null"
    match kind:
        case "string":
            if isinstance(value, (list, dict)):
                return name in JSON_VALUED_ARGS
            return isinstance(value, str)
        case "ts":
            return isinstance(value, str) and _looks_like_ts(value)
        case "boolean":
            return isinstance(value, bool) or (isinstance(value, str) and value.lower() in BOOLEAN_STRINGS) \
                or (isinstance(value, int) and value in (0, 1))
        case "integer":
            return (isinstance(value, int) and not isinstance(value, bool)) or _is_number_text(value, int)
        case "number":
            return (isinstance(value, (int, float)) and not isinstance(value, bool)) \
                or _is_number_text(value, float)
        case "array":
            return isinstance(value, (list, str))
        case "object":
            return isinstance(value, (dict, str))
        case "null":
            return value is None
    return True


def _looks_like_ts(value: str) -> bool:
    seconds, _, micros = value.partition(".")
    return seconds.isdigit() and (micros == "" or micros.isdigit())


def _is_number_text(value: Any, kind: type) -> bool:
    if not isinstance(value, str):
        return False
    try:
        kind(value)
    except ValueError:
        return False
    return True


def _type_of(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return "|".join(_type_of(option) for option in prop["anyOf"])
    return str(prop.get("type") or prop.get("schema") or "any")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
